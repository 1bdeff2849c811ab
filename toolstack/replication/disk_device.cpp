#include "toolstack/replication/disk_device.hpp"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <variant>

#include "backends/error.hpp"
#include "toolstack/replication/disk_block_hash.hpp"

namespace colo::disk_device {

namespace {

// The initial sync sends at most this much of the image between two looks at incoming messages.
constexpr std::uint64_t kSyncStepBytes = 4 * 1024 * 1024;
// The secondary hashes at most this many blocks per poll (heartbeats go on in between).
constexpr std::uint64_t kHashBlocksPerPoll = 256;

// Fault injection for the end-to-end tests (tests/e2e: disk-secondary-killed-mid-apply): the
// process dies by SIGKILL right after the first write of this checkpoint went into the copy.
std::uint64_t die_applying_checkpoint() {
    const char* value = std::getenv("COLO_FAULT_DIE_APPLYING_DISK_CHECKPOINT");
    return value ? std::strtoull(value, nullptr, 10) : 0;
}

template <typename T>
bool is_for(const protocol::Message& message, std::uint32_t disk) {
    const auto* m = std::get_if<T>(&message);
    return m && m->disk == disk;
}

}  // namespace

// --- Primary

Primary::Primary(GuestDisk& disk, std::uint32_t index, std::function<void()> wake)
    : mirror_(disk, index, std::move(wake)) {}

bool Primary::owns(const protocol::Message& message) const {
    return is_for<protocol::DiskHashes>(message, mirror_.index());
}

void Primary::start_sync(const DeviceSend& send) { mirror_.start(send); }

SyncProgress Primary::sync_step(const DeviceSend& send) {
    if (mirror_.synced()) {
        mirror_.send_queued(send);
        return SyncProgress::done;
    }
    return mirror_.send_some(send, kSyncStepBytes) ? SyncProgress::sent : SyncProgress::waiting;
}

void Primary::drain(const DeviceSend& send) { mirror_.send_queued(send); }

void Primary::setup(ProtectionMode, const DeviceSend& send) {
    if (!mirror_.synced()) throw Error(name() + ": protection cannot start before the initial sync of the disk");
    mirror_.send_queued(send);
    // A flush before this pause is durable on the secondary too: it makes its copy durable when
    // protection starts (Secondary::setup).
    (void)mirror_.take_flushed();
}

void Primary::postsuspend() {
    const bool flushed = mirror_.take_flushed() || flushed_pending_;
    capture_ = Capture{mirror_.last_index(), flushed};
}

std::uint32_t Primary::send_checkpoint(const DeviceSend& send) {
    if (!capture_) throw Error(name() + ": send_checkpoint without postsuspend");
    mirror_.send_queued(send);
    send(protocol::DiskCheckpoint{mirror_.index(), capture_->flushed, capture_->writes_through});
    flushed_pending_ = false;
    return 1;
}

void Primary::abort() noexcept {
    // Its flush must still reach the secondary's disk with the next checkpoint that commits.
    if (capture_ && capture_->flushed) flushed_pending_ = true;
    capture_.reset();
}

void Primary::receive(const protocol::Message& message) { mirror_.take_hashes(std::get<protocol::DiskHashes>(message)); }

void Primary::poll(const DeviceSend& send) { mirror_.send_queued(send); }

void Primary::teardown() noexcept { mirror_.stop(); }

// --- Secondary

Secondary::Secondary(GuestDisk& disk, std::uint32_t index, ProtectionMode mode, std::function<void()> wake)
    : disk_(disk), index_(index), mode_(mode), wake_(std::move(wake)), die_applying_(die_applying_checkpoint()) {}

Secondary::~Secondary() {
    if (overlay_) disk_.set_io(nullptr);
}

bool Secondary::owns(const protocol::Message& message) const {
    return is_for<protocol::DiskSyncBegin>(message, index_) || is_for<protocol::DiskWrite>(message, index_) ||
           is_for<protocol::DiskCheckpoint>(message, index_);
}

void Secondary::receive(const protocol::Message& message) {
    if (const auto* begin = std::get_if<protocol::DiskSyncBegin>(&message)) return sync_begin(*begin);
    if (const auto* write = std::get_if<protocol::DiskWrite>(&message)) return this->write(*write);
    throw Error(name() + ": " + protocol::message_name(message) + " outside a checkpoint");
}

void Secondary::sync_begin(const protocol::DiskSyncBegin& begin) {
    if (block_bytes_ != 0) throw Error(name() + ": a second disk-sync-begin");
    if (!disk_.config().target.empty()) marker_ = std::make_unique<DiskReplicaMarker>(disk_.config().target);
    disk_.resize(begin.size_bytes);
    block_bytes_ = begin.block_bytes;
    hash_total_ = (begin.size_bytes + begin.block_bytes - 1) / begin.block_bytes;
    hash_next_ = 0;
    hashing_ = true;
    if (wake_) wake_();
}

void Secondary::poll(const DeviceSend& send) {
    if (!hashing_) return;
    const std::uint64_t size = disk_.size_bytes();
    const std::uint64_t count = std::min({kHashBlocksPerPoll, hash_total_ - hash_next_,
                                          std::uint64_t{protocol::kMaxDiskHashesPerRecord}});
    protocol::DiskHashes piece{index_, hash_next_, hash_total_, {}};
    piece.hashes.reserve(count * protocol::kDiskHashBytes);
    std::vector<std::byte> block;
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint64_t offset = (hash_next_ + i) * block_bytes_;
        block.resize(std::min<std::uint64_t>(block_bytes_, size - offset));
        disk_.image().read(offset, block);
        const disk::BlockHash hash = disk::hash_block(block);
        piece.hashes.insert(piece.hashes.end(), hash.begin(), hash.end());
    }
    hash_next_ += count;
    hashing_ = hash_next_ < hash_total_;
    {
        std::lock_guard lock(stats_mutex_);
        stats_.sync_hashed_blocks = hash_next_;
    }
    send(piece);
    if (hashing_ && wake_) wake_();
}

