// The TCP transport on loopback: real sockets, a peer thread, no mocks.
#include <doctest/doctest.h>

#include "tests/unit/error_of.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "backends/error.hpp"
#include "tests/unit/protocol_sample_messages.hpp"
#include "toolstack/protocol/message_codec.hpp"
#include "toolstack/transport/tcp_connection.hpp"
#include "toolstack/transport/tcp_listener.hpp"

using namespace std::chrono_literals;
using namespace colo::protocol;
using namespace colo::protocol::test;
using colo::ConnectionOptions;
using colo::Endpoint;
using colo::TcpConnection;
using colo::TcpListener;

using colo::test::error_of;

namespace {

Endpoint loopback(std::uint16_t port) { return Endpoint{"127.0.0.1", port}; }

// A stream with enough page data to overflow the socket buffers and the write buffer many times.
std::vector<Message> big_stream_messages() {
    std::vector<Message> messages = one_of_each_message();
    for (unsigned batch = 0; batch < 6; ++batch) {
        std::vector<std::uint64_t> frames;
        for (std::uint64_t f = 0; f < kMaxPagesPerBatch; ++f) frames.push_back(0x100000 + batch * kMaxPagesPerBatch + f);
        messages.push_back(sample_pages(frames, batch));
    }
    messages.push_back(CheckpointEnd{1, 6 * kMaxPagesPerBatch, 0, 0});
    return messages;
}

}  // namespace

TEST_CASE("tcp transport: messages cross a real socket both ways") {
    TcpListener listener(loopback(0), ConnectionOptions{3000ms, 5000ms});
    REQUIRE(listener.port() != 0);
    CHECK(listener.address() == "127.0.0.1:" + std::to_string(listener.port()));
    const auto messages = big_stream_messages();
    const StreamHeader header = sample_header();

    // The secondary: read the header and every message, then answer checkpoint-loaded.
    auto secondary = std::async(std::launch::async, [&] {
        TcpConnection connection = listener.accept(5000ms);
        const StreamHeader got_header = read_header(connection);
        std::vector<Message> got;
        for (std::size_t i = 0; i < messages.size(); ++i) got.push_back(read_message(connection, got_header));
        write_message(connection, CheckpointLoaded{1});
        connection.flush();
        return std::make_pair(got_header, got);
    });

    TcpConnection primary = TcpConnection::connect(loopback(listener.port()), ConnectionOptions{3000ms, 5000ms});
    CHECK(primary.peer() == "127.0.0.1:" + std::to_string(listener.port()));
    write_header(primary, header);
    for (const auto& m : messages) write_message(primary, m);
    primary.flush();
    CHECK(read_message(primary) == Message{CheckpointLoaded{1}});
    const auto [got_header, got] = secondary.get();
    CHECK(got_header == header);
    CHECK(got == messages);
}

TEST_CASE("tcp transport: a duplicate reads while the original writes; shutdown wakes a blocked reader") {
    TcpListener listener(loopback(0));
    auto echo = std::async(std::launch::async, [&] {
        TcpConnection connection = listener.accept(5000ms);
        for (;;) {
            const Message m = read_message(connection);
            if (std::holds_alternative<Goodbye>(m)) return;
            write_message(connection, m);
            connection.flush();
        }
    });
    TcpConnection writer = TcpConnection::connect(loopback(listener.port()), ConnectionOptions{3000ms, 10000ms});
    TcpConnection reader = writer.duplicate();
    CHECK(reader.peer() == writer.peer());
    CHECK(reader.fd() != writer.fd());
    auto received = std::async(std::launch::async, [&] {
        std::vector<Message> got;
        for (std::uint64_t i = 0; i < 200; ++i) got.push_back(read_message(reader));
        // Nothing more comes: this read blocks until shutdown_both() below.
        return std::make_pair(got, error_of([&] { (void)read_message(reader); }));
    });
    std::vector<Message> sent;
    for (std::uint64_t i = 0; i < 200; ++i) {
        sent.push_back(Heartbeat{i, i * 3});
        write_message(writer, sent.back());
        writer.flush();
    }
    write_message(writer, Goodbye{"done"});
    writer.flush();
    echo.get();
    std::this_thread::sleep_for(50ms);  // let the reader block
    const auto start = std::chrono::steady_clock::now();
    writer.shutdown_both();
    const auto [got, error] = received.get();
    CHECK(got == sent);
    CHECK(error.rfind("truncated stream: ", 0) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 5000ms);  // long before the 10 s io_timeout
}

