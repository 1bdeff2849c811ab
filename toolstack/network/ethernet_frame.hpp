// What the COLO compare needs to know of an Ethernet frame: which flow it belongs to and which of
// its bytes must be the same on the PVM and the SVM.
//
//   TCP (IPv4, IPv6)   flow = addresses and ports; compared: flags, sequence and acknowledgement
//                      numbers and the payload (not the window, options such as timestamps, the
//                      IP ID or checksums, which a second VM computes differently for the same
//                      conversation)
//   UDP                flow = addresses and ports; compared: the payload
//   ICMP, ICMPv6       flow = addresses; compared: the ICMP message without its checksum
//   anything else      (ARP, other IPv6 or IPv4 protocols, other ethertypes, and every frame whose
//                      headers are cut short or lie about their lengths): flow = the ethertype;
//                      compared: the whole frame
// Nothing is let through uncompared.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace colo::network {

struct FrameKey {
    enum class Kind { tcp, udp, icmp, other };
    Kind kind = Kind::other;
    std::string flow;               // "tcp 10.0.0.2:7000>10.0.0.1:41000", "ethertype 0806", ...
    std::vector<std::byte> compared;
};

[[nodiscard]] FrameKey frame_key(std::span<const std::byte> frame);

}  // namespace colo::network
