// ReplicationLink's connect-time handshake on loopback: the receiver answers the stream header, so a
// peer of another stream version is a one-line error on both ends before any page moves.
#include <doctest/doctest.h>

#include <sys/socket.h>

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
    const std::string error = error_of([&] { (void)ReplicationLink::accept(listener, 5000ms, 2000ms); });
    CHECK(error == "peer speaks stream version 1, this is " + kThisVersion);
    CHECK(sender.get() == protocol::HeaderAnswer{protocol::kStreamVersion, protocol::HeaderVerdict::version_differs});
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
