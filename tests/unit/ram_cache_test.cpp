// The secondary's RAM cache (toolstack/replication/ram_cache.hpp) against a FakeBackend SVM, whose
// memory is a real private mapping: sharing the cache makes the SVM's memory a copy-on-write view
// of the cache's memfd with the same kernel calls as on KVM.
#include <doctest/doctest.h>

#include <cstring>
#include <cstdio>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "backends/fake_backend.hpp"
#include "toolstack/replication/ram_cache.hpp"

using namespace colo;

namespace {

constexpr std::uint64_t kPages = 64;

std::vector<std::byte> filled(std::byte value, std::size_t pages = 1) {
    return std::vector<std::byte>(pages * kPageSize, value);
}

bool page_is(std::span<const std::byte> page, std::byte value) {
    for (const std::byte b : page) {
        if (b != value) return false;
    }
    return true;
}

DirtyBitmap frames_of(std::initializer_list<std::uint64_t> frames) {
    DirtyBitmap out(kPages);
    for (const auto f : frames) out.set(Pfn{f});
    return out;
}

// This process's anonymous resident memory (/proc/self/status RssAnon), in bytes: where the
// SVM's private copies of cache pages are counted.
// Private (anonymous) resident bytes of the mappings that cover [begin, end), from
// /proc/self/smaps: only the guest memory's own mappings count, not what else the process (or a
// sanitizer's shadow memory) allocates meanwhile.
std::uint64_t anon_bytes_of(const std::byte* begin, const std::byte* end) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    std::uint64_t total = 0;
    while (std::getline(smaps, line)) {
        unsigned long long from = 0, to = 0;
        if (std::sscanf(line.c_str(), "%llx-%llx ", &from, &to) == 2 && line.find(':') > line.find('-')) {
            inside = from < reinterpret_cast<std::uintptr_t>(end) && to > reinterpret_cast<std::uintptr_t>(begin);
            continue;
        }
        unsigned long long kib = 0;
        if (inside && std::sscanf(line.c_str(), "Anonymous: %llu kB", &kib) == 1) total += kib * 1024;
    }
    return total;
}

struct Shared {
    FakeBackend svm{"svm", kPages};
    RamCache cache{svm.memory().regions()};
    Shared() {
        svm.pause();
        REQUIRE(cache.share_with(svm.memory()));
        // The initial migration: every page 0x11, page 9 zero.
        std::vector<Pfn> all;
        for (std::uint64_t p = 0; p < kPages; ++p) all.push_back(Pfn{p});
        auto data = filled(std::byte{0x11}, kPages);
        std::memset(data.data() + 9 * kPageSize, 0, kPageSize);
        cache.load(all, data);
    }
};

}  // namespace

TEST_CASE("ram cache shared: the SVM reads the loaded pages, with no copy of its own") {
    Shared s;
    CHECK(s.cache.shared());
    CHECK(s.svm.copy_on_write());
    // The zero page was never written into the file (the SVM reading it allocates it, as shmem
    // does for a read fault in a hole).
    CHECK(s.cache.usage().file_bytes == (kPages - 1) * kPageSize);
    CHECK(s.cache.usage().staged_bytes == 0);
    CHECK(page_is(s.svm.page(Pfn{0}), std::byte{0x11}));
    CHECK(page_is(s.svm.page(Pfn{kPages - 1}), std::byte{0x11}));
    CHECK(page_is(s.svm.page(Pfn{9}), std::byte{0}));
}

