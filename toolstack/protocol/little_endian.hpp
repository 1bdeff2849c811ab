// Explicit little-endian encoding, byte by byte, for everything on the wire: the layout of a
// stream never depends on the host's struct layout or byte order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/error.hpp"

namespace colo::protocol {

inline void append_u32(std::vector<std::byte>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

// Overwrites the 4 bytes at `at` (a field appended earlier, filled in once known).
inline void put_u32(std::vector<std::byte>& out, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out[at + static_cast<std::size_t>(i)] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}
inline void append_u64(std::vector<std::byte>& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

[[nodiscard]] inline std::uint32_t load_u32(std::span<const std::byte, 4> in) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t{std::to_integer<std::uint8_t>(in[i])} << (8 * i);
    return v;
}

[[nodiscard]] inline std::uint64_t load_u64(std::span<const std::byte, 8> in) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{std::to_integer<std::uint8_t>(in[i])} << (8 * i);
    return v;
}

// Walks a buffer that has already been read whole, refusing to step past its end. `what` names
// the buffer in errors ("record checkpoint-end").
class LittleEndianReader {
public:
    LittleEndianReader(std::span<const std::byte> bytes, const char* what) noexcept
        : bytes_(bytes), what_(what) {}

    [[nodiscard]] std::uint32_t u32() { return load_u32(take(4).first<4>()); }
    [[nodiscard]] std::uint64_t u64() { return load_u64(take(8).first<8>()); }
    [[nodiscard]] std::span<const std::byte> bytes(std::size_t n) { return take(n); }
    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - position_; }

private:
    std::span<const std::byte> take(std::size_t n) {
        if (n > remaining())
            throw Error(std::string(what_) + ": body ends " + std::to_string(n - remaining()) +
                        " bytes early");
        const auto part = bytes_.subspan(position_, n);
        position_ += n;
        return part;
    }

    std::span<const std::byte> bytes_;
    const char* what_;
    std::size_t position_ = 0;
};

}  // namespace colo::protocol
