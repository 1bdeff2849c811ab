#include "toolstack/control/console_fanout.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "backends/error.hpp"
#include "toolstack/transport/file_stream.hpp"

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

// Writes everything at `position` (or where the descriptor stands, for one that cannot seek);
// returns the bytes that did not get there and sets `error`.
std::size_t write_log(int fd, std::span<const std::byte> bytes, std::optional<std::uint64_t> position, int& error) {
    while (!bytes.empty()) {
        const auto n = position ? ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(*position))
                                : ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = n < 0 ? errno : ENOSPC;  // a write of 0 bytes to a regular file: no room
            return bytes.size();
        }
        bytes = bytes.subspan(static_cast<std::size_t>(n));
        if (position) *position += static_cast<std::uint64_t>(n);
    }
    return 0;
}
}  // namespace

void ConsoleFanout::open_log(const std::filesystem::path& file) {
    // Not O_APPEND: pwrite places each byte by its offset (with O_APPEND Linux would append).
    UniqueFd fd = open_output_file(file.string(), O_WRONLY | O_CREAT, 0644);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw SystemError("fstat console log " + file.string(), errno);
    std::lock_guard lock(mutex_);
    log_ = std::move(fd);
    log_path_ = file;
    log_size_at_open_ = S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : 0;
    log_seekable_ = ::lseek(log_.get(), 0, SEEK_CUR) >= 0;
}

void ConsoleFanout::start_at_log_end() {
    std::lock_guard lock(mutex_);
    next_offset_ = log_size_at_open_;
}

void ConsoleFanout::add_client(UniqueFd client) {
    std::lock_guard lock(mutex_);
    clients_.push_back(std::move(client));
}

void ConsoleFanout::write_log_locked(std::uint64_t offset, std::span<const std::byte> bytes) {
    int error = 0;
    const std::size_t missing =
        write_log(log_.get(), bytes, log_seekable_ ? std::optional(offset) : std::nullopt, error);
    if (missing == 0) {
        if (log_loss_ && log_loss_->failing) {
            log_loss_->failing = false;
            std::cerr << owner_ << ": console log " << log_path_.string() << ": written again from console offset "
                      << offset << "; " << log_loss_->bytes << " bytes from offset " << log_loss_->first_offset
                      << " on are missing from it" << std::endl;
        }
        return;
    }
    const std::uint64_t first = offset + (bytes.size() - missing);
    if (!log_loss_) log_loss_ = LogLoss{first, 0, 0, false};
    log_loss_->bytes += missing;
    log_loss_->error = error;
    if (!log_loss_->failing) {
        log_loss_->failing = true;
        std::cerr << owner_ << ": console log " << log_path_.string() << ": write at console offset " << first
                  << " failed: " << std::strerror(error)
                  << "; released output is missing from the log until it can be written again" << std::endl;
    }
}

void ConsoleFanout::publish(std::uint64_t offset, std::span<const std::byte> bytes) {
    if (bytes.empty()) return;
    std::lock_guard lock(mutex_);
    publish_locked(offset, bytes);
}

void ConsoleFanout::publish_next(std::span<const std::byte> bytes) {
    if (bytes.empty()) return;
    std::lock_guard lock(mutex_);
    publish_locked(next_offset_, bytes);
}

void ConsoleFanout::publish_locked(std::uint64_t offset, std::span<const std::byte> bytes) {
    published_ += bytes.size();
    next_offset_ = offset + bytes.size();
    if (to_stdout_) (void)write_fully(STDOUT_FILENO, bytes, false);  // a closed terminal is no loss to report
    if (log_.valid()) write_log_locked(offset, bytes);
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

std::uint64_t ConsoleFanout::next_offset() const {
    std::lock_guard lock(mutex_);
    return next_offset_;
}

std::string ConsoleFanout::log_error() const {
    std::lock_guard lock(mutex_);
    if (!log_loss_) return {};
    return std::string(std::strerror(log_loss_->error)) + " (" + std::to_string(log_loss_->bytes) +
           " bytes missing, the first at console offset " + std::to_string(log_loss_->first_offset) +
           (log_loss_->failing ? "; still failing)" : ")");
}

}  // namespace colo::control
