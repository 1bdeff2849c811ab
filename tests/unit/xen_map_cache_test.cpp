// Guest memory of the Xen backend through the map cache, against the fake domain: which frames
// are RAM, that a checkpoint reuses mappings (map calls counted), deferred and failed frames,
// and the read-only to writable upgrade.
#include <doctest/doctest.h>

#include <cerrno>
#include <memory>

#include "backends/error.hpp"
#include "tests/unit/xen_fake_domain.hpp"
#include "xen/map_cache.hpp"
#include "xen/xen_backend.hpp"

using colo::MemoryRegion;
using colo::Pfn;
using colo::kPageSize;
using colo::xen::FakeDomain;
using colo::xen::MapAccess;
using colo::xen::MapCache;
using colo::xen::XenBackend;

namespace {

constexpr colo::xen::DomainId kDomid = 3;

std::vector<std::byte> read(colo::GuestMemory& m, std::vector<Pfn> frames) {
    std::vector<std::byte> out(frames.size() * kPageSize);
    m.read_pages(frames, out);
    return out;
}

}  // namespace

TEST_CASE("xen map cache: probe finds RAM around holes, in one map call per chunk") {
    FakeDomain d(kDomid, 1000);
    d.make_hole(Pfn{0xa0}, 0x60);   // like the VGA hole
    d.make_hole(Pfn{512}, 256);     // a whole chunk and a half of nothing
    MapCache cache(d, kDomid, 256);
    const auto ram = cache.probe(Pfn{1000}, d.info.pages);
    CHECK(ram == std::vector<MemoryRegion>{{Pfn{0}, 0xa0}, {Pfn{0x100}, 512 - 0x100}, {Pfn{768}, 232}});
    CHECK(d.counters.map_calls == 4);
    CHECK(cache.map_calls() == 4);
    // The all-hole chunk keeps no mapping.
    CHECK(d.live_mappings() == 3);
    for (MapAccess a : d.map_accesses) CHECK(a == MapAccess::read_only);
}

TEST_CASE("xen map cache: probe stops once it has found every populated frame") {
    // RAM at the bottom, a few special pages near the top, and (third case) some in the middle:
    // the layout of a PVH guest, whose range is mostly hole.
    SUBCASE("bottom and top") {
        FakeDomain d(kDomid, 1000);
        d.make_hole(Pfn{100}, 890);
        MapCache cache(d, kDomid, 64);
        const auto ram = cache.probe(Pfn{1000}, d.info.pages);
        CHECK(ram == std::vector<MemoryRegion>{{Pfn{0}, 100}, {Pfn{990}, 10}});
        CHECK(d.counters.map_calls == 4);  // chunks 0, 1, 2 (empty), then 15 from the top
    }
    SUBCASE("bottom, middle and top") {
        FakeDomain d(kDomid, 1000);
        d.make_hole(Pfn{100}, 400);
        d.make_hole(Pfn{510}, 480);
        MapCache cache(d, kDomid, 64);
        const auto ram = cache.probe(Pfn{1000}, d.info.pages);
        CHECK(ram == std::vector<MemoryRegion>{{Pfn{0}, 100}, {Pfn{500}, 10}, {Pfn{990}, 10}});
        CHECK(d.counters.map_calls < 16);
    }
    SUBCASE("a count that never adds up probes everything") {
        FakeDomain d(kDomid, 1000);
        d.make_hole(Pfn{100}, 890);
        MapCache cache(d, kDomid, 64);
        const auto ram = cache.probe(Pfn{1000}, d.info.pages + 1);
        CHECK(ram == std::vector<MemoryRegion>{{Pfn{0}, 100}, {Pfn{990}, 10}});
        CHECK(d.counters.map_calls == 16);
    }
}

TEST_CASE("xen map cache: reading pages again and again makes no new map calls") {
    auto owned = std::make_unique<FakeDomain>(kDomid, 600);
    FakeDomain& d = *owned;
    XenBackend b(std::move(owned), kDomid, "g", 128);
    const unsigned after_probe = d.counters.map_calls;
    CHECK(after_probe == 5);
    d.guest_write(Pfn{10}, std::byte{1});
    d.guest_write(Pfn{599}, std::byte{2});
    for (int round = 0; round < 10; ++round) {
        const auto bytes = read(b.memory(), {Pfn{10}, Pfn{599}, Pfn{300}});
        CHECK(bytes[0] == std::byte{1});
        CHECK(bytes[kPageSize] == std::byte{2});
        CHECK(bytes[2 * kPageSize] == std::byte{0});
    }
    CHECK(d.counters.map_calls == after_probe);
    // The guest writes through its own view; the cached mapping shows it.
    d.guest_write(Pfn{10}, std::byte{9});
    CHECK(read(b.memory(), {Pfn{10}})[100] == std::byte{9});
    CHECK(d.counters.map_calls == after_probe);
}

