#include "backends/guest_memory.hpp"

#include <algorithm>

#include "backends/error.hpp"

namespace colo {

std::uint64_t GuestMemory::frame_limit() const {
    std::uint64_t limit = 0;
    for (const auto& r : regions()) limit = std::max(limit, r.end().value);
    return limit;
}

void GuestMemory::drop_private_copies(const DirtyBitmap& /*frames*/) {
    throw Error("guest memory: drop_private_copies without a copy-on-write mapping");
}

bool GuestMemory::contains(Pfn pfn) const {
    const auto all = regions();
    return std::any_of(all.begin(), all.end(), [&](const MemoryRegion& r) { return r.contains(pfn); });
}

}  // namespace colo
