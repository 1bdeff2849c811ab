// The guest's frames, mapped into our address space in fixed chunks and kept mapped, so a
// checkpoint reads dirty pages without a map call per page (Xen's own save code maps and unmaps
// every batch; QEMU's Xen mapcache keeps buckets mapped, as this does).
//
// probe() maps the guest-physical range read-only and learns from the per-page errors which
// frames are RAM: a frame Xen refuses with EINVAL (or any error but ENOENT) is a hole, not
// populated. A frame refused with ENOENT is RAM that Xen is paging in or unsharing: it is
// "deferred", not cached, and mapped again on its own when it is next used.
//
// Probing a hole costs as much as mapping RAM, and an HVM/PVH guest's range is mostly hole: RAM
// from 0, then nothing up to a few special pages just below 4 GiB. So probe() stops as soon as it
// has found as many frames as Xen says the domain has populated, and looks where they are: up
// from 0 to the first empty chunk, then down from the top, then what is left, top down. If the count
// never adds up (the guest ballooned meanwhile) it simply probes everything.
// Known gap: a frame Xen owns but the guest placed in its physmap (Linux PVH puts its shared-info
// or grant frames in a hole, e.g. 0xffff) maps too, yet is not in the populated count; whether
// probe() meets it depends on where it lies. Such frames are not the guest's RAM and Xen's own
// save code re-creates them rather than copying them; replicating them is left to the pipeline.
//
// Access only grows: a chunk first mapped read-only (the primary only reads) is mapped again
// writable the first time a page in it is written (the secondary), and stays so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "backends/guest_memory.hpp"
#include "xen/foreign_mapping.hpp"
#include "xen/xen_calls.hpp"

namespace colo::xen {

class MapCache {
public:
    static constexpr std::uint64_t kDefaultChunkPages = 1024;  // 4 MiB per map call
    // A deferred frame is tried this many times per use before the use fails; the library
    // already waits for paging inside each map call.
    static constexpr unsigned kDeferredAttempts = 3;

    MapCache(XenCalls& calls, DomainId domain, std::uint64_t chunk_pages = kDefaultChunkPages);

    // Finds the RAM among frames [0, limit), expecting `populated` frames of it (0: unknown,
    // probe all), maps it, and returns it sorted as maximal runs.
    [[nodiscard]] std::vector<MemoryRegion> probe(Pfn limit, std::uint64_t populated = 0);

    // The page of `pfn`, mapped with at least `access`. The pointer stays valid until a later
    // call upgrades that chunk's access. Throws SystemError("xenforeignmemory_map", errno) when
    // Xen refuses the frame (or keeps it deferred), colo::Error for a frame beyond the probed range.
    [[nodiscard]] std::byte* page(Pfn pfn, MapAccess access);

    [[nodiscard]] std::uint64_t limit() const noexcept { return limit_; }
    // Map calls made so far (probe included): the measure of how well the cache works.
    [[nodiscard]] std::uint64_t map_calls() const noexcept { return map_calls_; }
    // Frames that came back deferred at probe time or since.
    [[nodiscard]] std::uint64_t deferred_frames() const noexcept { return deferred_frames_; }

private:
    struct Chunk {
        ForeignMapping mapping;
        std::vector<int> errors;  // per page, from the last map call
        MapAccess access = MapAccess::read_only;
    };
    struct Single {
        ForeignMapping mapping;
        MapAccess access = MapAccess::read_only;
    };

    void map_chunk(std::uint64_t index, MapAccess access);
    // Maps chunk `index` for probe(): adds its RAM frames to `ram`; returns how many.
    std::uint64_t probe_chunk(std::uint64_t index, std::vector<bool>& ram);
    std::byte* map_deferred(Pfn pfn, MapAccess access);

    XenCalls& calls_;
    DomainId domain_;
    std::uint64_t chunk_pages_;
    std::uint64_t limit_ = 0;
    std::vector<Chunk> chunks_;
    std::unordered_map<std::uint64_t, Single> singles_;  // by frame: deferred frames mapped alone
    std::uint64_t map_calls_ = 0;
    std::uint64_t deferred_frames_ = 0;
};

}  // namespace colo::xen
