// The secondary's RAM cache: a full copy of the PVM's memory as of the latest pages received.
// Streamed and checkpoint pages land here, never directly in the SVM; at a verified checkpoint
// the pages that changed are flushed from here into the SVM's memory. Laid out per guest region
// so holes in the guest-physical map cost nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backends/dirty_bitmap.hpp"
#include "backends/guest_memory.hpp"

namespace colo {

class RamCache {
public:
    explicit RamCache(std::vector<MemoryRegion> regions);

    // Same layout as GuestMemory::read_pages/write_pages. Throws colo::Error for a frame outside.
    void store(std::span<const Pfn> frames, std::span<const std::byte> data);
    [[nodiscard]] std::span<const std::byte> page(Pfn pfn) const;

    // Copies all of `memory` into the cache (entering COLO without cache backup). Returns pages.
    std::uint64_t fill_from(GuestMemory& memory, std::uint64_t batch_pages);
    // Writes the cached copy of every frame in `frames` into `memory`. Returns pages written.
    std::uint64_t flush_to(GuestMemory& memory, const DirtyBitmap& frames, std::uint64_t batch_pages) const;

    [[nodiscard]] const std::vector<MemoryRegion>& regions() const { return regions_; }

private:
    [[nodiscard]] std::size_t offset_of(Pfn pfn) const;

    std::vector<MemoryRegion> regions_;
    std::vector<std::size_t> region_offset_;  // byte offset of each region in data_
    std::vector<std::byte> data_;
};

}  // namespace colo
