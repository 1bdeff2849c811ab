#include <doctest/doctest.h>

#include <random>
#include <string_view>
#include <vector>

#include "toolstack/protocol/crc32c.hpp"

using colo::protocol::crc32c;
using colo::protocol::crc32c_portable;

namespace {
std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> out;
    for (char c : s) out.push_back(static_cast<std::byte>(c));
    return out;
}
}  // namespace

TEST_CASE("crc32c: check value and RFC 3720 (iSCSI) test vectors") {
    const auto check = bytes_of("123456789");
    CHECK(crc32c(check) == 0xE3069283u);
    CHECK(crc32c_portable(check) == 0xE3069283u);
    CHECK(crc32c(std::span<const std::byte>{}) == 0u);

    std::vector<std::byte> zeros(32, std::byte{0}), ones(32, std::byte{0xFF}), up(32), down(32);
    for (int i = 0; i < 32; ++i) {
        up[i] = static_cast<std::byte>(i);
        down[i] = static_cast<std::byte>(31 - i);
    }
    for (auto* f : {&crc32c, &crc32c_portable}) {
        CHECK((*f)(zeros, 0) == 0x8A9136AAu);
        CHECK((*f)(ones, 0) == 0x62A8AB43u);
        CHECK((*f)(up, 0) == 0x46DD794Eu);
        CHECK((*f)(down, 0) == 0x113FDB5Cu);
    }
}

TEST_CASE("crc32c: continuing from a previous value equals one pass, at every split") {
    std::vector<std::byte> data(100);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 37 + 11);
    const std::uint32_t whole = crc32c_portable(data);
    for (std::size_t split = 0; split <= data.size(); ++split) {
        const std::span<const std::byte> all(data);
        CHECK(crc32c(all.subspan(split), crc32c(all.first(split))) == whole);
        CHECK(crc32c_portable(all.subspan(split), crc32c_portable(all.first(split))) == whole);
    }
}

TEST_CASE("crc32c: the hardware path agrees with the table at every length and alignment") {
    INFO("hardware crc32c in use: " << colo::protocol::crc32c_uses_hardware());
    std::mt19937 rng(1);
    std::vector<std::byte> data(4096 + 64);
    for (auto& b : data) b = static_cast<std::byte>(rng());
    for (std::size_t offset = 0; offset < 8; ++offset)
        for (std::size_t length : {0u, 1u, 7u, 8u, 9u, 15u, 16u, 63u, 4095u, 4096u}) {
            const auto part = std::span<const std::byte>(data).subspan(offset, length);
            CHECK(crc32c(part, 0x12345678u) == crc32c_portable(part, 0x12345678u));
        }
    // A single flipped bit always changes the CRC.
    const std::uint32_t base = crc32c(data);
    for (std::size_t bit = 0; bit < data.size() * 8; bit += 97) {
        data[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
        CHECK(crc32c(data) != base);
        data[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    }
}
