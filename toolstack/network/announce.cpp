#include "toolstack/network/announce.hpp"

namespace colo::network {

namespace {

void put(std::vector<std::byte>& out, std::initializer_list<unsigned> bytes) {
    for (const unsigned b : bytes) out.push_back(static_cast<std::byte>(b));
}
void put_mac(std::vector<std::byte>& out, const MacAddress& mac) {
    for (const auto b : mac) out.push_back(static_cast<std::byte>(b));
}

// Ethernet broadcast header, an ARP-format body (RFC 826) with `op`, padded to the 60-byte minimum.
std::vector<std::byte> arp_like(unsigned ethertype, unsigned op, const MacAddress& mac, const std::array<std::uint8_t, 4>& ip) {
    std::vector<std::byte> f;
    put(f, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    put_mac(f, mac);
    put(f, {ethertype >> 8, ethertype & 0xff, 0x00, 0x01, 0x08, 0x00, 6, 4, op >> 8, op & 0xff});
    put_mac(f, mac);
    for (const auto b : ip) f.push_back(static_cast<std::byte>(b));
    // ARP: the target is the same address (gratuitous); RARP: "who am I" for our own MAC.
    put_mac(f, ethertype == 0x0806 ? MacAddress{} : mac);
    for (const auto b : ip) f.push_back(static_cast<std::byte>(b));
    f.resize(60, std::byte{0});
    return f;
}

}  // namespace

std::vector<std::vector<std::byte>> announce_frames(const MacAddress& mac, const std::optional<Ipv4Cidr>& ip) {
    std::vector<std::vector<std::byte>> frames;
    if (ip) frames.push_back(arp_like(0x0806, 1, mac, ip->address));  // ARP request, sender = target = ip
    frames.push_back(arp_like(0x8035, 3, mac, {0, 0, 0, 0}));          // RARP request reverse (QEMU)
    return frames;
}

}  // namespace colo::network