TEST_CASE("ram cache shared: a received page is invisible to the SVM until commit, and a failed checkpoint's never") {
    Shared s;
    s.svm.resume();  // COLO: the SVM runs while pages stream in
    const Pfn five{5};
    s.cache.receive(std::span(&five, 1), filled(std::byte{0x22}));
    CHECK(page_is(s.cache.page(five), std::byte{0x22}));            // the cache's latest
    CHECK(page_is(s.cache.committed_page(five), std::byte{0x11}));  // not in the file
    CHECK(page_is(s.svm.page(five), std::byte{0x11}));              // so the SVM cannot see it
    CHECK(s.cache.usage().staged_bytes > 0);

    // A later copy of the same frame replaces the staged one.
    s.cache.receive(std::span(&five, 1), filled(std::byte{0x23}));
    CHECK(page_is(s.cache.page(five), std::byte{0x23}));
    CHECK(page_is(s.svm.page(five), std::byte{0x11}));

    SUBCASE("committed: the SVM reads it") {
        s.svm.pause();
        CHECK(s.cache.commit(s.svm.memory(), frames_of({5}), frames_of({}), 256) == 1);
        CHECK(page_is(s.svm.page(five), std::byte{0x23}));
        CHECK(page_is(s.cache.committed_page(five), std::byte{0x23}));
    }
    SUBCASE("discarded (the checkpoint never completes): the SVM never reads it") {
        s.cache.discard_received();
        CHECK(page_is(s.cache.page(five), std::byte{0x11}));
        s.svm.pause();
        CHECK(s.cache.commit(s.svm.memory(), frames_of({}), frames_of({}), 256) == 0);
        CHECK(page_is(s.svm.page(five), std::byte{0x11}));
    }
}

TEST_CASE("ram cache shared: a page the SVM wrote reads the cache's content again after commit") {
    Shared s;
    s.svm.resume();
    s.svm.guest_write(Pfn{7}, std::byte{0x77});   // the SVM's own write: a private copy
    s.svm.guest_write(Pfn{8}, std::byte{0x78});   // ... of a page the PVM changed too
    s.svm.guest_write(Pfn{9}, std::byte{0x79});   // ... of a page the file never held (zero)
    const Pfn eight{8};
    s.cache.receive(std::span(&eight, 1), filled(std::byte{0x88}));
    CHECK(page_is(s.svm.page(Pfn{7}), std::byte{0x77}));
    CHECK(page_is(s.cache.committed_page(Pfn{7}), std::byte{0x11}));  // the file never sees it

    s.svm.pause();
    CHECK(s.cache.commit(s.svm.memory(), frames_of({8}), frames_of({7, 8, 9}), 256) == 3);
    CHECK(page_is(s.svm.page(Pfn{7}), std::byte{0x11}));
    CHECK(page_is(s.svm.page(Pfn{8}), std::byte{0x88}));
    CHECK(page_is(s.svm.page(Pfn{9}), std::byte{0}));
    CHECK(s.svm.calls().back() == FakeBackend::Call::drop_private_copies);
}

TEST_CASE("ram cache shared: a private copy the SVM's dirty log never reported does not hide a received page") {
    // KVM makes such copies (kvmclock written before the log starts; its async page fault worker
    // faulting a page in for writing that the guest only read): not a write the SVM's log shows,
    // so only the frame being received says the copy must go. Kept, the SVM read its stale copy
    // for good, and a Linux guest's kernel state drifted from the PVM's (its TCP connection was
    // lost at a takeover in the nested tier).
    Shared s;
    s.svm.resume();
    // Unlogged writes through the SVM's memory: one with the file's own content (as a fault for
    // writing leaves it), one with other bytes (as kvmclock's update).
    const std::vector<Pfn> frames{Pfn{4}, Pfn{6}};
    auto copies = filled(std::byte{0x11}, 2);
    std::memset(copies.data() + kPageSize, 0x66, kPageSize);
    s.svm.memory().write_pages(frames, copies);
    CHECK(anon_bytes_of(s.svm.page(Pfn{0}).data(), s.svm.page(Pfn{kPages - 1}).data() + kPageSize) >= 2 * kPageSize);
    const auto newer = filled(std::byte{0x44}, 2);
    s.cache.receive(frames, newer);

    s.svm.pause();
    CHECK(s.cache.commit(s.svm.memory(), frames_of({4, 6}), frames_of({}), 256) == 2);
    CHECK(page_is(s.svm.page(Pfn{4}), std::byte{0x44}));
    CHECK(page_is(s.svm.page(Pfn{6}), std::byte{0x44}));
    CHECK(anon_bytes_of(s.svm.page(Pfn{0}).data(), s.svm.page(Pfn{kPages - 1}).data() + kPageSize) == 0);
}

