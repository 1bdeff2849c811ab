#include "toolstack/protocol/crc32c.hpp"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace colo::protocol {

namespace {

constexpr std::uint32_t kPolynomial = 0x82F63B78u;  // Castagnoli, bit-reversed

// Slicing-by-8: table[k][b] is the CRC contribution of byte b followed by k zero bytes, so eight
// input bytes are folded in with eight lookups instead of eight dependent shift loops.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables() {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t crc = b;
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? kPolynomial : 0u);
        t[0][b] = crc;
    }
    for (std::size_t k = 1; k < 8; ++k)
        for (std::uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFu];
    return t;
}

constexpr auto kTables = make_tables();

std::uint32_t load_le32(const unsigned char* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
           std::uint32_t{p[3]} << 24;
}

// `state` is the raw register (pre-inverted); callers invert on entry and exit.
std::uint32_t update_portable(std::uint32_t state, const unsigned char* p, std::size_t n) {
    while (n >= 8) {
        const std::uint32_t lo = load_le32(p) ^ state;
        const std::uint32_t hi = load_le32(p + 4);
        state = kTables[7][lo & 0xFF] ^ kTables[6][(lo >> 8) & 0xFF] ^ kTables[5][(lo >> 16) & 0xFF] ^
                kTables[4][lo >> 24] ^ kTables[3][hi & 0xFF] ^ kTables[2][(hi >> 8) & 0xFF] ^
                kTables[1][(hi >> 16) & 0xFF] ^ kTables[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) state = (state >> 8) ^ kTables[0][(state ^ *p++) & 0xFF];
    return state;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t update_sse42(std::uint32_t state, const unsigned char* p,
                                                             std::size_t n) {
    std::uint64_t wide = state;
    while (n >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, sizeof word);  // x86 is little-endian, as the CRC's byte order wants
        wide = _mm_crc32_u64(wide, word);
        p += 8;
        n -= 8;
    }
    state = static_cast<std::uint32_t>(wide);
    while (n-- > 0) state = _mm_crc32_u8(state, *p++);
    return state;
}

bool detect_sse42() noexcept { return __builtin_cpu_supports("sse4.2"); }
#else
bool detect_sse42() noexcept { return false; }
#endif

const bool kHaveSse42 = detect_sse42();

const unsigned char* as_uchar(std::span<const std::byte> bytes) {
    return reinterpret_cast<const unsigned char*>(bytes.data());
}

}  // namespace

std::uint32_t crc32c_portable(std::span<const std::byte> bytes, std::uint32_t previous) {
    return ~update_portable(~previous, as_uchar(bytes), bytes.size());
}

std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t previous) {
#if defined(__x86_64__)
    if (kHaveSse42) return ~update_sse42(~previous, as_uchar(bytes), bytes.size());
#endif
    return crc32c_portable(bytes, previous);
}

bool crc32c_uses_hardware() noexcept { return kHaveSse42; }

}  // namespace colo::protocol
