// The COLO frame compare (toolstack/network/frame_compare.hpp) on hand-built frames: what is
// compared for TCP, UDP, ICMP and everything else, flows released independently, and the three
// reasons to checkpoint.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/internet_checksum.hpp"
#include "toolstack/network/announce.hpp"
#include "toolstack/network/frame_compare.hpp"

using colo::network::FrameCompare;
using colo::network::FrameKey;
using colo::network::frame_key;
using Bytes = std::vector<std::byte>;

namespace {

void put16(Bytes& b, unsigned v) {
    b.push_back(std::byte(v >> 8));
    b.push_back(std::byte(v & 0xff));
}
void put32(Bytes& b, std::uint32_t v) {
    put16(b, v >> 16);
    put16(b, v & 0xffff);
}

Bytes ethernet(unsigned ethertype) {
    Bytes b(12, std::byte{0x52});
    put16(b, ethertype);
    return b;
}

// IPv4 with `l4` as payload; `id` and `ttl` are what two VMs may well choose differently.
Bytes ipv4(unsigned protocol, const Bytes& l4, unsigned id = 1, unsigned ttl = 64, unsigned src_last = 2) {
    Bytes b = ethernet(0x0800);
    b.push_back(std::byte{0x45});
    b.push_back(std::byte{0});
    put16(b, 20 + static_cast<unsigned>(l4.size()));
    put16(b, id);
    put16(b, 0);
    b.push_back(std::byte(ttl));
    b.push_back(std::byte(protocol));
    put16(b, 0xbeef);  // header checksum: not compared
    for (unsigned a : {10u, 0u, 0u, src_last}) b.push_back(std::byte(a));
    for (unsigned a : {10u, 0u, 0u, 1u}) b.push_back(std::byte(a));
    b.insert(b.end(), l4.begin(), l4.end());
    return b;
}

Bytes udp(const std::string& payload, unsigned sport = 7777) {
    Bytes l4;
    put16(l4, sport);
    put16(l4, 40000);
    put16(l4, 8 + static_cast<unsigned>(payload.size()));
    put16(l4, 0x1234);
    for (char c : payload) l4.push_back(std::byte(c));
    return l4;
}

Bytes tcp(std::uint32_t seq, std::uint32_t ack, unsigned flags, const std::string& payload, unsigned window = 500) {
    Bytes l4;
    put16(l4, 7000);
    put16(l4, 41000);
    put32(l4, seq);
    put32(l4, ack);
    l4.push_back(std::byte{0x50});
    l4.push_back(std::byte(flags));
    put16(l4, window);
    put16(l4, 0);
    put16(l4, 0);
    for (char c : payload) l4.push_back(std::byte(c));
    return l4;
}

Bytes arp(unsigned op) {
    Bytes b = ethernet(0x0806);
    put16(b, 1);
    put16(b, 0x0800);
    b.push_back(std::byte{6});
    b.push_back(std::byte{4});
    put16(b, op);
    b.resize(42, std::byte{7});
    return b;
}

Bytes ipv6_udp(const std::string& payload) {
    Bytes b = ethernet(0x86dd);
    const Bytes l4 = udp(payload);
    put32(b, 0x60000000);
    put16(b, static_cast<unsigned>(l4.size()));
    b.push_back(std::byte{17});
    b.push_back(std::byte{64});
    b.resize(b.size() + 32, std::byte{0xfe});
    b.insert(b.end(), l4.begin(), l4.end());
    return b;
}

const auto t0 = FrameCompare::Clock::time_point{};

}  // namespace

