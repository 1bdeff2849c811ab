#include "toolstack/replication/disk_mirror.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "backends/error.hpp"
#include "toolstack/replication/disk_block_hash.hpp"

namespace colo::disk {

namespace {

bool all_zero(std::span<const std::byte> bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

DiskMirror::DiskMirror(GuestDisk& disk, std::uint32_t index, std::function<void()> wake)
    : disk_(disk), index_(index), wake_(std::move(wake)) {}

DiskMirror::~DiskMirror() { stop(); }

void DiskMirror::Io::read(std::uint64_t offset, std::span<std::byte> out) { mirror_.disk_.image().read(offset, out); }

void DiskMirror::Io::write(std::uint64_t offset, std::span<const std::byte> data) {
    {
        std::lock_guard lock(mirror_.mutex_);
        try {
            mirror_.disk_.image().write(offset, data);
        } catch (...) {
            // Part of it may have reached the image: send what the image holds now, so the copy
            // stays the same as this image whatever the guest is told.
            std::vector<std::byte> now(data.size());
            try {
                mirror_.disk_.image().read(offset, now);
                mirror_.queue_locked(offset, now.size(), now);
            } catch (...) {
                // Unreadable too: the next sync of this disk finds the difference.
            }
            throw;
        }
        mirror_.queue_locked(offset, data.size(), data);
        ++mirror_.stats_.writes;
        mirror_.stats_.write_bytes += data.size();
    }
    if (mirror_.wake_) mirror_.wake_();
}

void DiskMirror::Io::discard(std::uint64_t offset, std::uint64_t length) {
    {
        std::lock_guard lock(mirror_.mutex_);
        mirror_.disk_.image().discard(offset, length);
        mirror_.queue_locked(offset, length, {});
        ++mirror_.stats_.writes;
    }
    if (mirror_.wake_) mirror_.wake_();
}

void DiskMirror::Io::flush() {
    mirror_.disk_.image().flush();
    mirror_.flushed_ = true;
}

void DiskMirror::queue_locked(std::uint64_t offset, std::uint64_t length, std::span<const std::byte> data) {
    // One record carries at most kMaxDiskWriteBytes; zeros carry no data and need no split.
    if (data.empty()) {
        queue_.push_back(protocol::DiskWrite{index_, next_index_++, offset, length, {}});
        return;
    }
    for (std::uint64_t done = 0; done < length;) {
        const std::uint64_t piece = std::min<std::uint64_t>(length - done, protocol::kMaxDiskWriteBytes);
        const auto bytes = data.subspan(done, piece);
        queue_.push_back(protocol::DiskWrite{index_, next_index_++, offset + done, piece, {bytes.begin(), bytes.end()}});
        done += piece;
    }
}

void DiskMirror::start(const DeviceSend& send) {
    if (started_) throw Error("disk " + std::to_string(index_) + ": the mirror was started already");
    const std::uint64_t size = disk_.size_bytes();
    {
        std::lock_guard lock(mutex_);
        blocks_ = (size + kSyncBlockBytes - 1) / kSyncBlockBytes;
        stats_.size_bytes = size;
        stats_.sync_blocks = blocks_;
    }
    started_ = true;
    started_at_ = std::chrono::steady_clock::now();
    disk_.set_io(&io_);
    send(protocol::DiskSyncBegin{index_, kSyncBlockBytes, size});
}

void DiskMirror::take_hashes(const protocol::DiskHashes& hashes) {
    std::lock_guard lock(mutex_);
    const std::string who = "disk " + std::to_string(index_) + ": disk-hashes ";
    if (!started_) throw Error(who + "before disk-sync-begin");
    if (hashes.blocks_total != blocks_) {
        throw Error(who + "for " + std::to_string(hashes.blocks_total) + " blocks, the image has " +
                    std::to_string(blocks_));
    }
    if (hashes.first_block != hashes_in_) {
        throw Error(who + "start at block " + std::to_string(hashes.first_block) + ", expected " +
                    std::to_string(hashes_in_));
    }
    remote_.insert(remote_.end(), hashes.hashes.begin(), hashes.hashes.end());
    hashes_in_ += hashes.hashes.size() / protocol::kDiskHashBytes;
}

bool DiskMirror::hashes_complete() const {
    std::lock_guard lock(mutex_);
    return started_ && hashes_in_ == blocks_;
}

bool DiskMirror::synced() const {
    std::lock_guard lock(mutex_);
    return started_ && cursor_ == blocks_;
}

std::uint64_t DiskMirror::last_index() const {
    std::lock_guard lock(mutex_);
    return next_index_ - 1;
}

void DiskMirror::send_queued(const DeviceSend& send) {
    for (;;) {
        protocol::DiskWrite write;
        {
            std::lock_guard lock(mutex_);
            if (queue_.empty()) return;
            write = std::move(queue_.front());
            queue_.pop_front();
        }
        // Sent outside the mutex: a slow link must not hold up the guest's writes. Only this
        // thread takes from the queue, so the order stays.
        send(write);
    }
}

bool DiskMirror::send_some(const DeviceSend& send, std::uint64_t budget) {
    send_queued(send);
    std::uint64_t spent = 0;
    std::vector<std::byte> block;
    while (spent < budget) {
        {
            std::lock_guard lock(mutex_);
            if (cursor_ == blocks_ || cursor_ >= hashes_in_) break;
            const std::uint64_t offset = cursor_ * kSyncBlockBytes;
            const std::uint64_t length = std::min<std::uint64_t>(kSyncBlockBytes, stats_.size_bytes - offset);
            block.resize(length);
            disk_.image().read(offset, block);
            const BlockHash mine = hash_block(block);
            const bool same = std::memcmp(mine.data(), remote_.data() + cursor_ * protocol::kDiskHashBytes, mine.size()) == 0;
            ++cursor_;
            stats_.sync_blocks_done = cursor_;
            spent += length;
            if (!same) {
                ++stats_.sync_blocks_sent;
                if (all_zero(block)) {
                    queue_locked(offset, length, {});
                } else {
                    queue_locked(offset, length, block);
                    stats_.sync_bytes_sent += length;
                }
            }
            if (cursor_ == blocks_) {
                stats_.sync_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                               std::chrono::steady_clock::now() - started_at_)
                                                               .count());
                remote_ = {};
            }
        }
        send_queued(send);
    }
    return spent > 0;
}

void DiskMirror::stop() noexcept {
    if (started_) disk_.set_io(nullptr);
}

MirrorStats DiskMirror::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

}  // namespace colo::disk
