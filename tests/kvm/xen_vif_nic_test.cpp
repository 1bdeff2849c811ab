// The Xen backend's vif NIC (xen/vif_nic.hpp) on real host interfaces, with a veth pair standing
// in for netback: "vif4093.0" is the dom0 end of domain 4093's vif 0, its peer the guest's end.
// No Xen is needed for what the NIC does in dom0 (bridges, TAPs, frames); the nested Xen tier
// checks it with a real netback and a Linux guest. Here beside the KVM NIC tests: it needs root
// and /dev/net/tun, as they do.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/error.hpp"
#include "backends/net_link.hpp"
#include "backends/unique_fd.hpp"
#include "xen/vif_nic.hpp"

using namespace std::chrono_literals;
using colo::xen::XenVifNic;

namespace {

constexpr const char* kVif = "vif4093.0";
constexpr const char* kGuestEnd = "crxguest0";
constexpr const char* kBridge = "crxbr0";
constexpr const char* kTap = "crxtap0";
constexpr std::uint16_t kEtherType = 0x88b5;  // IEEE 802 local experimental

std::string no_network_here() {
    if (::geteuid() != 0) return "host interfaces need root";
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) return "no /dev/net/tun on this host";
    return "";
}

void sh(const std::string& command) { REQUIRE(std::system(command.c_str()) == 0); }

void remove_interfaces() {
    (void)std::system("ip link del crxguest0 2>/dev/null; ip link del crxbr0 2>/dev/null; ip link del cv4093.0 2>/dev/null");
}

// A broadcast frame of our own type, its payload marked with `tag`.
std::vector<std::byte> frame_with(std::uint8_t tag) {
    std::vector<std::byte> frame(60, std::byte{0});
    for (int i = 0; i < 6; ++i) frame[i] = std::byte{0xff};
    const std::array<std::uint8_t, 6> src{0x00, 0x16, 0x3e, 0x40, 0x93, 0x00};
    for (int i = 0; i < 6; ++i) frame[6 + i] = std::byte{src[i]};
    frame[12] = std::byte{kEtherType >> 8};
    frame[13] = std::byte{kEtherType & 0xff};
    frame[14] = std::byte{tag};
    return frame;
}

bool is_ours(std::span<const std::byte> frame, std::uint8_t tag) {
    return frame.size() >= 15 && frame[12] == std::byte{kEtherType >> 8} && frame[13] == std::byte{kEtherType & 0xff} &&
           frame[14] == std::byte{tag};
}

// A packet socket on one interface: what a host or the guest sees on its side.
class PacketSocket {
public:
    explicit PacketSocket(const std::string& name) : fd_(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL))) {
        REQUIRE(fd_.valid());
        sockaddr_ll at{};
        at.sll_family = AF_PACKET;
        at.sll_protocol = htons(ETH_P_ALL);
        at.sll_ifindex = static_cast<int>(::if_nametoindex(name.c_str()));
        REQUIRE(at.sll_ifindex != 0);
        REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
    }
    void send(std::span<const std::byte> frame) { REQUIRE(::send(fd_.get(), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size())); }
    // Whether a frame of ours with `tag` arrives (not one this socket's interface sent) within 5 s.
    bool receives(std::uint8_t tag) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        std::array<std::byte, 2048> buffer{};
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd_.get(), POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            sockaddr_ll from{};
            socklen_t length = sizeof from;
            const ssize_t n = ::recvfrom(fd_.get(), buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
            if (n > 0 && from.sll_pkttype != PACKET_OUTGOING && is_ours({buffer.data(), static_cast<std::size_t>(n)}, tag)) return true;
        }
        return false;
    }

private:
    colo::UniqueFd fd_;
};

// Frames a sink got, for polling from the test's thread.
struct Collected {
    std::mutex mutex;
    std::vector<std::vector<std::byte>> frames;
    colo::FrameSink sink() {
        return [this](std::span<const std::byte> f) {
            std::lock_guard lock(mutex);
            frames.emplace_back(f.begin(), f.end());
        };
    }
    bool has(std::uint8_t tag) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < deadline) {
            {
                std::lock_guard lock(mutex);
                for (const auto& f : frames) {
                    if (is_ours(f, tag)) return true;
                }
            }
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }
};

}  // namespace

TEST_CASE("xen vif NIC: a domain without that vif is refused with one line") {
    colo::VifConfig vif;
    CHECK_THROWS_WITH_AS(XenVifNic(4094, 1, vif, true),
                         "xen domain 4094 has no vif 1 (no interface vif4094.1 in dom0): its xl config must list as many "
                         "vifs as its colo-replicate config",
                         colo::Error);
}

TEST_CASE("xen vif NIC: netback's vif moves from its bridge into one of its own, frames pass both ways, and it goes back") {
    if (const auto why = no_network_here(); !why.empty()) {
        MESSAGE("skipped: " << why);
        return;
    }
    remove_interfaces();
    sh(std::string("ip link add ") + kVif + " type veth peer name " + kGuestEnd + " && ip link set " + kGuestEnd + " up");
    sh(std::string("ip link add ") + kBridge + " type bridge && ip link set " + kBridge + " up && ip link set " + kVif +
       " master " + kBridge + " && ip link set " + kVif + " up");
    {
        colo::VifConfig config;
        config.vifname = kTap;  // no bridge=: the outer TAP joins the bridge the vif was in
        XenVifNic nic(4093, 0, config, true);
        CHECK(colo::net_link::bridge_of(kVif) == std::optional<std::string>("cv4093.0"));
        CHECK(colo::net_link::bridge_of(kTap) == std::optional<std::string>(kBridge));
        CHECK(nic.host_name() == kTap);
        PacketSocket guest(kGuestEnd);
        PacketSocket host(kTap);

        // Unprotected: a wire, guest to host and back.
        guest.send(frame_with(1));
        CHECK(host.receives(1));
        nic.transmit_to_host(frame_with(2));
        CHECK(host.receives(2));
        nic.deliver_to_guest(frame_with(3));
        CHECK(guest.receives(3));

        // With sinks: the guest's frames go to the transmit sink only (what the network device
        // holds until a checkpoint is acknowledged).
        Collected sent, heard;
        nic.set_transmit_sink(sent.sink());
        nic.set_host_receive_sink(heard.sink());
        guest.send(frame_with(4));
        CHECK(sent.has(4));
        CHECK_FALSE(host.receives(4));

        nic.detach_host();
        CHECK_FALSE(nic.attached());
        CHECK_FALSE(colo::net_link::exists(kTap));
        nic.attach_host();
        CHECK(colo::net_link::bridge_of(kTap) == std::optional<std::string>(kBridge));
    }
    // Let go of: the vif is back where xl's hotplug script put it, and nothing of ours is left.
    CHECK(colo::net_link::bridge_of(kVif) == std::optional<std::string>(kBridge));
    CHECK_FALSE(colo::net_link::exists("cv4093.0"));
    CHECK_FALSE(colo::net_link::exists(kTap));
    remove_interfaces();
}
