#include "backends/fake_disk.hpp"

#include <cstring>
#include <string>

#include "backends/error.hpp"

namespace colo {

FakeDisk::FakeDisk(DiskConfig config, std::uint64_t size_bytes) : config_(std::move(config)), bytes_(size_bytes) {}

std::uint64_t FakeDisk::size_bytes() const {
    std::lock_guard lock(mutex_);
    return bytes_.size();
}

void FakeDisk::resize(std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    bytes_.resize(bytes);
}

void FakeDisk::set_io(DiskIo* io) {
    if (on_set_io_) on_set_io_();
    std::lock_guard lock(request_mutex_);
    io_ = io;
}

DiskStats FakeDisk::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

void FakeDisk::check_range(std::uint64_t offset, std::uint64_t length) const {
    if (offset % kSectorBytes != 0 || length % kSectorBytes != 0 || offset > bytes_.size() ||
        length > bytes_.size() - offset) {
        throw Error("fake disk: " + std::to_string(length) + " bytes at " + std::to_string(offset) +
                    " are not whole sectors within " + std::to_string(bytes_.size()));
    }
}

void FakeDisk::Image::read(std::uint64_t offset, std::span<std::byte> out) {
    std::lock_guard lock(disk_.mutex_);
    disk_.check_range(offset, out.size());
    std::memcpy(out.data(), disk_.bytes_.data() + offset, out.size());
}

void FakeDisk::Image::write(std::uint64_t offset, std::span<const std::byte> data) {
    std::lock_guard lock(disk_.mutex_);
    disk_.check_range(offset, data.size());
    if (disk_.fail_writes_) throw SystemError("pwrite", EIO, "fake disk");
    std::memcpy(disk_.bytes_.data() + offset, data.data(), data.size());
}

void FakeDisk::Image::discard(std::uint64_t offset, std::uint64_t length) {
    std::lock_guard lock(disk_.mutex_);
    disk_.check_range(offset, length);
    if (disk_.fail_writes_) throw SystemError("fallocate", EIO, "fake disk");
    std::memset(disk_.bytes_.data() + offset, 0, length);
}

void FakeDisk::Image::flush() {
    {
        std::lock_guard lock(disk_.mutex_);
        ++disk_.flushes_;
    }
    if (disk_.on_image_flush_) disk_.on_image_flush_();
}

DiskIo& FakeDisk::io_for_request() { return io_ ? *io_ : image_; }

void FakeDisk::guest_write(std::uint64_t offset, std::span<const std::byte> data) {
    std::lock_guard lock(request_mutex_);
    io_for_request().write(offset, data);
    std::lock_guard stats(mutex_);
    ++stats_.writes;
    stats_.write_bytes += data.size();
}

std::vector<std::byte> FakeDisk::guest_read(std::uint64_t offset, std::uint64_t length) {
    std::lock_guard lock(request_mutex_);
    std::vector<std::byte> out(length);
    io_for_request().read(offset, out);
    return out;
}

void FakeDisk::guest_discard(std::uint64_t offset, std::uint64_t length) {
    std::lock_guard lock(request_mutex_);
    io_for_request().discard(offset, length);
}

void FakeDisk::guest_flush() {
    std::lock_guard lock(request_mutex_);
    io_for_request().flush();
    std::lock_guard stats(mutex_);
    ++stats_.flushes;
}

std::vector<std::byte> FakeDisk::image_bytes() const {
    std::lock_guard lock(mutex_);
    return bytes_;
}

unsigned FakeDisk::image_flushes() const {
    std::lock_guard lock(mutex_);
    return flushes_;
}

void FakeDisk::fail_image_writes(bool fail) {
    std::lock_guard lock(mutex_);
    fail_writes_ = fail;
}

}  // namespace colo