TEST_CASE("network frame compare: what is compared of each kind of frame") {
    // UDP: the payload, not the IP ID, TTL or checksums.
    CHECK(frame_key(ipv4(17, udp("req=1 count=1"), 1, 64)).compared == frame_key(ipv4(17, udp("req=1 count=1"), 9, 63)).compared);
    CHECK(frame_key(ipv4(17, udp("req=1 count=1"))).kind == FrameKey::Kind::udp);
    CHECK(frame_key(ipv4(17, udp("req=1 count=1"))).flow == "udp 10.0.0.2:7777>10.0.0.1:40000");
    CHECK(frame_key(ipv4(17, udp("a"))).compared != frame_key(ipv4(17, udp("b"))).compared);
    // TCP: the payload, with where the segment's fields are (tcp_stream_compare_test.cpp has the rest).
    const FrameKey segment = frame_key(ipv4(6, tcp(100, 200, 0x19, "data", 500)));
    REQUIRE(segment.tcp);
    CHECK(segment.kind == FrameKey::Kind::tcp);
    CHECK(segment.flow == "tcp 10.0.0.2:7000>10.0.0.1:41000");
    CHECK(segment.tcp->reverse_flow == "tcp 10.0.0.1:41000>10.0.0.2:7000");
    CHECK(segment.compared == Bytes{std::byte{'d'}, std::byte{'a'}, std::byte{'t'}, std::byte{'a'}});
    CHECK(segment.tcp->seq == 100);
    CHECK(segment.tcp->ack == 200);
    CHECK(segment.tcp->flags == 0x19);
    CHECK(segment.tcp->length() == 5);  // 4 bytes and the FIN
    CHECK(segment.tcp->header == 34);
    CHECK(segment.tcp->header_size == 20);
    // An IPv4 fragment's transport header cannot be trusted: compared whole.
    Bytes fragment = ipv4(6, tcp(100, 200, 0x18, "data"));
    fragment[14 + 6] = std::byte{0x20};  // more fragments
    CHECK(frame_key(fragment).kind == FrameKey::Kind::other);
    CHECK_FALSE(frame_key(fragment).tcp);
    // ICMP: the message without its checksum.
    Bytes echo{std::byte{0}, std::byte{0}, std::byte{0x11}, std::byte{0x11}, std::byte{1}, std::byte{2}};
    Bytes echo2 = echo;
    echo2[2] = std::byte{0x22};
    CHECK(frame_key(ipv4(1, echo)).kind == FrameKey::Kind::icmp);
    CHECK(frame_key(ipv4(1, echo)).compared == frame_key(ipv4(1, echo2)).compared);
    // ARP, IPv6 UDP and the rest: ARP whole, IPv6 like IPv4.
    CHECK(frame_key(arp(2)).flow == "ethertype 0806");
    CHECK(frame_key(arp(2)).compared.size() == 42);
    CHECK(frame_key(ipv6_udp("x")).kind == FrameKey::Kind::udp);
    CHECK(frame_key(ipv6_udp("x")).flow.rfind("udp fefe:", 0) == 0);
    // Lying or cut-short headers make a frame "other", compared whole.
    Bytes cut = ipv4(17, udp("hello"));
    cut.resize(cut.size() - 3);  // the IP total length now says more than there is
    CHECK(frame_key(cut).kind == FrameKey::Kind::other);
    CHECK(frame_key(cut).compared == cut);
    CHECK(frame_key(Bytes(5, std::byte{1})).flow == "short frame");
}

TEST_CASE("network frame compare: equal frames match per flow; flows go independently") {
    FrameCompare compare;
    compare.pvm_frame(1, ipv4(17, udp("a", 1000)), t0);
    compare.pvm_frame(2, ipv4(17, udp("b", 2000)), t0);
    compare.svm_frame(10, ipv4(17, udp("b", 2000), 77), t0);  // flow 2000 first
    auto matched = compare.take_matched();
    CHECK(matched.pvm == std::vector<std::uint64_t>{2});
    CHECK(matched.svm == std::vector<std::uint64_t>{10});
    compare.svm_frame(11, ipv4(17, udp("a", 1000)), t0);
    matched = compare.take_matched();
    CHECK(matched.pvm == std::vector<std::uint64_t>{1});
    CHECK(matched.svm == std::vector<std::uint64_t>{11});
    CHECK(compare.needs_checkpoint(t0).empty());
    CHECK(compare.take_matched().pvm.empty());
}

TEST_CASE("network frame compare: a difference, a timeout or a full queue asks for a checkpoint") {
    SUBCASE("difference") {
        FrameCompare compare;
        compare.pvm_frame(1, ipv4(17, udp("req=1 count=5")), t0);
        compare.svm_frame(1, ipv4(17, udp("req=1 count=6")), t0);
        CHECK(compare.take_matched().pvm.empty());
        CHECK(compare.needs_checkpoint(t0) == "udp 10.0.0.2:7777>10.0.0.1:40000: PVM frame 1 and SVM frame 1 differ");
        compare.reset();
        CHECK(compare.needs_checkpoint(t0).empty());
        compare.pvm_frame(2, arp(2), t0);
        compare.svm_frame(2, arp(2), t0);
        CHECK(compare.take_matched().pvm == std::vector<std::uint64_t>{2});
    }
    SUBCASE("timeout") {
        FrameCompare compare({std::chrono::milliseconds(300), 1024});
        compare.pvm_frame(4, arp(1), t0);
        CHECK(compare.needs_checkpoint(t0 + std::chrono::milliseconds(300)).empty());
        CHECK(compare.needs_checkpoint(t0 + std::chrono::milliseconds(301)) ==
              "ethertype 0806: PVM frame 4 unmatched for more than 300 ms");
    }
    SUBCASE("full") {
        FrameCompare compare({std::chrono::milliseconds(300), 3});
        for (std::uint64_t i = 1; i <= 4; ++i) compare.svm_frame(i, ipv4(17, udp("s")), t0);
        CHECK(compare.needs_checkpoint(t0) == "0 PVM and 4 SVM frames wait to be compared (at most 3)");
    }
}

