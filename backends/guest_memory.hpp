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

class DirtyBitmap;

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

    // Optional: guest memory as a copy-on-write view of a file (a COLO secondary's RAM cache, so
    // the SVM costs no second copy of the guest). After map_copy_on_write(fd) the memory reads
    // the file: frame f reads the page at its packed offset (the regions laid one after another
    // from offset 0, in order), and sees every later change of that page in the file, until the
    // guest, the VMM or write_pages writes the frame; that write goes to a private copy the file
    // never sees. drop_private_copies(frames) discards the private copies of `frames` (their
    // writes are lost): they read the file again. What the memory held before is gone. The file
    // must be at least as long as the regions; the memory keeps it open. Returns false, and
    // changes nothing, when the memory cannot (Xen: the frames are a domain's): the default.
    [[nodiscard]] virtual bool map_copy_on_write(int /*fd*/) { return false; }
    // Only after map_copy_on_write succeeded (colo::Error otherwise).
    virtual void drop_private_copies(const DirtyBitmap& frames);

    // Total frames from 0 to the end of the highest region: the size a DirtyBitmap needs.
    [[nodiscard]] std::uint64_t frame_limit() const;
    [[nodiscard]] bool contains(Pfn pfn) const;
};

}  // namespace colo
