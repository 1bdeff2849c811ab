// The Internet checksum (RFC 1071) for tests that build or check IPv4, ICMP and UDP frames: 0 over
// a header or datagram whose checksum field is right.
#pragma once

#include <cstddef>
#include <cstdint>

namespace colo::test {

inline std::uint16_t internet_checksum(const std::uint8_t* data, std::size_t length, std::uint32_t sum = 0) {
    for (std::size_t i = 0; i + 1 < length; i += 2) sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    if (length & 1) sum += static_cast<std::uint32_t>(data[length - 1]) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

}  // namespace colo::test
