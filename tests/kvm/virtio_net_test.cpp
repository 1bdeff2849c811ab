// The virtio-net NIC with a real guest: the built-in guest answers ARP (with the vif's MAC), ICMP
// echo and its UDP service through a TAP, what the device writes into guest memory is in the dirty
// log, and a guest moved into a new VM (state and memory) keeps answering with its counter going
// on. Needs root for the TAP.
#include <algorithm>
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/dirty_bitmap.hpp"
#include "backends/unique_fd.hpp"
#include "kvm/builtin_guest/params.h"
#include "kvm/kvm_backend.hpp"
#include "kvm/layout.hpp"
#include "tests/internet_checksum.hpp"
#include "tests/kvm/guest_memory_copy.hpp"

using namespace std::chrono_literals;
using colo::GuestConfig;
using colo::kvm::KvmBackend;

namespace {

constexpr const char* kTap = "crkvmtest0";

// A TAP needs root and the tun device (the nested tier's minimal L1 has none): else why not.
std::string no_tap_here() {
    if (::geteuid() != 0) return "a TAP needs root";
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) return "no /dev/net/tun on this host";
    return "";
}

GuestConfig net_guest() {
    GuestConfig config;
    config.name = "net-test";
    config.memory_mib = 16;
    config.working_set_mib = 4;
    config.dirty_rate = 1000;
    config.print_interval_ms = 50;
    colo::VifConfig vif;
    vif.mac = {0x52, 0x54, 0x00, 0x99, 0x00, 0x02};
    vif.vifname = kTap;
    vif.ip = colo::Ipv4Cidr{{10, 99, 0, 2}, 24};
    config.vifs.push_back(vif);
    return config;
}

// The host's side of the TAP: an address, so that we can talk to the guest.
void address_host_side() {
    REQUIRE(std::system((std::string("ip addr add 10.99.0.1/24 dev ") + kTap + " 2>/dev/null").c_str()) == 0);
}

// One datagram, or "" when none comes within `wait`.
std::string receive(int fd, std::chrono::milliseconds wait) {
    timeval tv{static_cast<long>(wait.count() / 1000), static_cast<long>(wait.count() % 1000 * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buffer[256];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
}

// One request, re-sent every second until its reply comes (the guest may still be booting, or
// its ARP entry be missing, or the machine be busy); the reply's text, or "" after `wait`. Replies
// to other requests are skipped. `sends` (if given) counts the times it was sent.
std::string ask(int fd, const std::string& request, std::chrono::milliseconds wait, int* sends = nullptr) {
    sockaddr_in guest{};
    guest.sin_family = AF_INET;
    guest.sin_port = htons(7777);
    inet_pton(AF_INET, "10.99.0.2", &guest.sin_addr);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
        (void)::sendto(fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&guest), sizeof guest);
        if (sends) ++*sends;
        const auto resend = std::chrono::steady_clock::now() + 1s;
        while (std::chrono::steady_clock::now() < std::min(resend, deadline)) {
            const std::string reply = receive(fd, 100ms);
            if (reply.rfind(request + " ", 0) == 0) return reply;
        }
    }
    return "";
}

// The count in "req=K count=N\n".
int count_of(const std::string& reply) {
    const auto at = reply.find("count=");
    return at == std::string::npos ? -1 : std::atoi(reply.c_str() + at + 6);
}

// One ICMP echo request to the guest (a raw socket: we are root); whether the matching reply,
// with the same identifier, sequence number and payload, came within `wait`.
bool ping(std::uint16_t sequence, std::chrono::milliseconds wait) {
    colo::UniqueFd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP));
    REQUIRE(fd.valid());
    std::uint8_t request[8 + 16] = {8, 0, 0, 0, 0xc0, 0x10, static_cast<std::uint8_t>(sequence >> 8),
                                    static_cast<std::uint8_t>(sequence)};
    std::memcpy(request + 8, "colo-replicate!!", 16);
    const std::uint16_t sum = colo::test::internet_checksum(request, sizeof request);
    request[2] = static_cast<std::uint8_t>(sum >> 8);
    request[3] = static_cast<std::uint8_t>(sum);
    sockaddr_in guest{};
    guest.sin_family = AF_INET;
    inet_pton(AF_INET, "10.99.0.2", &guest.sin_addr);
    REQUIRE(::sendto(fd.get(), request, sizeof request, 0, reinterpret_cast<sockaddr*>(&guest), sizeof guest) ==
            static_cast<ssize_t>(sizeof request));
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
        timeval tv{0, 100 * 1000};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::uint8_t packet[256];
        const ssize_t n = ::recv(fd.get(), packet, sizeof packet, 0);  // the IPv4 header, then ICMP
        if (n < 20) continue;
        const std::size_t ip_header = (packet[0] & 0x0f) * 4u;
        if (static_cast<std::size_t>(n) != ip_header + sizeof request) continue;
        const std::uint8_t* reply = packet + ip_header;
        if (reply[0] == 0 && std::memcmp(reply + 4, request + 4, sizeof request - 4) == 0 &&
            colo::test::internet_checksum(reply, sizeof request) == 0) {
            return true;
        }
    }
    return false;
}

