#include "toolstack/transport/file_stream.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "backends/error.hpp"

namespace colo {

FileSink::FileSink(std::string path)
    : path_(std::move(path)), fd_(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) {
    if (!fd_.valid()) throw SystemError("open", errno, "cannot create '" + path_ + "'");
    buffer_.reserve(kBuffer);
}

void FileSink::write_out(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SystemError("write", errno, "writing '" + path_ + "'");
        }
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
}

void FileSink::write_all(std::span<const std::byte> bytes) {
    if (buffer_.size() + bytes.size() > kBuffer) flush();
    if (bytes.size() >= kBuffer) {
        write_out(bytes);
        return;
    }
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

void FileSink::flush() {
    try {
        write_out(buffer_);
    } catch (...) {
        buffer_.clear();
        throw;
    }
    buffer_.clear();
}

void FileSink::sync() {
    flush();
    if (::fsync(fd_.get()) != 0) throw SystemError("fsync", errno, "writing '" + path_ + "'");
}

FileSource::FileSource(std::string path)
    : path_(std::move(path)), fd_(::open(path_.c_str(), O_RDONLY | O_CLOEXEC)), buffer_(kBuffer) {
    if (!fd_.valid()) throw SystemError("open", errno, "cannot open '" + path_ + "'");
}

std::size_t FileSource::read_some(std::span<std::byte> out) {
    for (;;) {
        const ssize_t n = ::read(fd_.get(), out.data(), out.size());
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) throw SystemError("read", errno, "reading '" + path_ + "'");
    }
}

void FileSource::read_exact(std::span<std::byte> out) {
    while (!out.empty()) {
        if (begin_ == end_) {
            begin_ = 0;
            end_ = read_some(buffer_);
            if (end_ == 0)
                throw protocol::StreamTruncated("truncated stream: '" + path_ + "' ends at byte " + std::to_string(position_) +
                            ", " + std::to_string(out.size()) + " more bytes were expected");
        }
        const std::size_t n = std::min(out.size(), end_ - begin_);
        std::copy_n(buffer_.begin() + static_cast<std::ptrdiff_t>(begin_), n, out.begin());
        begin_ += n;
        position_ += n;
        out = out.subspan(n);
    }
}

bool FileSource::at_end() {
    if (begin_ == end_) {
        begin_ = 0;
        end_ = read_some(buffer_);
    }
    return begin_ == end_;
}

}  // namespace colo
