// The built-in guest's network service (kvm/builtin_guest/net.c), built for the host and driven
// through a virtio-net device simulated in plain memory: the "register page" is a buffer holding
// what a device would show (magic, version 2, a NIC offering VERSION_1 and MAC), and the test
// plays the device's side of the rings, so every frame the guest sends can be checked byte for
// byte. The real device and the real guest meet in tests/kvm/guest_net_test.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kvm/builtin_guest/net.h"
#include "kvm/builtin_guest/params.h"
#include "tests/internet_checksum.hpp"

using colo::test::internet_checksum;
using Frame = std::vector<std::uint8_t>;

namespace {

constexpr std::array<std::uint8_t, 6> kGuestMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr std::array<std::uint8_t, 6> kHostMac = {0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc};
constexpr std::array<std::uint8_t, 4> kGuestIp = {10, 0, 0, 2};
constexpr std::array<std::uint8_t, 4> kHostIp = {10, 0, 0, 1};
constexpr std::uint32_t kHeaderBytes = 12;  // virtio_net_hdr (v1)

void put16(Frame& f, std::size_t at, std::uint16_t v) {
    f[at] = static_cast<std::uint8_t>(v >> 8);
    f[at + 1] = static_cast<std::uint8_t>(v);
}
std::uint16_t get16(const Frame& f, std::size_t at) { return static_cast<std::uint16_t>(f[at] << 8 | f[at + 1]); }

template <typename T>
T load(const std::uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <typename T>
void store(std::uint8_t* p, T v) {
    std::memcpy(p, &v, sizeof v);
}

struct Aligned {
    void operator()(std::uint8_t* p) const { std::free(p); }
};

// The device side: what KVM's virtio-net does with the guest's rings, on plain memory.
class SimulatedNic {
public:
    SimulatedNic() {
        regs_.fill(0);
        store<std::uint32_t>(regs_.data() + 0x000, 0x74726976);
        store<std::uint32_t>(regs_.data() + 0x004, 2);
        store<std::uint32_t>(regs_.data() + 0x008, 1);
        // Feature words as one register: word 0 shows MAC (bit 5), word 1 VERSION_1 (bit 0).
        store<std::uint32_t>(regs_.data() + 0x010, (1u << 5) | 1u);
        store<std::uint32_t>(regs_.data() + 0x034, 256);
        std::copy(kGuestMac.begin(), kGuestMac.end(), regs_.begin() + 0x100);
        area_.reset(static_cast<std::uint8_t*>(std::aligned_alloc(4096, COLO_BUILTIN_NET_AREA_BYTES)));
        std::memset(area_.get(), 0xa5, COLO_BUILTIN_NET_AREA_BYTES);  // the driver must clear its rings

        colo_builtin_params p{};
        p.nic_mmio_gpa = reinterpret_cast<std::uintptr_t>(regs_.data());
        p.net_area_gpa = reinterpret_cast<std::uintptr_t>(area_.get());
        std::copy(kGuestIp.begin(), kGuestIp.end(), p.ipv4);
        p.ipv4_prefix = 24;
        const char* failed = net_start(&p, 0);
        REQUIRE_MESSAGE(failed == nullptr, failed);
        CHECK((load<std::uint32_t>(regs_.data() + 0x070) & 0xf) == 0xf);  // ACK, DRIVER, FEATURES_OK, DRIVER_OK
        CHECK(load<std::uint32_t>(regs_.data() + 0x038) == COLO_BUILTIN_NET_QUEUE_SIZE);
    }

    // One received frame into the next buffer the driver posted; false when none is posted.
    bool receive(const Frame& frame) {
        std::uint8_t* rx = area_.get() + COLO_BUILTIN_NET_RX_RINGS;
        if (load<std::uint16_t>(rx + 0x1000 + 2) == rx_avail_seen_) return false;
        const std::uint16_t id = load<std::uint16_t>(rx + 0x1000 + 4 + 2 * (rx_avail_seen_ % kSize));
        ++rx_avail_seen_;
        const std::uint64_t addr = load<std::uint64_t>(rx + 16 * id);
        const std::uint32_t capacity = load<std::uint32_t>(rx + 16 * id + 8);
        REQUIRE((load<std::uint16_t>(rx + 16 * id + 12) & 2) != 0);  // device-writable
        REQUIRE(kHeaderBytes + frame.size() <= capacity);
        auto* buffer = reinterpret_cast<std::uint8_t*>(addr);
        std::memset(buffer, 0, kHeaderBytes);
        store<std::uint16_t>(buffer + 10, 1);  // num_buffers
        std::copy(frame.begin(), frame.end(), buffer + kHeaderBytes);
        std::uint8_t* used = rx + 0x2000;
        store<std::uint32_t>(used + 4 + 8 * (rx_used_ % kSize), id);
        store<std::uint32_t>(used + 4 + 8 * (rx_used_ % kSize) + 4, kHeaderBytes + static_cast<std::uint32_t>(frame.size()));
        ++rx_used_;
        store<std::uint16_t>(used + 2, rx_used_);
        return true;
    }

    // Frames the driver queued for transmission since the last call (their buffers returned).
    std::vector<Frame> transmitted() {
        std::vector<Frame> out;
        std::uint8_t* tx = area_.get() + COLO_BUILTIN_NET_TX_RINGS;
        CHECK((load<std::uint16_t>(tx + 0x1000) & 1) == 1);  // no transmit interrupts wanted
        const std::uint16_t avail = load<std::uint16_t>(tx + 0x1000 + 2);
        while (tx_avail_seen_ != avail) {
            const std::uint16_t id = load<std::uint16_t>(tx + 0x1000 + 4 + 2 * (tx_avail_seen_ % kSize));
            ++tx_avail_seen_;
            const std::uint64_t addr = load<std::uint64_t>(tx + 16 * id);
            const std::uint32_t length = load<std::uint32_t>(tx + 16 * id + 8);
            REQUIRE(length > kHeaderBytes);
            const auto* buffer = reinterpret_cast<const std::uint8_t*>(addr);
            CHECK(std::all_of(buffer, buffer + kHeaderBytes, [](std::uint8_t b) { return b == 0; }));
            out.emplace_back(buffer + kHeaderBytes, buffer + length);
            std::uint8_t* used = tx + 0x2000;
            store<std::uint32_t>(used + 4 + 8 * (tx_used_ % kSize), id);
            ++tx_used_;
            store<std::uint16_t>(used + 2, tx_used_);
        }
        return out;
    }

    // The driver's answer to `frames` (each delivered, then one poll).
    std::vector<Frame> exchange(const std::vector<Frame>& frames) {
        for (const auto& f : frames) REQUIRE(receive(f));
        net_poll(1);
        return transmitted();
    }

private:
    static constexpr std::uint16_t kSize = COLO_BUILTIN_NET_QUEUE_SIZE;
    alignas(4096) std::array<std::uint8_t, 4096> regs_{};
    std::unique_ptr<std::uint8_t, Aligned> area_;
    std::uint16_t rx_avail_seen_ = 0, rx_used_ = 0, tx_avail_seen_ = 0, tx_used_ = 0;
};

Frame ethernet(const std::array<std::uint8_t, 6>& to, std::uint16_t type, std::size_t payload) {
    Frame f(14 + payload, 0);
    std::copy(to.begin(), to.end(), f.begin());
    std::copy(kHostMac.begin(), kHostMac.end(), f.begin() + 6);
    put16(f, 12, type);
    return f;
}

Frame arp_request(const std::array<std::uint8_t, 4>& target) {
    Frame f = ethernet({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0x0806, 28);
    const std::array<std::uint8_t, 8> head = {0, 1, 8, 0, 6, 4, 0, 1};
    std::copy(head.begin(), head.end(), f.begin() + 14);
    std::copy(kHostMac.begin(), kHostMac.end(), f.begin() + 22);
    std::copy(kHostIp.begin(), kHostIp.end(), f.begin() + 28);
    std::copy(target.begin(), target.end(), f.begin() + 38);
    return f;
}

Frame ipv4(std::uint8_t protocol, const std::vector<std::uint8_t>& payload,
           const std::array<std::uint8_t, 4>& to = kGuestIp) {
    Frame f = ethernet(kGuestMac, 0x0800, 20 + payload.size());
    f[14] = 0x45;
    put16(f, 16, static_cast<std::uint16_t>(20 + payload.size()));
    put16(f, 18, 0x1234);
    f[22] = 64;
    f[23] = protocol;
    std::copy(kHostIp.begin(), kHostIp.end(), f.begin() + 26);
    std::copy(to.begin(), to.end(), f.begin() + 30);
    put16(f, 24, internet_checksum(f.data() + 14, 20));
    std::copy(payload.begin(), payload.end(), f.begin() + 34);
    return f;
}

std::uint32_t pseudo_header_sum(const std::uint8_t* ip_header, std::size_t udp_length) {
    std::uint32_t sum = 0;
    for (int i = 12; i < 20; i += 2) sum += static_cast<std::uint32_t>(ip_header[i] << 8 | ip_header[i + 1]);
    return sum + 17 + static_cast<std::uint32_t>(udp_length);
}

Frame udp_request(const std::string& text, std::uint16_t from_port, bool checksum = true,
                  const std::array<std::uint8_t, 4>& to = kGuestIp) {
    std::vector<std::uint8_t> udp(8 + text.size(), 0);
    udp[0] = static_cast<std::uint8_t>(from_port >> 8), udp[1] = static_cast<std::uint8_t>(from_port);
    udp[2] = 7777 >> 8, udp[3] = 7777 & 0xff;
    udp[4] = static_cast<std::uint8_t>(udp.size() >> 8), udp[5] = static_cast<std::uint8_t>(udp.size());
    std::copy(text.begin(), text.end(), udp.begin() + 8);
    Frame f = ipv4(17, udp, to);
    if (checksum) put16(f, 40, internet_checksum(f.data() + 34, udp.size(), pseudo_header_sum(f.data() + 14, udp.size())));
    return f;
}

// A reply's Ethernet and IPv4 headers: to us, from the guest, checksum right. Returns the payload.
Frame ipv4_payload(const Frame& reply, std::uint8_t protocol) {
    REQUIRE(reply.size() >= 60);  // padded to Ethernet's minimum
    CHECK(std::equal(kHostMac.begin(), kHostMac.end(), reply.begin()));
    CHECK(std::equal(kGuestMac.begin(), kGuestMac.end(), reply.begin() + 6));
    REQUIRE(get16(reply, 12) == 0x0800);
    CHECK(reply[14] == 0x45);
    CHECK(reply[23] == protocol);
    CHECK(internet_checksum(reply.data() + 14, 20) == 0);
    CHECK(std::equal(kGuestIp.begin(), kGuestIp.end(), reply.begin() + 26));
    CHECK(std::equal(kHostIp.begin(), kHostIp.end(), reply.begin() + 30));
    const std::size_t total = get16(reply, 16);
    REQUIRE(14 + total <= reply.size());
    return Frame(reply.begin() + 34, reply.begin() + 14 + static_cast<long>(total));
}

// The text of a UDP reply to port `to_port`, its checksum checked.
std::string udp_reply_text(const Frame& reply, std::uint16_t to_port) {
    const Frame udp = ipv4_payload(reply, 17);
    REQUIRE(udp.size() >= 8);
    CHECK(get16(udp, 0) == 7777);
    CHECK(get16(udp, 2) == to_port);
    CHECK(get16(udp, 4) == udp.size());
    CHECK(internet_checksum(udp.data(), udp.size(), pseudo_header_sum(reply.data() + 14, udp.size())) == 0);
    return std::string(udp.begin() + 8, udp.end());
}

}  // namespace

TEST_CASE("builtin guest net: ARP requests for its address are answered with the vif's MAC, others ignored") {
    SimulatedNic nic;
    const auto replies = nic.exchange({arp_request(kGuestIp), arp_request({10, 0, 0, 3})});
    REQUIRE(replies.size() == 1);
    const Frame& r = replies[0];
    REQUIRE(r.size() == 60);
    CHECK(std::equal(kHostMac.begin(), kHostMac.end(), r.begin()));
    CHECK(std::equal(kGuestMac.begin(), kGuestMac.end(), r.begin() + 6));
    CHECK(get16(r, 12) == 0x0806);
    CHECK(get16(r, 20) == 2);  // reply
    CHECK(std::equal(kGuestMac.begin(), kGuestMac.end(), r.begin() + 22));
    CHECK(std::equal(kGuestIp.begin(), kGuestIp.end(), r.begin() + 28));
    CHECK(std::equal(kHostMac.begin(), kHostMac.end(), r.begin() + 32));
    CHECK(std::equal(kHostIp.begin(), kHostIp.end(), r.begin() + 38));
}

TEST_CASE("builtin guest net: ICMP echo is answered with the same id, sequence and data") {
    SimulatedNic nic;
    std::vector<std::uint8_t> echo(8 + 56);
    echo[0] = 8;
    echo[4] = 0x12, echo[5] = 0x34, echo[6] = 0, echo[7] = 9;
    for (std::size_t i = 8; i < echo.size(); ++i) echo[i] = static_cast<std::uint8_t>(i * 3);
    const std::uint16_t sum = internet_checksum(echo.data(), echo.size());
    echo[2] = static_cast<std::uint8_t>(sum >> 8), echo[3] = static_cast<std::uint8_t>(sum);
    auto corrupted = echo;
    corrupted[20] ^= 1;
    const auto replies = nic.exchange({ipv4(1, echo), ipv4(1, corrupted), ipv4(1, echo, {10, 0, 0, 9})});
    REQUIRE(replies.size() == 1);
    const Frame icmp = ipv4_payload(replies[0], 1);
    REQUIRE(icmp.size() == echo.size());
    CHECK(icmp[0] == 0);
    CHECK(internet_checksum(icmp.data(), icmp.size()) == 0);
    CHECK(std::equal(echo.begin() + 4, echo.end(), icmp.begin() + 4));
}

TEST_CASE("builtin guest net: UDP requests get \"<id> count=N\" with N counting requests served") {
    SimulatedNic nic;
    const auto first = nic.exchange({udp_request("req=17", 40000)});
    REQUIRE(first.size() == 1);
    CHECK(udp_reply_text(first[0], 40000) == "req=17 count=1\n");

    // A trailing newline is not part of the id; no checksum (0) is allowed in IPv4; another
    // address, another port or a bad checksum is not a request and is not counted.
    auto bad_checksum = udp_request("req=x", 40002);
    bad_checksum[40] ^= 0xff;
    auto other_port = udp_request("req=y", 40003);
    put16(other_port, 36, 7778);
    const auto replies = nic.exchange({udp_request("req=18\n", 40001), udp_request("req=19", 40001, false),
                                       bad_checksum, other_port, udp_request("req=z", 40004, true, {10, 0, 0, 7}),
                                       udp_request("req=20", 40001)});
    REQUIRE(replies.size() == 3);
    CHECK(udp_reply_text(replies[0], 40001) == "req=18 count=2\n");
    CHECK(udp_reply_text(replies[1], 40001) == "req=19 count=3\n");
    CHECK(udp_reply_text(replies[2], 40001) == "req=20 count=4\n");
}

TEST_CASE("builtin guest net: rings wrap: 1000 requests in bursts up to twice the queue size, none lost") {
    SimulatedNic nic;
    std::uint64_t k = 0;
    for (std::size_t burst = 1; burst < 2 * COLO_BUILTIN_NET_QUEUE_SIZE && k < 1000; burst += 7) {
        // The driver has COLO_BUILTIN_NET_QUEUE_SIZE receive buffers: deliver what fits, poll, repeat.
        std::vector<Frame> sent;
        std::vector<Frame> replies;
        for (std::size_t i = 0; i < burst; ++i) {
            const auto request = udp_request("req=" + std::to_string(k + i + 1), 50000);
            if (!nic.receive(request)) {
                net_poll(1);
                for (auto& r : nic.transmitted()) replies.push_back(std::move(r));
                REQUIRE(nic.receive(request));
            }
        }
        net_poll(1);
        for (auto& r : nic.transmitted()) replies.push_back(std::move(r));
        REQUIRE(replies.size() == burst);
        for (const auto& r : replies) {
            ++k;
            CAPTURE(k);
            REQUIRE(udp_reply_text(r, 50000) == "req=" + std::to_string(k) + " count=" + std::to_string(k) + "\n");
        }
    }
    CHECK(k > 1000);
}

TEST_CASE("builtin guest net: the same frames give the same bytes (what COLO compares)") {
    const std::vector<Frame> input = {arp_request(kGuestIp), udp_request("req=1", 1234), udp_request("req=2", 1234)};
    std::vector<Frame> first, second;
    {
        SimulatedNic nic;
        first = nic.exchange(input);
    }
    {
        SimulatedNic nic;
        second = nic.exchange(input);
    }
    REQUIRE(first.size() == 3);
    CHECK(first == second);
}
