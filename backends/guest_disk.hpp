// A guest's disk as the pipeline sees it: a raw image of whole sectors that the guest reads and
// writes, whatever the hypervisor's device model is (KVM: our virtio-blk,
// kvm/devices/virtio_blk.hpp). The image is a file the disk owns, locked against a second
// writer (the primary's and the secondary's copies on one host must never be the same file).
//
// Unprotected, the guest's requests go straight to the image. A checkpoint device
// (toolstack/replication/disk_device.hpp) puts itself in between with set_io: then every request
// goes through its DiskIo (the primary mirrors each write to the secondary; a COLO secondary
// sends the SVM's writes to an overlay), and it reads and writes the image itself (initial sync,
// applying a committed checkpoint).
//
// Offsets and lengths are bytes, multiples of kSectorBytes, within size_bytes().
//
// Threading: requests run on the thread of the vCPU that submitted them, one at a time per disk
// (the device serializes them), and never while the backend is paused: pause() returns only after
// the request being served has completed, so a checkpoint's state and the image agree. image()
// may be used from any thread; set_io waits until no request runs on the old DiskIo, so its owner
// may go away after.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backends/guest_config.hpp"

namespace colo {

inline constexpr std::uint64_t kSectorBytes = 512;

// Where a disk's requests go. Every call throws colo::Error (SystemError for the OS's errors) when
// it cannot do what it says; the device then completes the guest's request with an I/O error.
class DiskIo {
public:
    virtual ~DiskIo() = default;
    virtual void read(std::uint64_t offset, std::span<std::byte> out) = 0;
    virtual void write(std::uint64_t offset, std::span<const std::byte> data) = 0;
    // The range reads as zeros afterwards (a hole where the file system can make one).
    virtual void discard(std::uint64_t offset, std::uint64_t length) = 0;
    // Everything written before is durable (fdatasync) when this returns.
    virtual void flush() = 0;
};

// What the device has served since it was made (`status`, `scons bench`).
struct DiskStats {
    std::uint64_t reads = 0, read_bytes = 0;
    std::uint64_t writes = 0, write_bytes = 0;
    std::uint64_t discards = 0;
    std::uint64_t flushes = 0;
    std::uint64_t flush_ns = 0;   // total time of the flushes, submit to completion
    std::uint64_t errors = 0;     // requests completed with an I/O error (or unsupported)
    // Of the last kRecentFlushes flushes (`scons bench`): 50th and 99th percentile, microseconds.
    std::uint64_t recent_flush_p50_us = 0, recent_flush_p99_us = 0;
};

inline constexpr std::size_t kRecentFlushes = 1024;

// The percentiles of DiskStats from a ring of flush times (any order). `times` may be empty.
void recent_flush_percentiles(std::span<const std::uint32_t> times_us, DiskStats& into);

class GuestDisk {
public:
    virtual ~GuestDisk() = default;

    [[nodiscard]] virtual const DiskConfig& config() const = 0;
    [[nodiscard]] virtual std::uint64_t size_bytes() const = 0;
    // The image itself, bypassing set_io.
    [[nodiscard]] virtual DiskIo& image() = 0;
    // Sets the image's size (an incoming guest's new image gets the primary's size before the guest
    // ever runs). Throws colo::SystemError.
    virtual void resize(std::uint64_t bytes) = 0;
    // The guest's requests go to `io` instead of image(); nullptr restores the image. Returns once
    // no request runs on the old one.
    virtual void set_io(DiskIo* io) = 0;
    [[nodiscard]] virtual DiskStats stats() const = 0;
};

}  // namespace colo