TEST_CASE("tcp transport: a peer that closes in the middle of a record is a clear error") {
    TcpListener listener(loopback(0));
    const auto record = encode(sample_pages({1, 2, 3}));
    auto peer = std::async(std::launch::async, [&] {
        TcpConnection connection = listener.accept(5000ms);
        connection.write_all(std::span(record).first(record.size() / 2));
        connection.shutdown_write();
    });
    TcpConnection reader = TcpConnection::connect(loopback(listener.port()), ConnectionOptions{3000ms, 5000ms});
    const std::string error = error_of([&] { (void)read_message(reader); });
    peer.get();
    CHECK(error == "truncated stream: " + reader.peer() + " closed the connection");
}

TEST_CASE("tcp transport: a silent peer is reported within twice the timeout") {
    constexpr auto timeout = 400ms;
    TcpListener listener(loopback(0));
    std::promise<void> done;
    auto peer = std::async(std::launch::async, [&] {
        TcpConnection connection = listener.accept(5000ms);
        connection.write_all(encode(Heartbeat{1, 1}));
        connection.flush();
        done.get_future().wait();  // then says nothing more, and keeps the connection open
    });
    TcpConnection reader = TcpConnection::connect(loopback(listener.port()), ConnectionOptions{3000ms, timeout});
    CHECK(read_message(reader) == Message{Heartbeat{1, 1}});
    const auto start = std::chrono::steady_clock::now();
    const std::string error = error_of([&] { (void)read_message(reader); });
    const auto elapsed = std::chrono::steady_clock::now() - start;
    done.set_value();
    peer.get();
    CHECK(error == "peer silent for 400 ms (waiting for data from " + reader.peer() + ")");
    CHECK(elapsed >= timeout);
    CHECK(elapsed < 2 * timeout);
}

TEST_CASE("tcp transport: a peer that stops reading is reported as silent, a vanished one as lost") {
    TcpListener listener(loopback(0));
    std::promise<void> release;
    std::promise<void> closed;
    auto peer = std::async(std::launch::async, [&] {
        TcpConnection connection = listener.accept(5000ms);
        release.get_future().wait();  // reads nothing until released, then vanishes
    });
    TcpConnection writer = TcpConnection::connect(loopback(listener.port()), ConnectionOptions{3000ms, 300ms});
    const auto chunk = pattern_bytes(1024 * 1024, 1);
    std::string error = error_of([&] {
        for (int i = 0; i < 1024; ++i) writer.write_all(chunk);  // far more than any socket buffer
    });
    CHECK(error == "peer silent for 300 ms (not reading from " + writer.peer() + ")");

    release.set_value();
    peer.get();  // the peer's socket is closed with unread data: the kernel resets the connection
    error = error_of([&] {
        for (int i = 0; i < 64; ++i) {
            writer.write_all(chunk);
            std::this_thread::sleep_for(5ms);
        }
    });
    CAPTURE(error);
    CHECK(error.rfind("connection to " + writer.peer() + " lost: send: ", 0) == 0);
}

TEST_CASE("tcp transport: connecting to a closed port or waiting for no peer are clear errors") {
    std::uint16_t port = 0;
    {
        TcpListener listener(loopback(0));
        port = listener.port();
    }
    CHECK(error_of([&] { (void)TcpConnection::connect(loopback(port)); }) ==
          "connect to 127.0.0.1:" + std::to_string(port) + ": connect: Connection refused (errno 111)");

    TcpListener lonely(loopback(0));
    CHECK(error_of([&] { (void)lonely.accept(50ms); }) ==
          "no peer connected to " + lonely.address() + " within 50 ms");
    CHECK(error_of([] { (void)TcpConnection::connect(Endpoint{"no-such-host.invalid", 1}); })
              .rfind("cannot resolve 'no-such-host.invalid': ", 0) == 0);
    TcpListener taken(loopback(0));
    CHECK(error_of([&] { TcpListener again(loopback(taken.port())); }) ==
          "listen on 127.0.0.1:" + std::to_string(taken.port()) + ": bind: Address already in use (errno 98)");
}

TEST_CASE("tcp transport: a connect nobody answers gives up after connect_timeout") {
    // A listener that never accepts and has a full queue: the kernel drops further SYNs, so a
    // connect to it gets no answer at all, as with a host that vanished.
    colo::UniqueFd deaf(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(deaf.valid());
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(deaf.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(deaf.get(), 0) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(deaf.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    const std::uint16_t port = ntohs(address.sin_port);

    std::vector<TcpConnection> queued;
    std::string error;
    for (int attempt = 0; attempt < 8 && error.empty(); ++attempt) {
        try {
            queued.push_back(TcpConnection::connect(loopback(port), ConnectionOptions{200ms, 200ms}));
        } catch (const colo::Error& e) {
            error = e.what();
        }
    }
    CHECK(error == "connect to 127.0.0.1:" + std::to_string(port) + ": no answer within 200 ms");
}
