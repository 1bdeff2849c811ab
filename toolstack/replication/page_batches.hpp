// Turning a set of dirty frames into PageBatch messages and checking incoming ones. Every phase
// (pre-copy rounds, streaming, checkpoints) ships pages this way.
#pragma once

#include <cstdint>
#include <functional>

#include "backends/dirty_bitmap.hpp"
#include "backends/guest_memory.hpp"
#include "toolstack/protocol/messages.hpp"

namespace colo {

// Every frame of every region of `memory`, in a bitmap of frame_limit() frames.
[[nodiscard]] DirtyBitmap all_frames(const GuestMemory& memory);

// Reads the frames set in `frames` from `memory` in batches of at most `batch_pages` and hands
// each batch to `emit` in increasing frame order, as a Message holding a PageBatch, ready to send
// without a copy. Returns the number of pages read. It is one buffer reused for every batch (a
// megabyte allocated afresh is a fresh mmap whose pages all fault in again): `emit` reads it, or
// swaps out of it what it keeps.
std::uint64_t for_each_page_batch(GuestMemory& memory, const DirtyBitmap& frames,
                                  std::uint64_t batch_pages,
                                  const std::function<void(protocol::Message&)>& emit);

// A checkpoint's pages, copied out while the guest is paused and sent after it resumed. The
// buffers stay allocated from one checkpoint to the next, so the paused copy is a plain memcpy
// into memory that is already there.
class PageStaging {
public:
    // Replaces the contents with the frames set in `frames`. Returns the number of pages.
    std::uint64_t copy(GuestMemory& memory, const DirtyBitmap& frames, std::uint64_t batch_pages);
    // Allocates and touches buffers for `batches` batches of `batch_pages` pages now, while the
    // guest runs, so the first checkpoints do not fault them in while it is paused.
    void prepare(std::size_t batches, std::uint64_t batch_pages);
    [[nodiscard]] std::size_t size() const { return used_; }
    // A Message holding the i-th PageBatch.
    [[nodiscard]] const protocol::Message& operator[](std::size_t i) const { return batches_[i]; }

private:
    std::vector<protocol::Message> batches_;
    std::size_t used_ = 0;
    std::vector<Pfn> group_;
};

// Throws colo::Error naming the problem unless the batch is well formed (data is exactly
// frames × page size) and every frame lies in `regions`.
void check_page_batch(const protocol::PageBatch& batch, const std::vector<MemoryRegion>& regions);

// Frames of a well-formed batch, into `into` (sized for the guest).
void mark_frames(const protocol::PageBatch& batch, DirtyBitmap& into);

}  // namespace colo
