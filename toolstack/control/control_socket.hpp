// The control socket of a running guest: a Unix stream socket on which a client sends one request
// line ("pause", "save /tmp/x keep") and reads the reply: zero or more data lines, then a final line
// "ok" or "error MESSAGE". A "console" request is answered "ok" and then the raw console bytes
// until either side closes.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "backends/unique_fd.hpp"

namespace colo::control {

class ControlListener {
public:
    // Binds `path`. A stale socket left by a dead process is replaced; a live one means a guest of
    // that name already runs, which is an error.
    explicit ControlListener(std::filesystem::path path);
    ~ControlListener();
    ControlListener(const ControlListener&) = delete;
    ControlListener& operator=(const ControlListener&) = delete;

    [[nodiscard]] int fd() const { return fd_.get(); }
    [[nodiscard]] UniqueFd accept();  // blocking; invalid fd when interrupted

private:
    std::filesystem::path path_;
    UniqueFd fd_;
};

// Reads one '\n'-terminated line (without the newline), at most `limit` bytes, within `timeout`.
[[nodiscard]] std::string read_line(int fd, std::chrono::milliseconds timeout, std::size_t limit = 4096);
void write_all(int fd, std::span<const char> bytes);
void write_line(int fd, const std::string& line);

// Client side. Throws colo::Error when no guest of that name runs or the reply is "error ...".
[[nodiscard]] UniqueFd connect_guest(const std::string& guest_name);
[[nodiscard]] bool connect_guest_if_running(const std::string& guest_name);
[[nodiscard]] std::vector<std::string> request(const std::string& guest_name, const std::string& line,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(60));
// Sends `line`, expects "ok", then hands every further byte to `sink` until the guest closes.
void request_stream(const std::string& guest_name, const std::string& line,
                    const std::function<void(std::span<const char>)>& sink);

// Names of the guests with a live control socket (stale sockets are removed).
[[nodiscard]] std::vector<std::string> running_guests();

}  // namespace colo::control
