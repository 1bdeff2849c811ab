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

// All of a guest's memory, region after region (what a checkpoint holds of it).
inline std::vector<std::byte> snapshot_memory(GuestMemory& from) {
    std::vector<std::byte> out;
    for (const auto& region : from.regions()) {
        std::vector<Pfn> frames;
        for (std::uint64_t i = 0; i < region.pages; ++i) frames.push_back(region.first + i);
        const std::size_t at = out.size();
        out.resize(at + frames.size() * kPageSize);
        from.read_pages(frames, std::span(out).subspan(at));
    }
    return out;
}

// Puts a snapshot_memory back.
inline void write_memory(GuestMemory& to, const std::vector<std::byte>& snapshot) {
    std::size_t at = 0;
    for (const auto& region : to.regions()) {
        std::vector<Pfn> frames;
        for (std::uint64_t i = 0; i < region.pages; ++i) frames.push_back(region.first + i);
        to.write_pages(frames, std::span(snapshot).subspan(at, frames.size() * kPageSize));
        at += frames.size() * kPageSize;
    }
}

}  // namespace colo::test
