// ReplicationLink's connect-time handshake on loopback: the receiver answers the stream header, so a
// peer of another stream version is a one-line error on both ends before any page moves.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "tests/unit/error_of.hpp"
#include "tests/unit/protocol_sample_messages.hpp"
#include "toolstack/protocol/message_codec.hpp"
#include "toolstack/protocol/stream_header.hpp"
#include "toolstack/replication_link.hpp"

using namespace std::chrono_literals;
using namespace colo;
using colo::test::error_of;

namespace {

Endpoint loopback(std::uint16_t port) { return Endpoint{"127.0.0.1", port}; }

const std::string kThisVersion = std::to_string(protocol::kStreamVersion);

// A peer that reads the whole stream header and then does `then` with the connection; returns
// every byte it read after the header (there must be none: nothing follows until the answer).
std::future<std::size_t> fake_receiver(TcpListener& listener, std::function<void(TcpConnection&)> then) {
    return std::async(std::launch::async, [&listener, then] {
        TcpConnection connection = listener.accept(5000ms);
        std::vector<std::byte> fixed(protocol::kStreamHeaderFixedBytes);
        connection.read_exact(fixed);
        std::vector<std::byte> rest(16 * std::size_t{static_cast<std::uint8_t>(fixed[20])} + 8);
        connection.read_exact(rest);
        then(connection);
        std::size_t after = 0;
        try {
            std::byte b[1];
            for (;;) {
                connection.read_exact(b);
                ++after;
            }
        } catch (const Error&) {
        }
        return after;
    });
}

// The bytes of a stream header of `version` (its CRC does not matter: the version is read first).
std::vector<std::byte> header_of_version(std::uint32_t version) {
    auto bytes = protocol::encode_stream_header(protocol::test::sample_header());
    bytes[8] = static_cast<std::byte>(version);
    return bytes;
}

}  // namespace

TEST_CASE("replication link: a receiver of another stream version is a one-line error at connect time") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    SUBCASE("version 1: hangs up on the header without an answer") {
        auto receiver = fake_receiver(listener, [](TcpConnection& c) { ::shutdown(c.fd(), SHUT_WR); });
        const std::string error =
            error_of([&] { (void)ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms); });
        CHECK(error.starts_with("peer speaks stream version 1, this is " + kThisVersion + " ("));
        CHECK(error.find('\n') == std::string::npos);
        CHECK(receiver.get() == 0);
    }
    SUBCASE("version 1: closes with the header's regions unread (the peer sees a reset)") {
        auto receiver = std::async(std::launch::async, [&] {
            TcpConnection connection = listener.accept(5000ms);
            std::vector<std::byte> fixed(protocol::kStreamHeaderFixedBytes);
            connection.read_exact(fixed);
        });
        const std::string error =
            error_of([&] { (void)ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms); });
        CHECK(error.starts_with("peer speaks stream version 1, this is " + kThisVersion + " ("));
        receiver.get();
    }
    SUBCASE("a later version: answers with its own") {
        auto receiver = fake_receiver(listener, [](TcpConnection& c) {
            protocol::write_header_answer(c, {protocol::kStreamVersion + 1, protocol::HeaderVerdict::version_differs});
            c.flush();
            ::shutdown(c.fd(), SHUT_WR);
        });
        const std::string error =
            error_of([&] { (void)ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms); });
        CHECK(error == "peer speaks stream version " + std::to_string(protocol::kStreamVersion + 1) + ", this is " +
                           kThisVersion);
        CHECK(receiver.get() == 0);
    }
}

TEST_CASE("replication link: a sender of another stream version is refused with the receiver's version") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    auto sender = std::async(std::launch::async, [&] {
        TcpConnection connection = TcpConnection::connect(loopback(listener.port()), ConnectionOptions{3000ms, 2000ms});
        connection.write_all(header_of_version(1));
        connection.flush();
        return protocol::read_header_answer(connection);
    });
    std::vector<std::string> refused;
    // The receiver answers, says why in one line, and waits on for a sender it speaks with.
    const std::string error = error_of(
        [&] { (void)ReplicationLink::accept(listener, 1500ms, 2000ms, [&](const std::string& why) { refused.push_back(why); }); });
    CHECK(error.starts_with("no peer connected to "));
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].ends_with(": peer speaks stream version 1, this is " + kThisVersion));
    CHECK(sender.get() == protocol::HeaderAnswer{protocol::kStreamVersion, protocol::HeaderVerdict::version_differs});
}

