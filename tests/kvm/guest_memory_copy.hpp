// Copies all of one guest's memory into another's, as a migration would (for tests that move a
// guest into a new VM by hand).
#pragma once

#include <cstdint>
#include <vector>

#include "backends/guest_memory.hpp"

namespace colo::test {

inline void copy_memory(GuestMemory& from, GuestMemory& to) {
    std::vector<std::byte> buffer;
    for (const auto& region : from.regions()) {
        std::vector<Pfn> frames;
        for (std::uint64_t i = 0; i < region.pages; ++i) frames.push_back(region.first + i);
        buffer.resize(frames.size() * kPageSize);
        from.read_pages(frames, buffer);
        to.write_pages(frames, buffer);
    }
}

}  // namespace colo::test
