// Guest memory as the pipeline sees it: a list of guest-physical regions it can read and write
// page-wise. A KVM backend hands out its own mapping; a Xen backend maps foreign frames in
// batches. The pipeline never learns which.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backends/guest_address.hpp"

namespace colo {

struct MemoryRegion {
    Pfn first;                // first guest frame of the region
    std::uint64_t pages = 0;  // length in frames

    [[nodiscard]] Pfn end() const { return first + pages; }
    [[nodiscard]] bool contains(Pfn pfn) const { return pfn >= first && pfn < end(); }
    bool operator==(const MemoryRegion&) const = default;
};

class GuestMemory {
public:
    virtual ~GuestMemory() = default;

    // The guest's RAM, sorted by first frame, non-overlapping.
    [[nodiscard]] virtual std::vector<MemoryRegion> regions() const = 0;

    // Copies frames[i] into out[i*kPageSize, (i+1)*kPageSize). out.size() == frames.size()*kPageSize.
    // Throws colo::Error for a frame outside every region.
    virtual void read_pages(std::span<const Pfn> frames, std::span<std::byte> out) = 0;

    // The reverse of read_pages. Writes made through this call are the VMM's own and do not show
    // up in the hypervisor's dirty log of the guest being written (it is not running anyway).
    virtual void write_pages(std::span<const Pfn> frames, std::span<const std::byte> in) = 0;

    // Total frames from 0 to the end of the highest region: the size a DirtyBitmap needs.
    [[nodiscard]] std::uint64_t frame_limit() const;
    [[nodiscard]] bool contains(Pfn pfn) const;
};

}  // namespace colo
