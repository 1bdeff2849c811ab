// A disk's raw image file (backends/guest_disk.hpp): one descriptor, locked for as long as this
// object lives, read and written in whole sectors at byte offsets.
//
// The lock is an open file description lock (fcntl F_OFD_SETLK) on the whole file: exclusive when
// the image is opened writable, shared when read-only. So two processes (or two guests in one
// process: the lock belongs to the descriptor, not the process) never write one image, and a
// primary and a secondary on one host cannot be pointed at the same file by mistake; a second
// opener is refused with "disk image PATH is in use by another process". The lock goes with the
// descriptor, also when the process is killed.
//
// The file must be a regular file whose size is a multiple of kSectorBytes. `create_missing`
// (an incoming guest, whose image the replication layer fills) creates it, mode 0600, size 0.
//
// I/O: pread/pwrite loops (short transfers and EINTR continue), discard punches a hole
// (fallocate PUNCH_HOLE|KEEP_SIZE) and falls back to writing zeros where the file system cannot,
// flush is fdatasync, resize is ftruncate. Errors are colo::SystemError naming the operation and
// the path. Threading: read/write/discard/flush may run on any threads at once (positional
// I/O); resize and size_bytes too (the size is an atomic).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>

#include "backends/guest_disk.hpp"
#include "backends/unique_fd.hpp"

namespace colo {

class DiskImage final : public DiskIo {
public:
    enum class Missing { refuse, create };
    // writable = false: O_RDONLY and a shared lock; writes throw.
    DiskImage(std::filesystem::path path, bool writable, Missing missing = Missing::refuse);

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] bool writable() const noexcept { return writable_; }
    [[nodiscard]] std::uint64_t size_bytes() const noexcept { return size_.load(); }
    // ftruncate; `bytes` must be a multiple of kSectorBytes.
    void resize(std::uint64_t bytes);

    // --- DiskIo
    void read(std::uint64_t offset, std::span<std::byte> out) override;
    void write(std::uint64_t offset, std::span<const std::byte> data) override;
    void discard(std::uint64_t offset, std::uint64_t length) override;
    void flush() override;

private:
    void check_range(const char* what, std::uint64_t offset, std::uint64_t length) const;
    void write_zeros(std::uint64_t offset, std::uint64_t length);

    std::filesystem::path path_;
    bool writable_;
    UniqueFd fd_;
    std::atomic<std::uint64_t> size_{0};
};

}  // namespace colo
