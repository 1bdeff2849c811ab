#include "toolstack/transport/file_stream.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "backends/error.hpp"

namespace colo {

UniqueFd open_output_file(const std::string& path, int flags, mode_t mode) {
    UniqueFd fd(::open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!fd.valid() && errno == ELOOP) {
        struct stat link {};
        if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode) && link.st_uid != 0 && link.st_uid != ::geteuid()) {
            throw Error("'" + path + "' is a symbolic link owned by uid " + std::to_string(link.st_uid) +
                        "; refusing to write through it");
        }
        fd = UniqueFd(::open(path.c_str(), flags | O_CLOEXEC, mode));
    }
    if (!fd.valid()) throw SystemError("open", errno, "cannot create '" + path + "'");
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw SystemError("fstat", errno, "'" + path + "'");
    if (S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 0777 & ~mode) != 0 &&
        ::fchmod(fd.get(), st.st_mode & 0777 & mode) != 0) {
        throw SystemError("fchmod", errno, "'" + path + "'");
    }
    return fd;
}

FileSink::FileSink(std::string path)
    : path_(std::move(path)), fd_(open_output_file(path_, O_WRONLY | O_CREAT | O_TRUNC, 0600)) {
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
