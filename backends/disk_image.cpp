#include "backends/disk_image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "backends/error.hpp"

namespace colo {

DiskImage::DiskImage(std::filesystem::path path, bool writable, Missing missing)
    : path_(std::move(path)), writable_(writable) {
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    if (missing == Missing::create) flags |= O_CREAT;
    fd_ = UniqueFd(::open(path_.c_str(), flags, 0600));
    if (!fd_.valid()) throw SystemError("open disk image " + path_.string(), errno);
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) throw SystemError("fstat " + path_.string(), errno);
    if (!S_ISREG(st.st_mode)) throw Error("disk image " + path_.string() + " is not a regular file");
    struct flock lock {};
    lock.l_type = writable ? F_WRLCK : F_RDLCK;
    lock.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file, however it grows
    if (::fcntl(fd_.get(), F_OFD_SETLK, &lock) != 0) {
        if (errno == EAGAIN || errno == EACCES) throw Error("disk image " + path_.string() + " is in use by another process");
        throw SystemError("fcntl(F_OFD_SETLK) " + path_.string(), errno);
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size % kSectorBytes != 0) {
        throw Error("disk image " + path_.string() + " is " + std::to_string(size) + " bytes, not a multiple of " +
                    std::to_string(kSectorBytes));
    }
    size_ = size;
}

void DiskImage::resize(std::uint64_t bytes) {
    if (bytes % kSectorBytes != 0) {
        throw Error("disk image " + path_.string() + ": size " + std::to_string(bytes) + " is not a multiple of " +
                    std::to_string(kSectorBytes));
    }
    if (!writable_) throw Error("disk image " + path_.string() + " is read-only: cannot resize it");
    if (::ftruncate(fd_.get(), static_cast<off_t>(bytes)) != 0) throw SystemError("ftruncate " + path_.string(), errno);
    size_ = bytes;
}

void DiskImage::check_range(const char* what, std::uint64_t offset, std::uint64_t length) const {
    const std::uint64_t size = size_.load();
    if (offset % kSectorBytes != 0 || length % kSectorBytes != 0 || offset > size || length > size - offset) {
        throw Error(std::string(what) + " " + path_.string() + ": " + std::to_string(length) + " bytes at " +
                    std::to_string(offset) + " are not whole sectors within its " + std::to_string(size) + " bytes");
    }
}

void DiskImage::read(std::uint64_t offset, std::span<std::byte> out) {
    check_range("read", offset, out.size());
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SystemError("pread " + path_.string(), errno);
        }
        if (n == 0) {
            // The file is shorter than we were told: someone truncated it under our lock.
            throw Error("read " + path_.string() + ": end of file at " + std::to_string(offset + done));
        }
        done += static_cast<std::size_t>(n);
    }
}

void DiskImage::write(std::uint64_t offset, std::span<const std::byte> data) {
    if (!writable_) throw Error("write " + path_.string() + ": the image is read-only");
    check_range("write", offset, data.size());
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SystemError("pwrite " + path_.string(), errno);
        }
        done += static_cast<std::size_t>(n);
    }
}

void DiskImage::write_zeros(std::uint64_t offset, std::uint64_t length) {
    const std::vector<std::byte> zeros(std::min<std::uint64_t>(length, 1 << 20));
    while (length > 0) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeros.size()));
        write(offset, std::span(zeros.data(), n));
        offset += n;
        length -= n;
    }
}

void DiskImage::discard(std::uint64_t offset, std::uint64_t length) {
    if (!writable_) throw Error("discard " + path_.string() + ": the image is read-only");
    check_range("discard", offset, length);
    if (length == 0) return;
    if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) == 0) {
        return;
    }
    // A file system without holes (or an old one): the contract is "reads as zeros after".
    if (errno != EOPNOTSUPP && errno != ENOSYS) throw SystemError("fallocate(PUNCH_HOLE) " + path_.string(), errno);
    write_zeros(offset, length);
}

void DiskImage::flush() {
    if (::fdatasync(fd_.get()) != 0) throw SystemError("fdatasync " + path_.string(), errno);
}

}  // namespace colo
