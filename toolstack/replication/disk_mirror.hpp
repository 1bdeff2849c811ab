// The sending half of a replicated disk, for `protect` (through disk_device::Primary) and
// `migrate` alike: it brings the receiver's copy of the image up to date without a manual copy,
// then sends every write the guest makes, in the order the writes reached the image.
//
//   start          the guest's requests go through the mirror from now on (GuestDisk::set_io);
//                  DiskSyncBegin{size, block size} goes out
//   take_hashes    the receiver's SHA-256 of each block of its copy (DiskHashes pieces)
//   send_some      queued guest writes, then blocks of the image: each block is read, hashed and
//                  sent (as zeros without data when it is all zero) only when the receiver's hash
//                  differs; synced() once every block was looked at
//   send_queued    the guest's writes (DiskWrite, indices from 1 per disk, blocks and writes in one
//                  sequence)
//
// Why reading a block and the guest writing it need no more than one mutex: a block is read,
// compared and queued under the mutex the mirror's write path holds around the image write and
// its queueing, so the queue's order is the image's order. The receiver applies the queue in
// order: whatever it held when it hashed a block, and whichever writes reached it before or after
// that, it ends with the primary's bytes (man colo-replicate(7), "Disk").
//
// Threading: the DiskIo side runs on the guest's vCPU threads; everything else on the pipeline
// thread. `wake` is called (from a vCPU thread) when a write was queued: Channel::wake.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "backends/guest_disk.hpp"
#include "toolstack/protocol/messages.hpp"
#include "toolstack/protocol/record_types.hpp"
#include "toolstack/replication/checkpoint_device.hpp"

namespace colo::disk {

inline constexpr std::uint32_t kSyncBlockBytes = 64 * 1024;

struct MirrorStats {
    std::uint64_t size_bytes = 0;
    std::uint64_t sync_blocks = 0;        // blocks of the image
    std::uint64_t sync_blocks_done = 0;   // of those, compared so far
    std::uint64_t sync_blocks_sent = 0;   // of those, sent because the receiver's copy differed
    std::uint64_t sync_bytes_sent = 0;    // data bytes of those (all-zero blocks carry none)
    std::uint64_t sync_ms = 0;            // start until every block was looked at
    std::uint64_t writes = 0;             // guest writes (and discards) mirrored
    std::uint64_t write_bytes = 0;        // data bytes of those writes
};

class DiskMirror {
public:
    DiskMirror(GuestDisk& disk, std::uint32_t index, std::function<void()> wake = {});
    ~DiskMirror();
    DiskMirror(const DiskMirror&) = delete;
    DiskMirror& operator=(const DiskMirror&) = delete;

    [[nodiscard]] std::uint32_t index() const { return index_; }
    void start(const DeviceSend& send);
    // Throws colo::Error for pieces that do not fit this disk or come out of order.
    void take_hashes(const protocol::DiskHashes& hashes);
    [[nodiscard]] bool hashes_complete() const;
    // Sends the queued writes, then looks at blocks until `budget` bytes were read; false when
    // no block could be looked at (the receiver's hashes for the next one have not come).
    bool send_some(const DeviceSend& send, std::uint64_t budget);
    [[nodiscard]] bool synced() const;
    void send_queued(const DeviceSend& send);
    // The index of the last write queued (the guest paused: the last it made).
    [[nodiscard]] std::uint64_t last_index() const;
    // Whether the guest flushed since the last call.
    [[nodiscard]] bool take_flushed() { return flushed_.exchange(false); }
    // The guest's requests go straight to the image again. Idempotent; never throws.
    void stop() noexcept;
    [[nodiscard]] MirrorStats stats() const;

private:
    class Io final : public DiskIo {
    public:
        explicit Io(DiskMirror& mirror) : mirror_(mirror) {}
        void read(std::uint64_t offset, std::span<std::byte> out) override;
        void write(std::uint64_t offset, std::span<const std::byte> data) override;
        void discard(std::uint64_t offset, std::uint64_t length) override;
        void flush() override;

    private:
        DiskMirror& mirror_;
    };
    void queue_locked(std::uint64_t offset, std::uint64_t length, std::span<const std::byte> data);

    GuestDisk& disk_;
    const std::uint32_t index_;
    const std::function<void()> wake_;
    Io io_{*this};
    bool started_ = false;
    std::chrono::steady_clock::time_point started_at_{};
    std::atomic<bool> flushed_{false};

    mutable std::mutex mutex_;  // the image's writes and the queue, in one order
    std::deque<protocol::DiskWrite> queue_;
    std::uint64_t next_index_ = 1;
    std::uint64_t blocks_ = 0;
    std::vector<std::byte> remote_;  // the receiver's hashes, kDiskHashBytes per block
    std::uint64_t hashes_in_ = 0;
    std::uint64_t cursor_ = 0;  // next block to compare
    MirrorStats stats_;
};

}  // namespace colo::disk
