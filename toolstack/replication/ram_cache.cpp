#include "toolstack/replication/ram_cache.hpp"

#include <variant>
#include <cstring>
#include <string>

#include "backends/error.hpp"
#include "toolstack/replication/page_batches.hpp"

namespace colo {

RamCache::RamCache(std::vector<MemoryRegion> regions) : regions_(std::move(regions)) {
    std::size_t bytes = 0;
    for (const auto& region : regions_) {
        region_offset_.push_back(bytes);
        bytes += region.pages * kPageSize;
    }
    data_.resize(bytes);
}

std::size_t RamCache::offset_of(Pfn pfn) const {
    for (std::size_t i = 0; i < regions_.size(); ++i) {
        if (regions_[i].contains(pfn)) {
            return region_offset_[i] + (pfn.value - regions_[i].first.value) * kPageSize;
        }
    }
    throw Error("ram cache: frame " + std::to_string(pfn.value) + " is outside guest memory");
}

void RamCache::store(std::span<const Pfn> frames, std::span<const std::byte> data) {
    if (data.size() != frames.size() * kPageSize) throw Error("ram cache: store buffer size");
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::memcpy(data_.data() + offset_of(frames[i]), data.data() + i * kPageSize, kPageSize);
    }
}

std::span<const std::byte> RamCache::page(Pfn pfn) const {
    return {data_.data() + offset_of(pfn), kPageSize};
}

std::uint64_t RamCache::fill_from(GuestMemory& memory, std::uint64_t batch_pages) {
    return for_each_page_batch(memory, all_frames(memory), batch_pages,
                               [&](const protocol::Message& message) {
                                   const auto& batch = std::get<protocol::PageBatch>(message);
                                   store(batch.frames, batch.data);
                               });
}

std::uint64_t RamCache::flush_to(GuestMemory& memory, const DirtyBitmap& frames,
                                 std::uint64_t batch_pages) const {
    std::uint64_t written = 0;
    std::vector<Pfn> batch;
    std::vector<std::byte> buffer;
    auto flush = [&] {
        if (batch.empty()) return;
        buffer.resize(batch.size() * kPageSize);
        for (std::size_t i = 0; i < batch.size(); ++i) {
            std::memcpy(buffer.data() + i * kPageSize, page(batch[i]).data(), kPageSize);
        }
        memory.write_pages(batch, buffer);
        written += batch.size();
        batch.clear();
    };
    frames.for_each_run([&](Pfn first, std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
            batch.push_back(first + i);
            if (batch.size() == batch_pages) flush();
        }
    });
    flush();
    return written;
}

}  // namespace colo
