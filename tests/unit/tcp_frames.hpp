// TCP segments in Ethernet frames for unit tests (IPv4 or IPv6, correct checksums), and reading
// them back: the COLO compare's and the sequence rewriter's tests and the network device's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/internet_checksum.hpp"

namespace colo::test::tcp_frames {

using Bytes = std::vector<std::byte>;

constexpr unsigned FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;
inline void put16(Bytes& b, unsigned v) {
    b.push_back(std::byte(v >> 8));
    b.push_back(std::byte(v & 0xff));
}
inline void put32(Bytes& b, std::uint32_t v) {
    put16(b, v >> 16);
    put16(b, v & 0xffff);
}
inline std::uint32_t get32(const Bytes& b, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = v << 8 | std::to_integer<std::uint32_t>(b[at + i]);
    return v;
}

struct Endpoints {
    unsigned src_port = 7000, dst_port = 41000;
    std::vector<unsigned> src{10, 0, 0, 2}, dst{10, 0, 0, 1};
    Endpoints reversed() const { return {dst_port, src_port, dst, src}; }
};

// An IPv4 (4-byte addresses) or IPv6 (16) TCP segment in an Ethernet frame, with a correct TCP
// checksum; `options` go after the fixed header (a multiple of 4 bytes).
inline Bytes segment(std::uint32_t seq, std::uint32_t ack, unsigned flags, const std::string& payload, Endpoints e = {},
              const Bytes& options = {}, unsigned window = 500) {
    Bytes l4;
    put16(l4, e.src_port);
    put16(l4, e.dst_port);
    put32(l4, seq);
    put32(l4, ack);
    l4.push_back(std::byte((5 + options.size() / 4) << 4));
    l4.push_back(std::byte(flags));
    put16(l4, window);
    put16(l4, 0);
    put16(l4, 0);
    l4.insert(l4.end(), options.begin(), options.end());
    for (char c : payload) l4.push_back(std::byte(c));

    const bool v6 = e.src.size() == 16;
    std::vector<std::uint8_t> pseudo;
    for (unsigned a : e.src) pseudo.push_back(static_cast<std::uint8_t>(a));
    for (unsigned a : e.dst) pseudo.push_back(static_cast<std::uint8_t>(a));
    pseudo.insert(pseudo.end(), {0, 0, static_cast<std::uint8_t>(l4.size() >> 8), static_cast<std::uint8_t>(l4.size()), 0, 6});
    for (auto b : l4) pseudo.push_back(std::to_integer<std::uint8_t>(b));
    const std::uint16_t sum = colo::test::internet_checksum(pseudo.data(), pseudo.size());
    l4[16] = std::byte(sum >> 8);
    l4[17] = std::byte(sum & 0xff);

    Bytes f(12, std::byte{0x52});
    put16(f, v6 ? 0x86dd : 0x0800);
    if (v6) {
        put32(f, 0x60000000);
        put16(f, static_cast<unsigned>(l4.size()));
        f.push_back(std::byte{6});
        f.push_back(std::byte{64});
    } else {
        f.push_back(std::byte{0x45});
        f.push_back(std::byte{0});
        put16(f, 20 + static_cast<unsigned>(l4.size()));
        put32(f, 0);
        f.push_back(std::byte{64});
        f.push_back(std::byte{6});
        put16(f, 0);
    }
    for (unsigned a : e.src) f.push_back(std::byte(a));
    for (unsigned a : e.dst) f.push_back(std::byte(a));
    f.insert(f.end(), l4.begin(), l4.end());
    return f;
}

// 0 when the TCP checksum of an IPv4 frame from segment() is right.
inline std::uint16_t tcp_checksum_error(const Bytes& f) {
    std::vector<std::uint8_t> pseudo;
    for (std::size_t i = 26; i < 34; ++i) pseudo.push_back(std::to_integer<std::uint8_t>(f[i]));
    const std::size_t l4 = f.size() - 34;
    pseudo.insert(pseudo.end(), {0, 6, static_cast<std::uint8_t>(l4 >> 8), static_cast<std::uint8_t>(l4)});
    for (std::size_t i = 34; i < f.size(); ++i) pseudo.push_back(std::to_integer<std::uint8_t>(f[i]));
    return colo::test::internet_checksum(pseudo.data(), pseudo.size());
}

}  // namespace colo::test::tcp_frames