TEST_CASE("ram cache shared: the SVM's memory costs only the pages it wrote until the next commit") {
    constexpr std::uint64_t kBig = 8192;  // 32 MiB: well above what the test itself allocates
    FakeBackend svm{"svm", kBig};
    svm.pause();
    RamCache cache{svm.memory().regions()};
    REQUIRE(cache.share_with(svm.memory()));
    {
        std::vector<Pfn> all;
        for (std::uint64_t p = 0; p < kBig; ++p) all.push_back(Pfn{p});
        cache.load(all, filled(std::byte{0x5a}, kBig));
    }
    CHECK(cache.usage().file_bytes == kBig * kPageSize);
    const std::byte* const first = svm.page(Pfn{0}).data();
    const std::byte* const last = svm.page(Pfn{kBig - 1}).data() + kPageSize;
    const auto rss_anon = [&] { return anon_bytes_of(first, last); };
    const std::uint64_t before = rss_anon();
    // Reading every page maps the file's pages: nothing private.
    std::uint64_t sum = 0;
    for (std::uint64_t p = 0; p < kBig; ++p) sum += static_cast<std::uint64_t>(svm.page(Pfn{p})[100]);
    CHECK(sum == kBig * 0x5a);
    const std::uint64_t after_read = rss_anon();
    CHECK(after_read < before + kBig * kPageSize / 8);

    // Writing half of it makes that half private.
    svm.resume();
    DirtyBitmap written(kBig);
    for (std::uint64_t p = 0; p < kBig; p += 2) {
        svm.guest_write(Pfn{p}, std::byte{0x33});
        written.set(Pfn{p});
    }
    const std::uint64_t after_write = rss_anon();
    CHECK(after_write > after_read + kBig * kPageSize / 2 * 3 / 4);

    // The commit drops the private copies: back to one copy, the cache's.
    svm.pause();
    (void)cache.commit(svm.memory(), DirtyBitmap(kBig), written, 256);
    CHECK(rss_anon() < after_read + kBig * kPageSize / 8);
    CHECK(page_is(svm.page(Pfn{0}), std::byte{0x5a}));
    CHECK(cache.usage().file_bytes == kBig * kPageSize);
}

TEST_CASE("ram cache not shared (a backend that cannot, as Xen): a copy of its own, flushed into the SVM") {
    FakeBackend svm{"svm", kPages};
    svm.set_copy_on_write(false);
    svm.pause();
    RamCache cache{svm.memory().regions()};
    CHECK_FALSE(cache.share_with(svm.memory()));
    CHECK_FALSE(cache.shared());
    const Pfn three{3};
    cache.receive(std::span(&three, 1), filled(std::byte{0x33}));
    CHECK(page_is(cache.committed_page(three), std::byte{0x33}));  // the SVM never reads the file
    CHECK(page_is(svm.page(three), std::byte{0}));
    svm.resume();
    svm.guest_write(Pfn{4}, std::byte{0x44});
    svm.pause();
    CHECK(cache.commit(svm.memory(), frames_of({3}), frames_of({4}), 256) == 2);
    CHECK(page_is(svm.page(three), std::byte{0x33}));
    CHECK(page_is(svm.page(Pfn{4}), std::byte{0}));
    CHECK(svm.counters().pages_written == 2);
}

TEST_CASE("ram cache: a frame outside guest memory is refused") {
    FakeBackend svm{"svm", kPages};
    svm.pause();
    RamCache cache{svm.memory().regions()};
    REQUIRE(cache.share_with(svm.memory()));
    const Pfn outside{kPages};
    CHECK_THROWS_WITH_AS(cache.receive(std::span(&outside, 1), filled(std::byte{1})),
                         "ram cache: frame 64 is outside guest memory", Error);
    CHECK_THROWS_WITH_AS(cache.load(std::span(&outside, 1), filled(std::byte{1})),
                         "ram cache: frame 64 is outside guest memory", Error);
}
