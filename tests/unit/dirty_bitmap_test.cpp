#include <doctest/doctest.h>

#include <random>
#include <set>

#include "backends/dirty_bitmap.hpp"
#include "backends/error.hpp"

using colo::DirtyBitmap;
using colo::Pfn;

namespace {
std::vector<std::pair<std::uint64_t, std::uint64_t>> runs_of(const DirtyBitmap& b) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;
    b.for_each_run([&](Pfn first, std::uint64_t n) { runs.emplace_back(first.value, n); });
    return runs;
}
}  // namespace

TEST_CASE("dirty bitmap: set, test, clear and count") {
    DirtyBitmap b(130);
    CHECK(b.count() == 0);
    b.set(Pfn{0});
    b.set(Pfn{63});
    b.set(Pfn{64});
    b.set(Pfn{129});
    CHECK(b.count() == 4);
    CHECK(b.test(Pfn{63}));
    CHECK_FALSE(b.test(Pfn{62}));
    b.clear(Pfn{63});
    CHECK(b.count() == 3);
    CHECK_THROWS_AS(b.set(Pfn{130}), colo::Error);
    CHECK_THROWS_AS((void)b.test(Pfn{1000}), colo::Error);
    b.clear_all();
    CHECK(b.empty());
}

TEST_CASE("dirty bitmap: runs cross word boundaries and end at the last frame") {
    DirtyBitmap b(200);
    b.set_range(Pfn{60}, 70);  // 60..129, crosses two word boundaries
    b.set(Pfn{5});
    b.set(Pfn{199});
    CHECK(runs_of(b) == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{5, 1}, {60, 70}, {199, 1}});
    CHECK(b.count() == 72);

    DirtyBitmap full(128);
    full.set_range(Pfn{0}, 128);
    CHECK(runs_of(full) == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, 128}});
}

TEST_CASE("dirty bitmap: union and frames agree with a set model") {
    std::mt19937_64 rng(42);
    for (int round = 0; round < 50; ++round) {
        const std::uint64_t pages = 1 + rng() % 1000;
        DirtyBitmap a(pages), b(pages);
        std::set<std::uint64_t> model;
        for (int i = 0; i < 100; ++i) {
            const auto x = rng() % pages, y = rng() % pages;
            a.set(Pfn{x});
            b.set(Pfn{y});
            model.insert(x);
            model.insert(y);
        }
        a |= b;
        CHECK(a.count() == model.size());
        std::vector<std::uint64_t> got;
        for (const auto p : a.frames()) got.push_back(p.value);
        CHECK(got == std::vector<std::uint64_t>(model.begin(), model.end()));
        std::uint64_t in_runs = 0;
        a.for_each_run([&](Pfn, std::uint64_t n) { in_runs += n; });
        CHECK(in_runs == model.size());
    }
}

TEST_CASE("dirty bitmap: union of different sizes is refused") {
    DirtyBitmap a(10), b(11);
    CHECK_THROWS_AS(a |= b, colo::Error);
}

TEST_CASE("dirty bitmap: or_words takes a hypervisor bitmap at any offset") {
    const std::vector<std::uint64_t> words{0x8000000000000001ULL, 0x3};
    DirtyBitmap aligned(256);
    aligned.or_words(Pfn{64}, words, 66);
    CHECK(runs_of(aligned) == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{64, 1}, {127, 3}});

    DirtyBitmap shifted(256);
    shifted.or_words(Pfn{10}, words, 65);  // bit 65 is beyond `bits` and must be ignored
    CHECK(runs_of(shifted) == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{10, 1}, {73, 2}});

    DirtyBitmap small(70);
    CHECK_THROWS_AS(small.or_words(Pfn{10}, words, 65), colo::Error);
}

TEST_CASE("dirty bitmap: shrinking drops bits past the new end") {
    DirtyBitmap b(100);
    b.set(Pfn{90});
    b.set(Pfn{10});
    b.resize(50);
    CHECK(b.count() == 1);
    b.resize(100);
    CHECK_FALSE(b.test(Pfn{90}));
}
