#include "xen/map_cache.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "backends/error.hpp"

namespace colo::xen {

namespace {

std::string frame_context(DomainId domain, Pfn pfn) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(pfn.value));
    return "domain " + std::to_string(domain) + " frame " + hex;
}

bool access_covers(MapAccess have, MapAccess want) {
    return have == MapAccess::read_write || want == MapAccess::read_only;
}

}  // namespace

MapCache::MapCache(XenCalls& calls, DomainId domain, std::uint64_t chunk_pages)
    : calls_(calls), domain_(domain), chunk_pages_(chunk_pages) {
    if (chunk_pages_ == 0) throw Error("xen map cache: chunk size must be at least one page");
}

std::vector<MemoryRegion> MapCache::probe(Pfn limit, std::uint64_t populated) {
    limit_ = limit.value;
    singles_.clear();
    chunks_.clear();
    const std::uint64_t count = (limit_ + chunk_pages_ - 1) / chunk_pages_;
    chunks_.resize(count);
    std::vector<bool> ram(limit_, false);
    std::vector<bool> probed(count, false);
    std::uint64_t found = 0;
    const auto enough = [&] { return populated != 0 && found >= populated; };
    const auto visit = [&](std::uint64_t index) {
        probed[index] = true;
        return probe_chunk(index, ram);
    };
    // Up from frame 0 to the first chunk without RAM, then down from the top to the first
    // chunk without RAM, then the middle, downwards: below 4 GiB, x86 guests keep their ACPI
    // tables and Xen's special pages near the top of the hole, not near low RAM.
    std::uint64_t low = 0;
    for (; low < count && !enough(); ++low) {
        const std::uint64_t n = visit(low);
        found += n;
        if (n == 0) break;
    }
    for (std::uint64_t high = count; high > low + 1 && !enough();) {
        --high;
        const std::uint64_t n = visit(high);
        found += n;
        if (n == 0) break;
    }
    for (std::uint64_t index = count; index > 0 && !enough();) {
        --index;
        if (!probed[index]) found += visit(index);
    }
    std::vector<MemoryRegion> regions;
    for (std::uint64_t pfn = 0; pfn < limit_; ++pfn) {
        if (!ram[pfn]) continue;
        if (!regions.empty() && regions.back().end() == Pfn{pfn}) {
            ++regions.back().pages;
        } else {
            regions.push_back(MemoryRegion{Pfn{pfn}, 1});
        }
    }
    return regions;
}

std::uint64_t MapCache::probe_chunk(std::uint64_t index, std::vector<bool>& ram) {
    map_chunk(index, MapAccess::read_only);
    Chunk& chunk = chunks_[index];
    std::uint64_t found = 0;
    for (std::uint64_t i = 0; i < chunk.errors.size(); ++i) {
        const int e = chunk.errors[i];
        if (e != 0 && e != ENOENT) continue;  // a hole
        if (e == ENOENT) ++deferred_frames_;
        ram[index * chunk_pages_ + i] = true;
        ++found;
    }
    // A chunk of nothing but holes keeps no mapping; its errors say why.
    if (found == 0) chunk.mapping.reset();
    return found;
}

void MapCache::map_chunk(std::uint64_t index, MapAccess access) {
    Chunk& chunk = chunks_[index];
    const std::uint64_t first = index * chunk_pages_;
    const std::uint64_t count = std::min(chunk_pages_, limit_ - first);
    std::vector<Pfn> frames(count);
    for (std::uint64_t i = 0; i < count; ++i) frames[i] = Pfn{first + i};
    std::vector<int> errors(count, 0);
    ++map_calls_;
    ForeignMapping mapping = calls_.map_foreign(domain_, access, frames, errors);
    chunk.mapping = std::move(mapping);
    chunk.errors = std::move(errors);
    chunk.access = access;
    // Deferred frames of this chunk that now mapped no longer need their own mapping.
    for (std::uint64_t i = 0; i < count; ++i) {
        if (chunk.errors[i] == 0) singles_.erase(first + i);
    }
}

std::byte* MapCache::page(Pfn pfn, MapAccess access) {
    if (pfn.value >= limit_) {
        throw Error("xen map cache: " + frame_context(domain_, pfn) + " is beyond the probed range");
    }
    const std::uint64_t index = pfn.value / chunk_pages_;
    const std::uint64_t offset = pfn.value % chunk_pages_;
    Chunk& chunk = chunks_[index];
    if (!chunk.mapping.mapped() || !access_covers(chunk.access, access)) map_chunk(index, access);
    const int e = chunk.errors[offset];
    if (e == 0) return chunk.mapping.page(offset);
    if (e != ENOENT) throw SystemError("xenforeignmemory_map", e, frame_context(domain_, pfn));
    return map_deferred(pfn, access);
}

std::byte* MapCache::map_deferred(Pfn pfn, MapAccess access) {
    if (auto it = singles_.find(pfn.value); it != singles_.end() && access_covers(it->second.access, access)) {
        return it->second.mapping.page(0);
    }
    int e = ENOENT;
    for (unsigned attempt = 0; attempt < kDeferredAttempts; ++attempt) {
        int error = 0;
        ++map_calls_;
        ForeignMapping mapping = calls_.map_foreign(domain_, access, std::span(&pfn, 1), std::span(&error, 1));
        if (error == 0) {
            std::byte* page = mapping.page(0);
            singles_[pfn.value] = Single{std::move(mapping), access};
            return page;
        }
        e = error;
        if (e != ENOENT) break;
        ++deferred_frames_;
    }
    const std::string why = e == ENOENT ? " (still paged out or shared after " +
                                              std::to_string(kDeferredAttempts) + " attempts)"
                                        : "";
    throw SystemError("xenforeignmemory_map", e, frame_context(domain_, pfn) + why);
}

}  // namespace colo::xen
