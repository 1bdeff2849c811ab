// Typed guest addresses (STYLE §2): a guest-physical address and a page frame number are
// different things, and mixing them up is the classic off-by-4096 bug, so they are distinct types.
#pragma once

#include <compare>
#include <cstdint>

namespace colo {

inline constexpr std::uint64_t kPageShift = 12;
inline constexpr std::uint64_t kPageSize = std::uint64_t{1} << kPageShift;

struct Pfn;

// Guest-physical address.
struct Gpa {
    std::uint64_t value = 0;

    constexpr Gpa() = default;
    constexpr explicit Gpa(std::uint64_t v) : value(v) {}
    [[nodiscard]] constexpr Pfn pfn() const;
    [[nodiscard]] constexpr std::uint64_t page_offset() const { return value & (kPageSize - 1); }
    constexpr Gpa operator+(std::uint64_t bytes) const { return Gpa{value + bytes}; }
    constexpr auto operator<=>(const Gpa&) const = default;
};

// Guest page frame number: guest-physical address >> kPageShift.
struct Pfn {
    std::uint64_t value = 0;

    constexpr Pfn() = default;
    constexpr explicit Pfn(std::uint64_t v) : value(v) {}
    [[nodiscard]] constexpr Gpa gpa() const { return Gpa{value << kPageShift}; }
    constexpr Pfn operator+(std::uint64_t pages) const { return Pfn{value + pages}; }
    constexpr auto operator<=>(const Pfn&) const = default;
};

constexpr Pfn Gpa::pfn() const { return Pfn{value >> kPageShift}; }

}  // namespace colo
