#include "toolstack/failover/base64.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include "backends/error.hpp"

namespace colo {

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The 6-bit value of each character, or -1.
constexpr std::array<std::int8_t, 256> decode_table() {
    std::array<std::int8_t, 256> table{};
    table.fill(-1);
    for (std::size_t i = 0; i < kAlphabet.size(); ++i) table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
    return table;
}
constexpr auto kDecode = decode_table();

[[noreturn]] void bad(std::size_t offset, const std::string& why) {
    throw Error("base64: " + why + " at offset " + std::to_string(offset));
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
        std::uint32_t group = 0;
        for (std::size_t j = 0; j < 3; ++j)
            group = (group << 8) | (j < n ? static_cast<unsigned char>(bytes[i + j]) : 0u);
        for (std::size_t j = 0; j < 4; ++j)
            out += j <= n ? kAlphabet[(group >> (18 - 6 * j)) & 0x3f] : '=';
    }
    return out;
}

std::string base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) bad(text.size(), "length " + std::to_string(text.size()) + " is not a multiple of 4");
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        // Padding: "xx==" or "xxx=" in the last group only.
        std::size_t padding = 0;
        if (last && text[i + 3] == '=') padding = text[i + 2] == '=' ? 2 : 1;
        std::uint32_t group = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            if (j >= 4 - padding) {
                group <<= 6;
                continue;
            }
            const std::int8_t v = kDecode[static_cast<unsigned char>(text[i + j])];
            if (v < 0) bad(i + j, text[i + j] == '=' ? "padding before the end" : "character outside the alphabet");
            group = (group << 6) | static_cast<std::uint32_t>(v);
        }
        // Bits under the padding must be zero, or two texts would decode to the same bytes.
        if ((padding == 1 && (group & 0xff) != 0) || (padding == 2 && (group & 0xffff) != 0))
            bad(i + 3 - padding, "non-zero bits before the padding");
        for (std::size_t j = 0; j < 3 - padding; ++j) out += static_cast<char>((group >> (16 - 8 * j)) & 0xff);
    }
    return out;
}

}  // namespace colo
