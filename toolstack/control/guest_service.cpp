#include "toolstack/control/guest_service.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sstream>

#include "backends/error.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/run_dir.hpp"

namespace colo::control {

namespace {
std::vector<std::string> split_words(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    return words;
}

void expect_args(const std::vector<std::string>& args, std::size_t n, const char* usage) {
    if (args.size() != n) throw Error(std::string("usage: ") + usage);
}
}  // namespace

GuestService::GuestService(std::unique_ptr<Backend> backend, GuestConfig config)
    : backend_(std::move(backend)),
      config_(std::move(config)),
      wakeup_(check_syscall(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")) {
    console_.set_owner("colo-replicate[" + config_.name + "]");
    add_command("info", [this](const auto& args, Reply& reply, UniqueFd&) {
        expect_args(args, 0, "info");
        std::ostringstream line;
        line << config_.name << ' ' << (backend_.paused() ? "paused" : "running") << ' '
             << config_.memory_mib << ' ' << config_.vcpus << ' ' << to_string(backend_.kind()) << ' '
             << mode();
        reply.data.push_back(line.str());
    });
    add_command("pause", [this](const auto& args, Reply&, UniqueFd&) {
        expect_args(args, 0, "pause");
        refuse_unless_operator_owns();
        backend_.pause();
    });
    add_command("unpause", [this](const auto& args, Reply&, UniqueFd&) {
        expect_args(args, 0, "unpause");
        refuse_unless_operator_owns();
        backend_.resume();
    });
    add_command("destroy", [this](const auto& args, Reply&, UniqueFd&) {
        expect_args(args, 0, "destroy");
        request_stop();
    });
    add_command("console", [this](const auto& args, Reply& reply, UniqueFd& client) {
        expect_args(args, 0, "console");
        reply.stream = std::move(client);
    });
}

GuestService::~GuestService() {
    // The guest must stop before the console it writes to goes away.
    try {
        backend_.pause();
    } catch (...) {
        // Destructors never throw; the process is ending anyway.
    }
    console_.close_clients();
}

void GuestService::set_mode(std::string mode) {
    std::lock_guard lock(mode_mutex_);
    mode_ = std::move(mode);
}

std::string GuestService::mode() const {
    std::lock_guard lock(mode_mutex_);
    return mode_;
}

void GuestService::set_owner_check(std::function<std::string()> busy) { owner_check_ = std::move(busy); }

void GuestService::refuse_unless_operator_owns() const {
    if (!owner_check_) return;
    if (const std::string busy = owner_check_(); !busy.empty()) throw Error("guest " + config_.name + " is " + busy);
}

void GuestService::add_command(const std::string& name, CommandHandler handler) {
    commands_[name] = std::move(handler);
}

void GuestService::release_console_directly() {
    backend_.set_console_sink([this](std::span<const std::byte> bytes) { console_.publish_next(bytes); });
}

void GuestService::bind() {
    if (!listener_) listener_ = std::make_unique<ControlListener>(control_socket_path(config_.name));
}

void GuestService::request_stop() noexcept {
    stop_.store(true);
    const std::uint64_t one = 1;
    (void)!::write(wakeup_.get(), &one, sizeof one);
}

void GuestService::serve() {
    bind();
    while (!stop_.load()) {
        pollfd fds[2] = {{listener_->fd(), POLLIN, 0}, {wakeup_.get(), POLLIN, 0}};
        const int ready = ::poll(fds, 2, -1);
        if (ready < 0 && errno == EINTR) continue;
        check_syscall(ready, "poll(control socket)");
        if ((fds[0].revents & POLLIN) != 0) {
            UniqueFd client = listener_->accept();
            if (client.valid()) handle(std::move(client));
        }
    }
}

void GuestService::handle(UniqueFd client) {
    try {
        const auto words = split_words(read_line(client.get(), std::chrono::seconds(5)));
        if (words.empty()) throw Error("empty request");
        const auto it = commands_.find(words[0]);
        if (it == commands_.end()) throw Error("unknown request '" + words[0] + "'");
        Reply reply;
        it->second(std::vector<std::string>(words.begin() + 1, words.end()), reply, client);
        if (!client.valid() && !reply.stream.valid()) return;  // the handler took it and answers later
        // Whichever layer answers `status` (primary, secondary, survivor), a console log that lost
        // output says so there.
        if (words[0] == "status") {
            if (const std::string lost = console_.log_error(); !lost.empty()) reply.data.push_back("console_log_error " + lost);
        }
        const int fd = reply.stream.valid() ? reply.stream.get() : client.get();
        for (const auto& line : reply.data) write_line(fd, "data " + line);
        write_line(fd, "ok");
        if (reply.stream.valid()) console_.add_client(std::move(reply.stream));
    } catch (const Error& e) {
        if (client.valid()) {
            try {
                write_line(client.get(), std::string("error ") + e.what());
            } catch (const Error&) {
                // The client went away; nothing to tell it.
            }
        }
    }
}

}  // namespace colo::control
