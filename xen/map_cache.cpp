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

std::vector<MemoryRegion> MapCache::probe(Pfn limit) {
    limit_ = limit.value;
    singles_.clear();
    chunks_.clear();
    chunks_.resize((limit_ + chunk_pages_ - 1) / chunk_pages_);
    std::vector<MemoryRegion> ram;
    for (std::uint64_t index = 0; index < chunks_.size(); ++index) {
        map_chunk(index, MapAccess::read_only);
        Chunk& chunk = chunks_[index];
        bool any_ram = false;
        for (std::uint64_t i = 0; i < chunk.errors.size(); ++i) {
            const int e = chunk.errors[i];
            if (e != 0 && e != ENOENT) continue;  // a hole
            if (e == ENOENT) ++deferred_frames_;
            any_ram = true;
            const Pfn pfn{index * chunk_pages_ + i};
            if (!ram.empty() && ram.back().end() == pfn) {
                ++ram.back().pages;
            } else {
                ram.push_back(MemoryRegion{pfn, 1});
            }
        }
        // A chunk of nothing but holes keeps no mapping; its errors say why.
        if (!any_ram) chunk.mapping.reset();
    }
    return ram;
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