void Secondary::write(protocol::DiskWrite write) {
    if (block_bytes_ == 0) throw Error(name() + ": disk-write before disk-sync-begin");
    if (active_) throw Error(name() + ": disk-write after the takeover");
    if (write.index != next_index_) {
        throw Error(name() + ": disk-write " + std::to_string(write.index) + " where " + std::to_string(next_index_) +
                    " was expected (writes are lost or repeated)");
    }
    const std::uint64_t size = disk_.size_bytes();
    if (write.offset > size || write.length > size - write.offset) {
        throw Error(name() + ": disk-write of " + std::to_string(write.length) + " bytes at " +
                    std::to_string(write.offset) + " passes the end of the disk (" + std::to_string(size) + " bytes)");
    }
    ++next_index_;
    if (!protecting_) {
        apply(write);
        return;
    }
    pending_.push_back(std::move(write));
    std::lock_guard lock(stats_mutex_);
    stats_.writes_pending = pending_.size();
}

void Secondary::apply(const protocol::DiskWrite& write) {
    if (write.data.empty()) {
        disk_.image().discard(write.offset, write.length);
    } else {
        disk_.image().write(write.offset, write.data);
    }
    std::lock_guard lock(stats_mutex_);
    ++stats_.writes_applied;
    stats_.bytes_applied += write.length;
}

void Secondary::setup() {
    if (block_bytes_ != 0 && hashing_) throw Error(name() + ": protection starts before the disk was hashed");
    // The copy is the PVM's image at the final pause: durable before protection starts.
    flush_due_ = true;
    protecting_ = true;
    if (mode_ == ProtectionMode::colo) {
        overlay_ = std::make_unique<disk::DiskOverlay>(disk_.image());
        disk_.set_io(overlay_.get());
    }
    if (marker_) marker_->set_committed(0);
}

void Secondary::begin() { staged_.reset(); }

void Secondary::stage(const protocol::Message& message) {
    const auto* checkpoint = std::get_if<protocol::DiskCheckpoint>(&message);
    if (!checkpoint) throw Error(name() + ": " + protocol::message_name(message) + " inside a checkpoint");
    if (staged_) throw Error(name() + ": a second disk-checkpoint in one checkpoint");
    staged_ = Staged{checkpoint->writes_through, checkpoint->flushed};
}

void Secondary::verify() {
    if (!staged_) throw Error(name() + ": the checkpoint has no disk-checkpoint");
    const std::uint64_t arrived = next_index_ - 1;
    if (staged_->writes_through > arrived) {
        throw Error(name() + ": the checkpoint covers writes through " + std::to_string(staged_->writes_through) +
                    ", only " + std::to_string(arrived) + " arrived");
    }
    const std::uint64_t applied = pending_.empty() ? arrived : pending_.front().index - 1;
    if (staged_->writes_through < applied) {
        throw Error(name() + ": the checkpoint covers writes through " + std::to_string(staged_->writes_through) +
                    ", but " + std::to_string(applied) + " were committed already");
    }
}

void Secondary::commit() {
    const std::uint64_t epoch = epoch_ + 1;
    if (marker_) marker_->set_applying(epoch);
    try {
        while (!pending_.empty() && pending_.front().index <= staged_->writes_through) {
            apply(pending_.front());
            pending_.pop_front();
            if (epoch == die_applying_) ::raise(SIGKILL);
        }
        if (staged_->flushed) {
            flush_due_ = true;
            std::lock_guard lock(stats_mutex_);
            ++stats_.flushes;
        }
    } catch (const Error& e) {
        // The mark stays at "applying": nobody may run a guest on this copy as it is.
        throw Error(name() + ": writing checkpoint " + std::to_string(epoch) + " into the copy: " + e.what());
    }
    // The SVM continues from the PVM's state: its own writes never happened.
    std::uint64_t dropped = 0;
    if (overlay_) {
        dropped = overlay_->bytes();
        overlay_->clear();
    }
    epoch_ = epoch;
    if (marker_) marker_->set_committed(epoch);
    staged_.reset();
    std::lock_guard lock(stats_mutex_);
    stats_.writes_pending = pending_.size();
    stats_.overlay_bytes_dropped += dropped;
}

void Secondary::abort() noexcept { staged_.reset(); }

void Secondary::take_over() {
    active_ = true;
    hashing_ = false;
    std::uint64_t overlay_bytes = 0;
    const std::uint64_t dropped = pending_.size();
    pending_.clear();
    if (overlay_) {
        overlay_bytes = overlay_->bytes();
        overlay_->write_back();
        disk_.set_io(nullptr);
        overlay_.reset();
    }
    disk_.image().flush();  // before the mark goes: from here on the copy is a disk
    flush_due_ = false;
    if (marker_) {
        marker_->remove();
        marker_.reset();
    }
    std::lock_guard lock(stats_mutex_);
    stats_.takeover_overlay_bytes = overlay_bytes;
    stats_.takeover_dropped_writes = dropped;
    stats_.writes_pending = 0;
}

void Secondary::make_durable() {
    if (!flush_due_) return;
    disk_.image().flush();
    flush_due_ = false;
}

SecondaryDiskStats Secondary::stats() const {
    std::lock_guard lock(stats_mutex_);
    return stats_;
}

}  // namespace colo::disk_device
