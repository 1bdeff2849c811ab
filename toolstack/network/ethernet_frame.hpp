// What the COLO compare needs to know of an Ethernet frame: which flow it belongs to and which of
// its bytes must be the same on the PVM and the SVM.
//
//   TCP (IPv4, IPv6)   flow = addresses and ports; compared: the payload, over sequence ranges, with
//                      the flags and acknowledgements (tcp_stream_compare.hpp), not the window,
//                      options such as timestamps, the IP ID or checksums, which a second VM
//                      computes differently for the same conversation
//   UDP                flow = addresses and ports; compared: the payload
//   ICMP, ICMPv6       flow = addresses; compared: the ICMP message without its checksum
//   anything else      (ARP, other IPv6 or IPv4 protocols, other ethertypes, and every frame whose
//                      headers are cut short or lie about their lengths, and IPv4 fragments):
//                      flow = the ethertype; compared: the whole frame
// Nothing is let through uncompared.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace colo::network {

namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, ack = 0x10;
}

// Where a TCP segment's fields are in its frame, so they can be read and rewritten in place.
struct TcpSegment {
    std::size_t header = 0;        // offset of the TCP header in the frame
    std::size_t header_size = 0;   // with its options
    std::size_t payload_size = 0;
    std::uint32_t seq = 0, ack = 0;
    std::uint8_t flags = 0;
    std::string reverse_flow;      // the flow of the segments that answer this one
    // The sequence space this segment takes: its payload, and one each for SYN and FIN.
    [[nodiscard]] std::uint32_t length() const {
        return static_cast<std::uint32_t>(payload_size) + ((flags & tcp_flag::syn) ? 1 : 0) + ((flags & tcp_flag::fin) ? 1 : 0);
    }
};

// a before b in TCP's modulo-2^32 sequence space (RFC 793 3.3).
[[nodiscard]] constexpr bool seq_before(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b) < 0; }

struct FrameKey {
    enum class Kind { tcp, udp, icmp, other };
    Kind kind = Kind::other;
    std::string flow;               // "tcp 10.0.0.2:7000>10.0.0.1:41000", "ethertype 0806", ...
    std::vector<std::byte> compared;  // tcp: the payload
    std::optional<TcpSegment> tcp;    // kind tcp only
};

[[nodiscard]] FrameKey frame_key(std::span<const std::byte> frame);

// A 16-bit word of a frame, big-endian, and the same written back with the Internet checksum at
// `checksum` kept right (RFC 1624: ~(~HC + ~m + m')).
[[nodiscard]] std::uint16_t read_be16(std::span<const std::byte> frame, std::size_t at);
void rewrite_be16(std::span<std::byte> frame, std::size_t at, std::uint16_t value, std::size_t checksum);
void rewrite_be32(std::span<std::byte> frame, std::size_t at, std::uint32_t value, std::size_t checksum);
[[nodiscard]] std::uint32_t read_be32(std::span<const std::byte> frame, std::size_t at);

}  // namespace colo::network
