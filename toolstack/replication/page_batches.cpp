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

namespace {

// Hands `fill` the frames set in `frames`, in increasing order, in groups of at most batch_pages.
template <typename Fill>
std::uint64_t for_each_frame_group(const DirtyBitmap& frames, std::uint64_t batch_pages, std::vector<Pfn>& group,
                                   Fill fill) {
    if (batch_pages == 0) throw Error("replication: batch size must be at least one page");
    std::uint64_t total = 0;
    group.clear();
    auto flush = [&] {
        if (group.empty()) return;
        total += group.size();
        fill();
        group.clear();
    };
    frames.for_each_run([&](Pfn first, std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
            group.push_back(first + i);
            if (group.size() == batch_pages) flush();
        }
    });
    flush();
    return total;
}

void read_batch(GuestMemory& memory, protocol::PageBatch& batch) {
    // Within the capacity a batch buffer already has, resize neither allocates nor (when it
    // shrinks or stays) clears: the read below overwrites every byte anyway.
    batch.data.resize(batch.frames.size() * kPageSize);
    memory.read_pages(batch.frames, batch.data);
}

}  // namespace

std::uint64_t for_each_page_batch(GuestMemory& memory, const DirtyBitmap& frames,
                                  std::uint64_t batch_pages,
                                  const std::function<void(protocol::Message&)>& emit) {
    protocol::Message message{protocol::PageBatch{}};
    auto& batch = std::get<protocol::PageBatch>(message);
    batch.frames.reserve(batch_pages);
    return for_each_frame_group(frames, batch_pages, batch.frames, [&] {
        read_batch(memory, batch);
        emit(message);
    });
}

std::uint64_t PageStaging::copy(GuestMemory& memory, const DirtyBitmap& frames, std::uint64_t batch_pages) {
    used_ = 0;
    return for_each_frame_group(frames, batch_pages, group_, [&] {
        if (used_ == batches_.size()) batches_.emplace_back(protocol::PageBatch{});
        auto& kept = std::get<protocol::PageBatch>(batches_[used_++]);
        kept.frames.assign(group_.begin(), group_.end());
        read_batch(memory, kept);
    });
}

void PageStaging::prepare(std::size_t batches, std::uint64_t batch_pages) {
    while (batches_.size() < batches) batches_.emplace_back(protocol::PageBatch{});
    for (auto& message : batches_) {
        auto& batch = std::get<protocol::PageBatch>(message);
        batch.frames.reserve(batch_pages);
        // resize() writes every byte: the pages are faulted in here, not in the paused copy.
        if (batch.data.size() < batch_pages * kPageSize) batch.data.resize(batch_pages * kPageSize);
    }
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
