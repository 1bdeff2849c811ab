#include "toolstack/replication/disk_overlay.hpp"

#include <cstring>

namespace colo::disk {

template <typename Fn>
void DiskOverlay::for_each_piece(std::uint64_t offset, std::uint64_t length, Fn fn) {
    std::uint64_t done = 0;
    while (done < length) {
        const std::uint64_t at = offset + done;
        const std::uint64_t chunk = at / kChunkBytes;
        const std::uint64_t first = (at % kChunkBytes) / kSectorBytes;
        const std::uint64_t sectors = std::min(kSectorsPerChunk - first, (length - done) / kSectorBytes);
        fn(chunk, first, sectors, done);
        done += sectors * kSectorBytes;
    }
}

void DiskOverlay::read(std::uint64_t offset, std::span<std::byte> out) {
    image_.read(offset, out);
    std::lock_guard lock(mutex_);
    if (chunks_.empty()) return;
    for_each_piece(offset, out.size(), [&](std::uint64_t chunk, std::uint64_t first, std::uint64_t sectors, std::uint64_t at) {
        const auto found = chunks_.find(chunk);
        if (found == chunks_.end()) return;
        for (std::uint64_t s = 0; s < sectors; ++s) {
            if (!found->second.present[first + s]) continue;
            std::memcpy(out.data() + at + s * kSectorBytes, found->second.data.data() + (first + s) * kSectorBytes, kSectorBytes);
        }
    });
}

void DiskOverlay::put_locked(std::uint64_t offset, std::uint64_t length, const std::byte* data) {
    for_each_piece(offset, length, [&](std::uint64_t chunk, std::uint64_t first, std::uint64_t sectors, std::uint64_t at) {
        Chunk& c = chunks_[chunk];
        for (std::uint64_t s = 0; s < sectors; ++s) {
            std::byte* to = c.data.data() + (first + s) * kSectorBytes;
            if (data) {
                std::memcpy(to, data + at + s * kSectorBytes, kSectorBytes);
            } else {
                std::memset(to, 0, kSectorBytes);
            }
            if (!c.present[first + s]) {
                c.present[first + s] = true;
                ++sectors_;
            }
        }
    });
}

void DiskOverlay::write(std::uint64_t offset, std::span<const std::byte> data) {
    std::lock_guard lock(mutex_);
    put_locked(offset, data.size(), data.data());
}

void DiskOverlay::discard(std::uint64_t offset, std::uint64_t length) {
    std::lock_guard lock(mutex_);
    put_locked(offset, length, nullptr);
}

void DiskOverlay::clear() {
    std::lock_guard lock(mutex_);
    chunks_.clear();
    sectors_ = 0;
}

void DiskOverlay::write_back() {
    std::lock_guard lock(mutex_);
    for (const auto& [chunk, c] : chunks_) {
        // Runs of present sectors go in one write each.
        for (std::uint64_t s = 0; s < kSectorsPerChunk;) {
            if (!c.present[s]) {
                ++s;
                continue;
            }
            std::uint64_t end = s;
            while (end < kSectorsPerChunk && c.present[end]) ++end;
            image_.write(chunk * kChunkBytes + s * kSectorBytes,
                         std::span<const std::byte>(c.data.data() + s * kSectorBytes, (end - s) * kSectorBytes));
            s = end;
        }
    }
    chunks_.clear();
    sectors_ = 0;
}

std::uint64_t DiskOverlay::bytes() const {
    std::lock_guard lock(mutex_);
    return sectors_ * kSectorBytes;
}

}  // namespace colo::disk
