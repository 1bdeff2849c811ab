#include "toolstack/replication/page_batches.hpp"

#include <variant>
#include <algorithm>
#include <string>

#include "backends/error.hpp"

namespace colo {

DirtyBitmap all_frames(const GuestMemory& memory) {
    DirtyBitmap all(memory.frame_limit());
    for (const auto& region : memory.regions()) all.set_range(region.first, region.pages);
    return all;
}

std::uint64_t for_each_page_batch(GuestMemory& memory, const DirtyBitmap& frames,
                                  std::uint64_t batch_pages,
                                  const std::function<void(protocol::Message&)>& emit) {
    if (batch_pages == 0) throw Error("replication: batch size must be at least one page");
    std::uint64_t total = 0;
    protocol::Message message{protocol::PageBatch{}};
    auto& batch = std::get<protocol::PageBatch>(message);
    batch.frames.reserve(batch_pages);
    auto flush = [&] {
        if (batch.frames.empty()) return;
        batch.data.resize(batch.frames.size() * kPageSize);
        memory.read_pages(batch.frames, batch.data);
        total += batch.frames.size();
        emit(message);
        batch.frames.clear();
    };
    frames.for_each_run([&](Pfn first, std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
            batch.frames.push_back(first + i);
            if (batch.frames.size() == batch_pages) flush();
        }
    });
    flush();
    return total;
}

std::uint64_t PageStaging::copy(GuestMemory& memory, const DirtyBitmap& frames, std::uint64_t batch_pages) {
    used_ = 0;
    return for_each_page_batch(memory, frames, batch_pages, [&](protocol::Message& message) {
        auto& batch = std::get<protocol::PageBatch>(message);
        if (used_ == batches_.size()) batches_.emplace_back(protocol::PageBatch{});
        auto& kept = std::get<protocol::PageBatch>(batches_[used_++]);
        kept.frames.assign(batch.frames.begin(), batch.frames.end());
        // std::swap keeps both buffers alive: the staging one gets the data, the scratch one
        // gets the staging one's old buffer to fill next.
        std::swap(kept.data, batch.data);
    });
}

void check_page_batch(const protocol::PageBatch& batch, const std::vector<MemoryRegion>& regions) {
    if (batch.data.size() != batch.frames.size() * kPageSize) {
        throw Error("replication: page-batch carries " + std::to_string(batch.data.size()) +
                    " bytes for " + std::to_string(batch.frames.size()) + " frames (expected " +
                    std::to_string(batch.frames.size() * kPageSize) + ")");
    }
    for (const Pfn pfn : batch.frames) {
        const bool inside = std::any_of(regions.begin(), regions.end(),
                                        [&](const MemoryRegion& r) { return r.contains(pfn); });
        if (!inside) {
            throw Error("replication: page-batch names frame " + std::to_string(pfn.value) +
                        ", outside guest memory");
        }
    }
}

void mark_frames(const protocol::PageBatch& batch, DirtyBitmap& into) {
    for (const Pfn pfn : batch.frames) into.set(pfn);
}

}  // namespace colo
