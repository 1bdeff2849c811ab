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

// fe80::/64 with the interface identifier made from the MAC: ff:fe in the middle, the
// universal/local bit flipped.
std::array<std::uint8_t, 16> link_local(const MacAddress& mac) {
    return {0xfe, 0x80, 0, 0, 0, 0, 0, 0, static_cast<std::uint8_t>(mac[0] ^ 0x02), mac[1], mac[2], 0xff, 0xfe,
            mac[3], mac[4], mac[5]};
}

std::vector<std::byte> unsolicited_neighbour_advertisement(const MacAddress& mac) {
    const auto address = link_local(mac);
    const std::array<std::uint8_t, 16> all_nodes{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    std::vector<std::byte> icmp;
    put(icmp, {136, 0, 0, 0, 0x20, 0, 0, 0});  // neighbour advertisement, checksum later; Override
    for (const auto b : address) icmp.push_back(static_cast<std::byte>(b));  // target
    put(icmp, {2, 1});                                                         // target link-layer address
    put_mac(icmp, mac);
    // ICMPv6 checksum over the pseudo header (source, destination, length, next header 58).
    std::uint32_t sum = 0;
    const auto add = [&](unsigned hi, unsigned lo) { sum += hi << 8 | lo; };
    for (std::size_t i = 0; i < 16; i += 2) add(address[i], address[i + 1]);
    for (std::size_t i = 0; i < 16; i += 2) add(all_nodes[i], all_nodes[i + 1]);
    add(0, static_cast<unsigned>(icmp.size()));
    add(0, 58);
    for (std::size_t i = 0; i < icmp.size(); i += 2) add(std::to_integer<unsigned>(icmp[i]), std::to_integer<unsigned>(icmp[i + 1]));
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    const auto checksum = static_cast<std::uint16_t>(~sum);
    icmp[2] = static_cast<std::byte>(checksum >> 8);
    icmp[3] = static_cast<std::byte>(checksum & 0xff);

    std::vector<std::byte> f;
    put(f, {0x33, 0x33, 0, 0, 0, 1});  // the all-nodes multicast MAC
    put_mac(f, mac);
    put(f, {0x86, 0xdd, 0x60, 0, 0, 0, 0, static_cast<unsigned>(icmp.size()), 58, 255});  // hop limit 255
    for (const auto b : address) f.push_back(static_cast<std::byte>(b));
    for (const auto b : all_nodes) f.push_back(static_cast<std::byte>(b));
    f.insert(f.end(), icmp.begin(), icmp.end());
    return f;
}

}  // namespace

std::vector<std::vector<std::byte>> announce_frames(const MacAddress& mac, const std::optional<Ipv4Cidr>& ip) {
    std::vector<std::vector<std::byte>> frames;
    if (ip) frames.push_back(arp_like(0x0806, 1, mac, ip->address));  // ARP request, sender = target = ip
    frames.push_back(unsolicited_neighbour_advertisement(mac));
    frames.push_back(arp_like(0x8035, 3, mac, {0, 0, 0, 0}));          // RARP request reverse (QEMU)
    return frames;
}

}  // namespace colo::network
