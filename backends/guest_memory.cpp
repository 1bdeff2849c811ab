#include "backends/guest_memory.hpp"

#include <algorithm>

namespace colo {

std::uint64_t GuestMemory::frame_limit() const {
    std::uint64_t limit = 0;
    for (const auto& r : regions()) limit = std::max(limit, r.end().value);
    return limit;
}

bool GuestMemory::contains(Pfn pfn) const {
    const auto all = regions();
    return std::any_of(all.begin(), all.end(), [&](const MemoryRegion& r) { return r.contains(pfn); });
}

}  // namespace colo
