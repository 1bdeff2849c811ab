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
// each batch to `emit` in increasing frame order. Returns the number of pages read.
std::uint64_t for_each_page_batch(GuestMemory& memory, const DirtyBitmap& frames,
                                  std::uint64_t batch_pages,
                                  const std::function<void(protocol::PageBatch&&)>& emit);

// Throws colo::Error naming the problem unless the batch is well formed (data is exactly
// frames × page size) and every frame lies in `regions`.
void check_page_batch(const protocol::PageBatch& batch, const std::vector<MemoryRegion>& regions);

// Frames of a well-formed batch, into `into` (sized for the guest).
void mark_frames(const protocol::PageBatch& batch, DirtyBitmap& into);

}  // namespace colo
