// Bounds-checked little-endian field access into byte buffers. The Linux boot protocol (setup
// header, zero page), ELF and the MP table are all little-endian layouts at documented offsets;
// reading them field by field keeps host struct layout and alignment out of the picture, and the
// bounds check turns a truncated or hostile image into a colo::Error instead of a wild read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

#include "backends/error.hpp"

namespace colo::kvm {

template <typename T>
    requires std::is_unsigned_v<T>
[[nodiscard]] T load_le(std::span<const std::byte> bytes, std::size_t offset) {
    if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) {
        throw Error("read of " + std::to_string(sizeof(T)) + " bytes at offset " + std::to_string(offset) +
                    " is past the end (" + std::to_string(bytes.size()) + " bytes)");
    }
    T value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        value = static_cast<T>(value | (static_cast<T>(std::to_integer<std::uint8_t>(bytes[offset + i])) << (8 * i)));
    }
    return value;
}

template <typename T>
    requires std::is_unsigned_v<T>
void store_le(std::span<std::byte> bytes, std::size_t offset, T value) {
    if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) {
        throw Error("write of " + std::to_string(sizeof(T)) + " bytes at offset " + std::to_string(offset) +
                    " is past the end (" + std::to_string(bytes.size()) + " bytes)");
    }
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        bytes[offset + i] = static_cast<std::byte>((value >> (8 * i)) & 0xff);
    }
}

}  // namespace colo::kvm
