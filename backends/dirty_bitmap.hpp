// One bit per guest page frame, covering frames [0, size). The pipeline unions the hypervisor's
// log, the pages the VMM wrote itself, pages deferred from an earlier pass and (COLO) the
// secondary's own dirty set (STYLE §4), then walks the result as runs so consecutive pages go out
// in one batch.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "backends/guest_address.hpp"

namespace colo {

class DirtyBitmap {
public:
    DirtyBitmap() = default;
    explicit DirtyBitmap(std::uint64_t pages);

    [[nodiscard]] std::uint64_t size() const noexcept { return pages_; }
    void resize(std::uint64_t pages);  // new frames start clean

    void set(Pfn pfn);
    void set_range(Pfn first, std::uint64_t count);
    void clear(Pfn pfn);
    [[nodiscard]] bool test(Pfn pfn) const;
    void clear_all() noexcept;

    // ORs a hypervisor bitmap (bit i of word i/64 = frame first+i, little-endian bit order as
    // KVM_GET_DIRTY_LOG and xc_shadow_control produce) into this one.
    void or_words(Pfn first, std::span<const std::uint64_t> words, std::uint64_t bits);

    DirtyBitmap& operator|=(const DirtyBitmap& other);  // sizes must match
    [[nodiscard]] std::uint64_t count() const noexcept;
    [[nodiscard]] bool empty() const noexcept { return count() == 0; }

    // Calls fn(first, count) for each maximal run of set bits, in increasing frame order.
    void for_each_run(const std::function<void(Pfn first, std::uint64_t count)>& fn) const;
    // Every set frame, in increasing order.
    [[nodiscard]] std::vector<Pfn> frames() const;

    [[nodiscard]] std::span<const std::uint64_t> words() const noexcept { return words_; }
    bool operator==(const DirtyBitmap&) const = default;

private:
    void check(Pfn pfn) const;

    std::uint64_t pages_ = 0;
    std::vector<std::uint64_t> words_;
};

}  // namespace colo