namespace {

// Connections to the receiver that are not senders, each a way a port scan or a stranger talks.
struct Probe {
    const char* what;
    std::string bytes;      // sent at once
    bool close_after;       // then hang up; else stay connected and silent
    const char* refused_as;  // in the receiver's line about it
};

int connect_raw(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    return fd;
}

}  // namespace

TEST_CASE("replication link: connections that are not senders are refused one by one, and a sender still gets in") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    const auto header = protocol::encode_stream_header(protocol::test::sample_header());
    const std::string valid_start(reinterpret_cast<const char*>(header.data()), 30);
    const std::vector<Probe> probes = {
        {"connect and close", "", true, "without a word"},
        {"garbage", std::string("GARBAGE!") + std::string(200, '\x5a'), false, "bad magic"},
        {"an HTTP request", "GET / HTTP/1.0\r\n\r\n", false, "bad magic"},
        {"half a header, then close", valid_start, true, "before its stream header was complete"},
        {"half a header, then silence", valid_start, false, "sent no stream header within 300 ms"},
        {"an idle socket", "", false, "sent no stream header within 300 ms"},
    };
    std::vector<std::string> refused;
    std::vector<int> open;
    std::size_t round = 0;
    for (const Probe& probe : probes) {
        CAPTURE(probe.what);
        const int fd = connect_raw(listener.port());
        if (!probe.bytes.empty()) REQUIRE(::send(fd, probe.bytes.data(), probe.bytes.size(), MSG_NOSIGNAL) > 0);
        if (probe.close_after) {
            ::close(fd);
        } else {
            open.push_back(fd);
        }
        // No sender among them: the accept ends only at its own timeout, having refused the probe.
        const std::string error = error_of([&] {
            (void)ReplicationLink::accept(listener, 700ms, 300ms, [&](const std::string& why) { refused.push_back(why); });
        });
        CHECK(error.starts_with("no peer connected to "));
        REQUIRE(refused.size() == ++round);
        CHECK(refused.back().find(probe.refused_as) != std::string::npos);
        CHECK(refused.back().find('\n') == std::string::npos);
    }
    // More idle connections than may wait at once: the oldest are dropped, not the newest, and a
    // sender connecting after them all is accepted.
    refused.clear();
    for (std::size_t i = 0; i < ReplicationLink::kMaxUnheardPeers + 4; ++i) open.push_back(connect_raw(listener.port()));
    auto receiving = std::async(std::launch::async, [&] {
        return ReplicationLink::accept(listener, 5000ms, 3000ms, [&](const std::string& why) { refused.push_back(why); });
    });
    auto sender = ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms);
    auto receiver = receiving.get();
    CHECK(receiver->header() == protocol::test::sample_header());
    CHECK(refused.size() >= 4);
    for (const auto& line : refused) CHECK(line.find("dropped unheard") != std::string::npos);
    sender->channel().send(protocol::CheckpointBegin{7});
    const auto got = receiver->channel().receive(Channel::Clock::now() + 5s);
    REQUIRE(got);
    CHECK(std::get<protocol::CheckpointBegin>(*got).epoch == 7);
    for (const int fd : open) ::close(fd);
}

TEST_CASE("replication link: matching versions connect, and messages follow the answer") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 2000ms});
    auto receiving = std::async(std::launch::async, [&] { return ReplicationLink::accept(listener, 5000ms, 2000ms); });
    auto sender = ReplicationLink::connect(loopback(listener.port()), protocol::test::sample_header(), 2000ms);
    auto receiver = receiving.get();
    CHECK(receiver->header() == protocol::test::sample_header());
    sender->channel().send(protocol::CheckpointBegin{5});
    const auto got = receiver->channel().receive(Channel::Clock::now() + 5s);
    REQUIRE(got);
    CHECK(std::get<protocol::CheckpointBegin>(*got).epoch == 5);
}