TEST_CASE("xen map cache: a frame deferred at probe is RAM and maps on its own later") {
    auto owned = std::make_unique<FakeDomain>(kDomid, 256);
    FakeDomain& d = *owned;
    d.defer_frame(Pfn{77}, 2);  // ENOENT at probe and at the first retry
    d.guest_write(Pfn{77}, std::byte{0x77});
    XenBackend b(std::move(owned), kDomid, "g", 64);
    CHECK(b.memory().contains(Pfn{77}));
    CHECK(b.map_cache().deferred_frames() == 1);
    const unsigned after_probe = d.counters.map_calls;
    CHECK(read(b.memory(), {Pfn{77}})[0] == std::byte{0x77});
    CHECK(d.counters.map_calls == after_probe + 2);  // one more ENOENT, then mapped
    // Now cached on its own: no more map calls.
    CHECK(read(b.memory(), {Pfn{77}})[5] == std::byte{0x77});
    CHECK(d.counters.map_calls == after_probe + 2);
}

TEST_CASE("xen map cache: a frame that stays deferred fails with ENOENT and says so") {
    auto owned = std::make_unique<FakeDomain>(kDomid, 128);
    FakeDomain& d = *owned;
    d.defer_frame(Pfn{5}, 100);
    XenBackend b(std::move(owned), kDomid, "g", 64);
    try {
        (void)read(b.memory(), {Pfn{5}});
        FAIL("read of a deferred frame succeeded");
    } catch (const colo::SystemError& e) {
        CHECK(e.operation() == "xenforeignmemory_map");
        CHECK(e.error_number() == ENOENT);
        CHECK(std::string(e.what()).find("frame 0x5 (still paged out or shared after 3 attempts)") !=
              std::string::npos);
    }
}

TEST_CASE("xen map cache: a RAM frame Xen refuses fails the read with the per-page errno") {
    auto owned = std::make_unique<FakeDomain>(kDomid, 128);
    FakeDomain& d = *owned;
    XenBackend b(std::move(owned), kDomid, "g", 64);
    // It mapped at probe; it fails when the chunk is mapped again writable.
    d.fail_frame(Pfn{70}, EIO);
    std::vector<std::byte> page(kPageSize, std::byte{1});
    const std::vector<Pfn> f70{Pfn{70}}, f71{Pfn{71}};
    try {
        b.memory().write_pages(f70, page);
        FAIL("write to a refused frame succeeded");
    } catch (const colo::SystemError& e) {
        CHECK(e.operation() == "xenforeignmemory_map");
        CHECK(e.error_number() == EIO);
        CHECK(std::string(e.what()).find("domain 3 frame 0x46") != std::string::npos);
    }
    // Its neighbours in the same batch are fine.
    b.memory().write_pages(f71, page);
    CHECK(d.frame(Pfn{71})[0] == std::byte{1});
}

TEST_CASE("xen map cache: a hole is not guest memory; reading it is a clear error") {
    auto owned = std::make_unique<FakeDomain>(kDomid, 128);
    owned->make_hole(Pfn{100}, 28);
    XenBackend b(std::move(owned), kDomid, "g", 64);
    CHECK(b.memory().frame_limit() == 100);
    CHECK_THROWS_WITH_AS((void)read(b.memory(), {Pfn{110}}), doctest::Contains("frame 110 is not guest RAM"),
                         colo::Error);
    CHECK_THROWS_WITH_AS((void)read(b.memory(), {Pfn{5000}}), doctest::Contains("is not guest RAM"),
                         colo::Error);
    std::vector<std::byte> short_buffer(10);
    const std::vector<Pfn> one{Pfn{1}};
    CHECK_THROWS_WITH_AS(b.memory().read_pages(one, short_buffer), doctest::Contains("buffer of 10 bytes"),
                         colo::Error);
}

TEST_CASE("xen map cache: the primary maps read-only; the first write maps writable, once per chunk") {
    auto owned = std::make_unique<FakeDomain>(kDomid, 256);
    FakeDomain& d = *owned;
    XenBackend b(std::move(owned), kDomid, "g", 64);
    for (MapAccess a : d.map_accesses) CHECK(a == MapAccess::read_only);
    const unsigned after_probe = d.counters.map_calls;
    (void)read(b.memory(), {Pfn{1}, Pfn{200}});
    CHECK(d.counters.map_calls == after_probe);

    std::vector<std::byte> pages(2 * kPageSize);
    std::fill(pages.begin(), pages.begin() + kPageSize, std::byte{0xaa});
    std::fill(pages.begin() + kPageSize, pages.end(), std::byte{0xbb});
    b.memory().write_pages(std::vector<Pfn>{Pfn{1}, Pfn{2}}, pages);  // same chunk: one remap
    CHECK(d.counters.map_calls == after_probe + 1);
    CHECK(d.map_accesses.back() == MapAccess::read_write);
    CHECK(d.frame(Pfn{1})[0] == std::byte{0xaa});
    CHECK(d.frame(Pfn{2})[kPageSize - 1] == std::byte{0xbb});
    // Writes and reads in that chunk now use the writable mapping; no more map calls.
    b.memory().write_pages(std::vector<Pfn>{Pfn{3}, Pfn{1}}, pages);
    CHECK(read(b.memory(), {Pfn{3}})[0] == std::byte{0xaa});
    CHECK(d.counters.map_calls == after_probe + 1);
    // The replaced read-only mapping was unmapped, not leaked.
    CHECK(d.live_mappings() == 4);
}
