#include "toolstack/control/control_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "backends/error.hpp"
#include "toolstack/control/run_dir.hpp"

namespace colo::control {

namespace {

sockaddr_un address_of(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.native().size() >= sizeof(addr.sun_path)) {
        throw Error("control socket path too long: " + path.string());
    }
    std::strcpy(addr.sun_path, path.c_str());
    return addr;
}

// Connects to `path`; an invalid fd when nothing listens there (stale or missing socket).
UniqueFd try_connect(const std::filesystem::path& path) {
    UniqueFd fd(check_syscall(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket(AF_UNIX)"));
    const auto addr = address_of(path);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno == ECONNREFUSED || errno == ENOENT) return UniqueFd{};
        throw SystemError("connect " + path.string(), errno);
    }
    return fd;
}

}  // namespace

ControlListener::ControlListener(std::filesystem::path path) : path_(std::move(path)) {
    (void)owned_run_dir();  // checked and given its mode before anything is made in it
    if (try_connect(path_).valid()) {
        throw Error("a guest named '" + path_.stem().string() + "' already runs (" + path_.string() + ")");
    }
    ::unlink(path_.c_str());
    fd_ = UniqueFd(check_syscall(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket(AF_UNIX)"));
    // bind() makes the socket file with the umask's mode: it gets its own mode under a name no
    // client looks for, and only then the name clients connect to.
    const std::filesystem::path making = path_.string() + ".new-" + std::to_string(::getpid());
    ::unlink(making.c_str());
    const auto addr = address_of(making);
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        throw SystemError("bind " + making.string(), errno);
    }
    try {
        restrict_socket(making);
        if (::rename(making.c_str(), path_.c_str()) != 0) throw SystemError("rename to " + path_.string(), errno);
    } catch (...) {
        ::unlink(making.c_str());
        throw;
    }
    check_syscall(::listen(fd_.get(), 16), "listen");
}

ControlListener::~ControlListener() { ::unlink(path_.c_str()); }

UniqueFd ControlListener::accept() {
    const int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EINTR || errno == EAGAIN) return UniqueFd{};
        throw SystemError("accept", errno);
    }
    UniqueFd client(fd);
    // The socket's mode keeps others out; the kernel's word on who connected decides, whatever
    // became of that mode (a directory or socket an operator opened up, a path bound elsewhere).
    if (const std::string why = refuse_peer(client.get()); !why.empty()) {
        try {
            write_line(client.get(), "error " + why);
        } catch (const Error&) {
            // It went away; nothing to tell it.
        }
        return UniqueFd{};
    }
    return client;
}

std::string read_line(int fd, std::chrono::milliseconds timeout, std::size_t limit) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) throw Error("control socket: no reply within " + std::to_string(timeout.count()) + " ms");
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        check_syscall(ready, "poll");
        if (ready == 0) continue;
        char c = 0;
        const auto n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        check_syscall(n, "read(control socket)");
        if (n == 0) throw Error("control socket: closed by the other side");
        if (c == '\n') return line;
        if (line.size() >= limit) throw Error("control socket: line longer than " + std::to_string(limit) + " bytes");
        line += c;
    }
}

void write_all(int fd, std::span<const char> bytes) {
    while (!bytes.empty()) {
        const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        check_syscall(n, "send(control socket)");
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
}

void write_line(int fd, const std::string& line) {
    const std::string with_newline = line + "\n";
    write_all(fd, with_newline);
}

UniqueFd connect_guest(const std::string& guest_name) {
    const auto path = control_socket_path(guest_name);
    UniqueFd fd = try_connect(path);
    if (!fd.valid()) throw Error("no guest named '" + guest_name + "' runs on this host");
    return fd;
}

bool connect_guest_if_running(const std::string& guest_name) {
    return try_connect(control_socket_path(guest_name)).valid();
}

namespace {
std::string final_line_error(const std::string& line) {
    if (line.rfind("error ", 0) == 0) return line.substr(6);
    return "unexpected reply '" + line + "'";
}

// Sends the request line. A guest that refuses us (ControlListener::accept) answers and hangs up
// before it reads a word, so our write may find the socket closed: its answer is still there to read.
void send_request(int fd, const std::string& line) {
    try {
        write_line(fd, line);
    } catch (const SystemError& e) {
        if (e.error_number() != EPIPE && e.error_number() != ECONNRESET) throw;
        const std::string reply = read_line(fd, std::chrono::seconds(1));
        throw Error(final_line_error(reply));
    }
}
}  // namespace

std::vector<std::string> request(const std::string& guest_name, const std::string& line,
                                 std::chrono::milliseconds timeout) {
    UniqueFd fd = connect_guest(guest_name);
    send_request(fd.get(), line);
    std::vector<std::string> data;
    while (true) {
        std::string reply = read_line(fd.get(), timeout, 1 << 20);
        if (reply == "ok") return data;
        if (reply.rfind("data ", 0) == 0) {
            data.push_back(reply.substr(5));
            continue;
        }
        throw Error(final_line_error(reply));
    }
}

void request_stream(const std::string& guest_name, const std::string& line,
                    const std::function<void(std::span<const char>)>& sink) {
    UniqueFd fd = connect_guest(guest_name);
    send_request(fd.get(), line);
    const std::string reply = read_line(fd.get(), std::chrono::seconds(10));
    if (reply != "ok") throw Error(final_line_error(reply));
    char buffer[4096];
    while (true) {
        const auto n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        check_syscall(n, "read(console)");
        if (n == 0) return;
        sink(std::span<const char>(buffer, static_cast<std::size_t>(n)));
    }
}

std::vector<std::string> running_guests() {
    std::vector<std::string> names;
    if (!std::filesystem::exists(run_dir())) return names;  // nothing ever ran here
    for (const auto& entry : std::filesystem::directory_iterator(run_dir())) {
        if (entry.path().extension() != ".sock") continue;
        if (try_connect(entry.path()).valid()) {
            names.push_back(entry.path().stem().string());
        } else {
            std::error_code ignored;
            std::filesystem::remove(entry.path(), ignored);
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace colo::control
