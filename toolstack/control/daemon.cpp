#include "toolstack/control/daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>

#include "backends/error.hpp"
#include "backends/unique_fd.hpp"
#include "toolstack/control/run_dir.hpp"

namespace colo::control {

namespace {
void write_message(int fd, const std::string& text) {
    std::string_view rest(text);
    while (!rest.empty()) {
        const auto n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

void (*g_stop)() = nullptr;
void (*g_stop_with_signal)(int) = nullptr;
extern "C" void on_signal(int signal) {
    if (g_stop != nullptr) g_stop();
    if (g_stop_with_signal != nullptr) g_stop_with_signal(signal);
}

void install_termination_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
}
}  // namespace

int run_detached(const std::filesystem::path& log,
                 const std::function<void(const std::function<void()>& ready)>& body) {
    // Opened here, not in the child: a log we may not use is this command's one-line error.
    UniqueFd out = open_run_dir_log(log);
    int fds[2];
    check_syscall(::pipe2(fds, O_CLOEXEC), "pipe2");
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    std::cout.flush();
    std::cerr.flush();
    const pid_t pid = check_syscall(::fork(), "fork");
    if (pid == 0) {
        read_end.reset();
        int status = 0;
        try {
            check_syscall(::setsid(), "setsid");
            UniqueFd null(check_syscall(::open("/dev/null", O_RDONLY | O_CLOEXEC), "open /dev/null"));
            check_syscall(::dup2(null.get(), STDIN_FILENO), "dup2");
            check_syscall(::dup2(out.get(), STDOUT_FILENO), "dup2");
            check_syscall(::dup2(out.get(), STDERR_FILENO), "dup2");
            out.reset();
            body([&] {
                write_message(write_end.get(), "ok\n");
                write_end.reset();
            });
        } catch (const std::exception& e) {
            if (write_end.valid()) write_message(write_end.get(), std::string(e.what()) + "\n");
            std::cerr << "colo-replicate: " << e.what() << std::endl;
            status = 1;
        }
        std::cout.flush();
        std::cerr.flush();
        ::_exit(status);
    }
    write_end.reset();
    std::string message;
    char buffer[512];
    while (true) {
        const auto n = ::read(read_end.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        message.append(buffer, static_cast<std::size_t>(n));
    }
    if (message == "ok\n") return pid;
    int status = 0;
    ::waitpid(pid, &status, 0);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    if (message.empty()) message = "the guest process exited before it was ready (see " + log.string() + ")";
    throw Error(message);
}

void on_termination_signal(void (*stop)()) {
    g_stop = stop;
    install_termination_handler();
}

void on_termination_signal(void (*stop)(int signal)) {
    g_stop_with_signal = stop;
    install_termination_handler();
}

}  // namespace colo::control
