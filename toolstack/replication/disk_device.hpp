// A guest disk as a checkpoint device (checkpoint_device.hpp): one per disk, on both sides.
//
// Primary half (disk_device::Primary), over a DiskMirror (disk_mirror.hpp):
//   initial sync   start_sync/sync_step: the secondary's copy is brought up to date block by block
//                  (only blocks whose SHA-256 differs travel) before the pre-copy of memory; the
//                  guest's writes from then on follow in order (drain, between page batches and at
//                  the final pause), so at the final pause the copy is the PVM's image.
//   protected      the PVM writes its own image; every write is streamed at once (poll), numbered.
//                  A flush completes when the PVM's image is durable (fdatasync) here.
//   checkpoint     DiskCheckpoint{writes through W at the pause, flushed since the last one}.
// Secondary half (disk_device::Secondary), over the incoming guest's disk (its copy):
//   initial sync   sizes the copy, hashes it (a piece per poll, so heartbeats go on) and answers
//                  with DiskHashes; writes before EnterColo go into the copy at once.
//   protected      writes are kept in memory, not applied: the copy is exactly the last committed
//                  checkpoint. commit() writes those up to W into the copy (fdatasync first when
//                  the epoch flushed, before CheckpointLoaded goes); the mark beside the copy says
//                  "applying N" while it does (disk_replica_marker.hpp).
//                  colo: the SVM's own writes go to a DiskOverlay, dropped at every commit.
//   take_over      writes of no committed checkpoint are dropped; colo: the overlay goes into the
//                  copy (the SVM's memory continues from those writes); the copy is made durable,
//                  becomes the guest's own disk and loses its mark.
//
// Threading: hooks on the pipeline thread; the guest's requests on its vCPU threads, through the
// mirror (primary) or the overlay (secondary), each with its own lock.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "backends/disk_replica_marker.hpp"
#include "backends/guest_disk.hpp"
#include "toolstack/replication/checkpoint_device.hpp"
#include "toolstack/replication/disk_mirror.hpp"
#include "toolstack/replication/disk_overlay.hpp"

namespace colo::disk_device {

// What a secondary's disk did (status).
struct SecondaryDiskStats {
    std::uint64_t sync_hashed_blocks = 0;
    std::uint64_t writes_applied = 0;       // into the copy: before EnterColo and at commits
    std::uint64_t bytes_applied = 0;
    std::uint64_t writes_pending = 0;       // kept for a checkpoint that has not committed yet
    std::uint64_t overlay_bytes_dropped = 0;  // colo: the SVM's own writes that commits replaced
    std::uint64_t flushes = 0;              // fdatasync of the copy (epochs that flushed)
    std::uint64_t takeover_overlay_bytes = 0;  // colo: written into the copy at takeover
    std::uint64_t takeover_dropped_writes = 0; // of no committed checkpoint, dropped at takeover
};

class Primary final : public PrimaryDevice {
public:
    // `wake`: called from the guest's vCPU thread when a write waits to be sent (Channel::wake).
    Primary(GuestDisk& disk, std::uint32_t index, std::function<void()> wake = {});

    [[nodiscard]] std::string name() const override { return "disk" + std::to_string(mirror_.index()); }
    [[nodiscard]] bool owns(const protocol::Message& message) const override;
    void start_sync(const DeviceSend& send) override;
    [[nodiscard]] SyncProgress sync_step(const DeviceSend& send) override;
    void drain(const DeviceSend& send) override;
    void setup(ProtectionMode mode, const DeviceSend& send) override;
    void postsuspend() override;
    std::uint32_t send_checkpoint(const DeviceSend& send) override;
    void commit() override {}
    void abort() noexcept override;
    void receive(const protocol::Message& message) override;
    void poll(const DeviceSend& send) override;
    [[nodiscard]] bool wants_checkpoint() const override { return false; }
    void teardown() noexcept override;

    [[nodiscard]] disk::MirrorStats stats() const { return mirror_.stats(); }

private:
    struct Capture {
        std::uint64_t writes_through = 0;
        bool flushed = false;
    };
    disk::DiskMirror mirror_;
    std::optional<Capture> capture_;
    bool flushed_pending_ = false;  // a flush of a checkpoint that never committed
};

class Secondary final : public SecondaryDevice {
public:
    // `wake`: asks the pipeline thread to poll again soon (hashing goes on piece by piece).
    Secondary(GuestDisk& disk, std::uint32_t index, ProtectionMode mode, std::function<void()> wake = {});
    ~Secondary() override;
    Secondary(const Secondary&) = delete;
    Secondary& operator=(const Secondary&) = delete;

    [[nodiscard]] std::string name() const override { return "disk" + std::to_string(index_); }
    [[nodiscard]] bool owns(const protocol::Message& message) const override;
    void setup() override;
    void receive(const protocol::Message& message) override;
    void begin() override;
    void stage(const protocol::Message& message) override;
    void verify() override;
    void commit() override;
    void abort() noexcept override;
    void poll(const DeviceSend& send) override;
    void take_over() override;
    void make_durable() override;
    [[nodiscard]] bool durable_due() const override { return flush_due_; }

    [[nodiscard]] SecondaryDiskStats stats() const;

private:
    struct Staged {
        std::uint64_t writes_through = 0;
        bool flushed = false;
    };
    void sync_begin(const protocol::DiskSyncBegin& begin);
    void write(protocol::DiskWrite write);
    void apply(const protocol::DiskWrite& write);

    GuestDisk& disk_;
    const std::uint32_t index_;
    const ProtectionMode mode_;
    const std::function<void()> wake_;
    const std::uint64_t die_applying_;  // fault injection (disk_device.cpp); 0: none
    std::unique_ptr<DiskReplicaMarker> marker_;
    // The initial sync's hashing: blocks first..total of block_bytes still to hash.
    std::uint32_t block_bytes_ = 0;
    std::uint64_t hash_next_ = 0;
    std::uint64_t hash_total_ = 0;
    bool hashing_ = false;
    std::uint64_t next_index_ = 1;
    bool protecting_ = false;  // from setup (EnterColo): writes wait for their checkpoint
    bool active_ = false;      // took over
    bool flush_due_ = false;   // make_durable has an fdatasync to do
    std::deque<protocol::DiskWrite> pending_;
    std::uint64_t epoch_ = 0;  // commits since setup
    std::optional<Staged> staged_;
    std::unique_ptr<disk::DiskOverlay> overlay_;  // colo, from setup to take_over
    mutable std::mutex stats_mutex_;
    SecondaryDiskStats stats_;
};

}  // namespace colo::disk_device
