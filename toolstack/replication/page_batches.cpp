#include "toolstack/replication/page_batches.hpp"

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
                                  const std::function<void(protocol::PageBatch&&)>& emit) {
    if (batch_pages == 0) throw Error("replication: batch size must be at least one page");
    std::uint64_t total = 0;
    std::vector<Pfn> pending;
    pending.reserve(batch_pages);
    auto flush = [&] {
        if (pending.empty()) return;
        protocol::PageBatch batch;
        batch.frames = pending;
        batch.data.resize(pending.size() * kPageSize);
        memory.read_pages(batch.frames, batch.data);
        total += pending.size();
        pending.clear();
        emit(std::move(batch));
    };
    frames.for_each_run([&](Pfn first, std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
            pending.push_back(first + i);
            if (pending.size() == batch_pages) flush();
        }
    });
    flush();
    return total;
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