// The link-layer address the host's neighbour table holds for the guest ("" when none).
std::string neighbour_mac() {
    const std::string command = std::string("ip neigh show 10.99.0.2 dev ") + kTap;
    FILE* out = ::popen(command.c_str(), "r");
    REQUIRE(out != nullptr);
    char line[256] = {};
    const bool read = std::fgets(line, sizeof line, out) != nullptr;
    ::pclose(out);
    const std::string text = read ? line : "";
    const auto at = text.find("lladdr ");
    return at == std::string::npos ? "" : text.substr(at + 7, 17);
}

colo::UniqueFd client_socket() {
    colo::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.valid());
    return fd;
}

}  // namespace

TEST_CASE("virtio-net: the built-in guest answers through its TAP; the device's writes are dirty; a moved guest goes on") {
    if (const std::string why = no_tap_here(); !why.empty()) {
        MESSAGE("skipped: " << why);
        return;
    }
    const GuestConfig config = net_guest();
    auto guest = KvmBackend::create(config);
    REQUIRE(guest->nics().size() == 1);
    CHECK(guest->nics()[0]->host_name() == kTap);
    address_host_side();
    guest->resume();
    auto fd = client_socket();
    // The first answer may take the guest's boot (and be asked, and served, more than once);
    // after it, each request is the next count.
    int count = count_of(ask(fd.get(), "req=0", 20s));
    REQUIRE(count >= 1);
    while (true) {  // answers to re-sent req=0 still on their way
        const std::string late = receive(fd.get(), 300ms);
        if (late.empty()) break;
        count = count_of(late);
    }
    // Each reply carries a new count, and the counts never run ahead of the requests sent: a
    // re-send (a reply slower than a second on a busy machine) may be served too, later.
    int unserved = 0;
    const auto next = [&](int k) {
        const std::string request = "req=" + std::to_string(k);
        int sends = 0;
        const std::string reply = ask(fd.get(), request, 10s, &sends);
        unserved += sends;
        const int got = count_of(reply);
        CHECK(reply.rfind(request + " count=", 0) == 0);
        CHECK(got > count);
        CHECK(got - count <= unserved);
        unserved -= std::max(0, got - count);
        count = got;
    };
    for (int k = 1; k <= 10; ++k) next(k);
    // ARP answered with the vif's MAC; ICMP echo answered (not counted by the UDP service).
    CHECK(neighbour_mac() == "52:54:00:99:00:02");
    CHECK(ping(1, 2s));
    CHECK(ping(2, 2s));

    // Pages only the device writes (the receive buffers) show up in the dirty log.
    guest->start_dirty_log();
    colo::DirtyBitmap first(guest->memory().frame_limit());
    guest->harvest_dirty(first);
    next(11);
    colo::DirtyBitmap after(guest->memory().frame_limit());
    guest->harvest_dirty(after);
    const std::uint64_t rx = colo::kvm::layout::kBuiltinNetArea.value + COLO_BUILTIN_NET_RX_BUFFERS;
    bool rx_dirty = false;
    for (std::uint64_t gpa = rx; gpa < rx + COLO_BUILTIN_NET_QUEUE_SIZE * COLO_BUILTIN_NET_BUFFER_BYTES; gpa += colo::kPageSize) {
        rx_dirty = rx_dirty || after.test(colo::Pfn{gpa >> colo::kPageShift});
    }
    CHECK(rx_dirty);
    guest->stop_dirty_log();

    // Move it: state and memory into a new VM; its NIC makes the TAP of the same name again.
    guest->pause();
    const auto state = guest->save_state();
    auto moved = KvmBackend::create_incoming(config);
    colo::test::copy_memory(guest->memory(), moved->memory());
    CHECK_FALSE(moved->nics()[0]->attached());
    guest.reset();
    moved->restore_state(state);
    moved->nics()[0]->attach_host();
    address_host_side();
    moved->resume();
    // The new TAP has a new neighbour entry to learn: the first answer may take a re-send.
    next(12);
    next(13);
    CHECK(ping(3, 2s));
}

TEST_CASE("virtio-net: a damaged NIC state record is refused before anything changes") {
    GuestConfig config = net_guest();
    auto guest = KvmBackend::create_incoming(config);  // detached: no TAP needed
    auto state = KvmBackend::create_incoming(config)->save_state();
    for (auto& record : state) {
        if (record.tag == 0x04000000) record.data.pop_back();
    }
    CHECK_THROWS_WITH(guest->restore_state(state), "virtio-net state: cut short");
}