TEST_CASE("network announce: a gratuitous ARP for the address, an unsolicited neighbour advertisement and a RARP announce") {
    const colo::MacAddress mac{0x52, 0x54, 0x00, 0x77, 0x00, 0x02};
    const auto frames = colo::network::announce_frames(mac, colo::Ipv4Cidr{{10, 77, 0, 2}, 24});
    REQUIRE(frames.size() == 3);
    const auto at = [](const Bytes& f, std::size_t i) { return std::to_integer<unsigned>(f[i]); };
    const Bytes& garp = frames[0];
    CHECK(garp.size() == 60);
    for (std::size_t i = 0; i < 6; ++i) CHECK(at(garp, i) == 0xff);                 // to everyone
    for (std::size_t i = 0; i < 6; ++i) CHECK(at(garp, 6 + i) == mac[i]);           // from the guest
    CHECK((at(garp, 12) << 8 | at(garp, 13)) == 0x0806);                          // ARP
    CHECK((at(garp, 20) << 8 | at(garp, 21)) == 1);                               // request
    for (std::size_t i = 0; i < 6; ++i) CHECK(at(garp, 22 + i) == mac[i]);          // sender MAC
    const unsigned ip[4] = {10, 77, 0, 2};
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(at(garp, 28 + i) == ip[i]);  // sender IP
        CHECK(at(garp, 38 + i) == ip[i]);  // target IP: the same (gratuitous)
    }
    // IPv6: the link-local address from the MAC (fe80::5054:ff:fe77:2), to all nodes, Override set.
    const Bytes& na = frames[1];
    REQUIRE(na.size() == 14 + 40 + 32);
    const unsigned all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
    for (std::size_t i = 0; i < 6; ++i) CHECK(at(na, i) == all_nodes_mac[i]);
    CHECK((at(na, 12) << 8 | at(na, 13)) == 0x86dd);
    CHECK(at(na, 14 + 6) == 58);    // ICMPv6
    CHECK(at(na, 14 + 7) == 255);   // hop limit 255, or receivers drop it (RFC 4861 7.1.2)
    const unsigned link_local[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x77, 0x00, 0x02};
    for (std::size_t i = 0; i < 16; ++i) {
        CHECK(at(na, 22 + i) == link_local[i]);  // source
        CHECK(at(na, 62 + i) == link_local[i]);  // target
    }
    CHECK(at(na, 38) == 0xff);
    CHECK(at(na, 39) == 0x02);
    CHECK(at(na, 53) == 1);          // ff02::1
    CHECK(at(na, 54) == 136);        // neighbour advertisement
    CHECK(at(na, 58) == 0x20);       // Override, not Solicited, not Router
    CHECK(at(na, 78) == 2);          // target link-layer address option
    CHECK(at(na, 79) == 1);
    for (std::size_t i = 0; i < 6; ++i) CHECK(at(na, 80 + i) == mac[i]);
    std::vector<std::uint8_t> pseudo;
    for (std::size_t i = 22; i < 54; ++i) pseudo.push_back(static_cast<std::uint8_t>(at(na, i)));
    pseudo.insert(pseudo.end(), {0, 0, 0, 32, 0, 0, 0, 58});
    for (std::size_t i = 54; i < na.size(); ++i) pseudo.push_back(static_cast<std::uint8_t>(at(na, i)));
    CHECK(colo::test::internet_checksum(pseudo.data(), pseudo.size()) == 0);
    const Bytes& rarp = frames[2];
    CHECK((at(rarp, 12) << 8 | at(rarp, 13)) == 0x8035);
    CHECK((at(rarp, 20) << 8 | at(rarp, 21)) == 3);
    CHECK(colo::network::announce_frames(mac, std::nullopt).size() == 2);  // no IPv4 address: no ARP
}
