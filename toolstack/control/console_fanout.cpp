#include "toolstack/control/console_fanout.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/error.hpp"

namespace colo::control {

namespace {
// Writes everything or gives up; returns false when the descriptor is no longer usable.
bool write_fully(int fd, std::span<const std::byte> bytes, bool socket) {
    while (!bytes.empty()) {
        const auto n = socket ? ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT)
                              : ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return true;
}
}  // namespace

void ConsoleFanout::open_log(const std::filesystem::path& file) {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!fd.valid()) throw SystemError("open console log " + file.string(), errno);
    std::lock_guard lock(mutex_);
    log_ = std::move(fd);
}

void ConsoleFanout::add_client(UniqueFd client) {
    std::lock_guard lock(mutex_);
    clients_.push_back(std::move(client));
}

void ConsoleFanout::publish(std::span<const std::byte> bytes) {
    if (bytes.empty()) return;
    std::lock_guard lock(mutex_);
    published_ += bytes.size();
    if (to_stdout_) (void)write_fully(STDOUT_FILENO, bytes, false);
    if (log_.valid()) (void)write_fully(log_.get(), bytes, false);
    std::erase_if(clients_, [&](const UniqueFd& c) { return !write_fully(c.get(), bytes, true); });
}

void ConsoleFanout::close_clients() {
    std::lock_guard lock(mutex_);
    clients_.clear();
}

std::uint64_t ConsoleFanout::published_bytes() const {
    std::lock_guard lock(mutex_);
    return published_;
}

}  // namespace colo::control
