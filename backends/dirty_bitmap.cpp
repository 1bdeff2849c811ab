#include "backends/dirty_bitmap.hpp"

#include <bit>
#include <string>

#include "backends/error.hpp"

namespace colo {

namespace {
constexpr std::uint64_t kBits = 64;
std::uint64_t words_for(std::uint64_t pages) { return (pages + kBits - 1) / kBits; }
}  // namespace

DirtyBitmap::DirtyBitmap(std::uint64_t pages) : pages_(pages), words_(words_for(pages), 0) {}

void DirtyBitmap::resize(std::uint64_t pages) {
    if (pages < pages_ && pages % kBits != 0 && words_for(pages) > 0) {
        // Drop bits past the new end so count() stays exact.
        words_[words_for(pages) - 1] &= (std::uint64_t{1} << (pages % kBits)) - 1;
    }
    pages_ = pages;
    words_.resize(words_for(pages), 0);
}

void DirtyBitmap::check(Pfn pfn) const {
    if (pfn.value >= pages_) {
        throw Error("dirty bitmap: frame " + std::to_string(pfn.value) + " is past the end (" +
                    std::to_string(pages_) + " frames)");
    }
}

void DirtyBitmap::set(Pfn pfn) {
    check(pfn);
    words_[pfn.value / kBits] |= std::uint64_t{1} << (pfn.value % kBits);
}

void DirtyBitmap::set_range(Pfn first, std::uint64_t count) {
    if (count == 0) return;
    check(first);
    check(first + (count - 1));
    std::uint64_t i = first.value;
    const std::uint64_t end = first.value + count;
    while (i < end && i % kBits != 0) set(Pfn{i++});
    while (i + kBits <= end) {
        words_[i / kBits] = ~std::uint64_t{0};
        i += kBits;
    }
    while (i < end) set(Pfn{i++});
}

void DirtyBitmap::clear(Pfn pfn) {
    check(pfn);
    words_[pfn.value / kBits] &= ~(std::uint64_t{1} << (pfn.value % kBits));
}

bool DirtyBitmap::test(Pfn pfn) const {
    check(pfn);
    return (words_[pfn.value / kBits] >> (pfn.value % kBits)) & 1U;
}

void DirtyBitmap::clear_all() noexcept {
    for (auto& w : words_) w = 0;
}

void DirtyBitmap::or_words(Pfn first, std::span<const std::uint64_t> words, std::uint64_t bits) {
    if (bits > words.size() * kBits) throw Error("dirty bitmap: source shorter than its bit count");
    if (bits == 0) return;
    check(first + (bits - 1));
    if (first.value % kBits == 0) {
        // Aligned: whole words, the common case for memory slots.
        const std::uint64_t base = first.value / kBits;
        const std::uint64_t full = bits / kBits;
        for (std::uint64_t w = 0; w < full; ++w) words_[base + w] |= words[w];
        if (bits % kBits != 0) {
            words_[base + full] |= words[full] & ((std::uint64_t{1} << (bits % kBits)) - 1);
        }
        return;
    }
    for (std::uint64_t w = 0; w < words_for(bits); ++w) {
        std::uint64_t word = words[w];
        while (word != 0) {
            const auto bit = static_cast<std::uint64_t>(std::countr_zero(word));
            word &= word - 1;
            const std::uint64_t index = w * kBits + bit;
            if (index < bits) set(first + index);
        }
    }
}

DirtyBitmap& DirtyBitmap::operator|=(const DirtyBitmap& other) {
    if (other.pages_ != pages_) {
        throw Error("dirty bitmap: union of bitmaps of " + std::to_string(pages_) + " and " +
                    std::to_string(other.pages_) + " frames");
    }
    for (std::size_t w = 0; w < words_.size(); ++w) words_[w] |= other.words_[w];
    return *this;
}

std::uint64_t DirtyBitmap::count() const noexcept {
    std::uint64_t n = 0;
    for (const auto w : words_) n += static_cast<std::uint64_t>(std::popcount(w));
    return n;
}

void DirtyBitmap::for_each_run(const std::function<void(Pfn, std::uint64_t)>& fn) const {
    std::uint64_t run_start = 0;
    std::uint64_t run_length = 0;
    for (std::size_t w = 0; w < words_.size(); ++w) {
        std::uint64_t word = words_[w];
        if (word == 0 && run_length == 0) continue;
        if (word == ~std::uint64_t{0}) {
            if (run_length == 0) run_start = w * kBits;
            run_length += kBits;
            continue;
        }
        for (std::uint64_t bit = 0; bit < kBits; ++bit) {
            if ((word >> bit) & 1U) {
                if (run_length == 0) run_start = w * kBits + bit;
                ++run_length;
            } else if (run_length != 0) {
                fn(Pfn{run_start}, run_length);
                run_length = 0;
                if ((word >> bit) == 0) break;
            }
        }
    }
    if (run_length != 0) fn(Pfn{run_start}, run_length);
}

std::vector<Pfn> DirtyBitmap::frames() const {
    std::vector<Pfn> out;
    out.reserve(count());
    for_each_run([&](Pfn first, std::uint64_t n) {
        for (std::uint64_t i = 0; i < n; ++i) out.push_back(first + i);
    });
    return out;
}

}  // namespace colo
