// The witness's HTTP/1.1 exchange: the message parts pure, then real loopback sockets for the
// deadline (a server that accepts and says nothing, one that trickles, one that is not there).
#include <doctest/doctest.h>

#include "tests/unit/error_of.hpp"

#include <chrono>
#include <future>
#include <string>

#include "toolstack/failover/http_exchange.hpp"
#include "toolstack/transport/tcp_listener.hpp"

using namespace std::chrono_literals;
using colo::format_http_post;
using colo::HttpResponse;
using colo::parse_http_response;
using colo::test::error_of;

namespace {

using Clock = std::chrono::steady_clock;

// What etcd 3.4.23 sent for a range on an absent key (curl -i).
const std::string kEtcdAnswer =
    "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Headers: accept, content-type, authorization\r\n"
    "Content-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\n"
    "Date: Sat, 05 Dec 2026 17:03:09 GMT\r\nContent-Length: 27\r\n\r\n{\"header\":{\"revision\":\"1\"}}";

// Reads one request of format_http_post(.., "{}") off the connection: all of it, so that closing
// the connection afterwards sends FIN, not RST (unread bytes would make the kernel reset it).
std::string read_request(colo::TcpConnection& connection) {
    std::string request;
    while (request.find("\r\n\r\n") == std::string::npos || request.size() < request.find("\r\n\r\n") + 4 + 2) {
        std::byte b;
        connection.read_exact({&b, 1});
        request += static_cast<char>(b);
    }
    return request;
}

HttpResponse complete(const std::string& bytes, bool at_end = false) {
    auto response = parse_http_response(bytes, at_end);
    REQUIRE(response.has_value());
    return *response;
}

}  // namespace

TEST_CASE("http: the request etcd gets") {
    CHECK(format_http_post("127.0.0.1:2379", "/v3/kv/range", "{\"key\":\"eA==\"}") ==
          "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nContent-Type: application/json\r\n"
          "Content-Length: 14\r\nConnection: close\r\n\r\n{\"key\":\"eA==\"}");
}

TEST_CASE("http: an answer with Content-Length is whole exactly when its body is") {
    for (std::size_t n = 0; n < kEtcdAnswer.size(); ++n) CHECK_MESSAGE(!parse_http_response(kEtcdAnswer.substr(0, n), false), n);
    const HttpResponse r = complete(kEtcdAnswer);
    CHECK(r.status == 200);
    CHECK(r.reason == "OK");
    CHECK(r.body == "{\"header\":{\"revision\":\"1\"}}");
    REQUIRE(r.header("content-type") != nullptr);
    CHECK(*r.header("CONTENT-TYPE") == "application/json");
    CHECK(r.header("Transfer-Encoding") == nullptr);
    CHECK(r.headers.size() == 5);
    // Bytes past Content-Length (a pipelined answer) are not part of this one.
    CHECK(complete(kEtcdAnswer + "HTTP/1.1").body == r.body);
}

TEST_CASE("http: chunked and until-the-end bodies") {
    const std::string chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\nB\r\n:[1,2,3,4]}\r\n0\r\nTrailer: x\r\n\r\n";
    for (std::size_t n = 0; n < chunked.size(); ++n) CHECK_MESSAGE(!parse_http_response(chunked.substr(0, n), false), n);
    CHECK(complete(chunked).body == "{\"a\":[1,2,3,4]}");
    // No length: the body ends with the connection.
    const std::string open_ended = "HTTP/1.0 503 Service Unavailable\r\nServer: x\r\n\r\nno leader";
    CHECK(!parse_http_response(open_ended, false));
    const HttpResponse r = complete(open_ended, true);
    CHECK(r.status == 503);
    CHECK(r.reason == "Service Unavailable");
    CHECK(r.body == "no leader");
    CHECK(complete("HTTP/1.1 204 No Content\r\n\r\n").body.empty());
    // Incomplete at the end is not an answer (the caller reports the connection closed early).
    CHECK(!parse_http_response(kEtcdAnswer.substr(0, 100), true));
}

TEST_CASE("http: a malformed answer names what is wrong, as soon as it is seen") {
    const auto error = [](const std::string& bytes) { return error_of([&] { (void)parse_http_response(bytes, false); }); };
    CHECK(error("SSH-2.0-OpenSSH_9.2\r\n") == "malformed HTTP answer: status line \"SSH-2.0-OpenSSH_9.2\"");
    CHECK(error("SSH-2.0-") == "malformed HTTP answer: status line \"SSH-2.0-\"");
    CHECK(error("HTTP/1.1 2x0 OK\r\n") == "malformed HTTP answer: status line \"HTTP/1.1 2x0 OK\"");
    CHECK(error("HTTP/1.1 200OK\r\n") == "malformed HTTP answer: status line \"HTTP/1.1 200OK\"");
    CHECK(error("HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n") == "malformed HTTP answer: header line \"No colon here\"");
    CHECK(error("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n") == "malformed HTTP answer: header line \"Bad Name: x\"");
    CHECK(error("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n") == "malformed HTTP answer: Content-Length \"1x\"");
    CHECK(error("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n") ==
          "malformed HTTP answer: Content-Length 99999999999 larger than 1048576");
    CHECK(error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n") == "malformed HTTP answer: Transfer-Encoding \"gzip\"");
    CHECK(error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") == "malformed HTTP answer: chunk size \"zz\"");
    CHECK(error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n") ==
          "malformed HTTP answer: chunk of 2 bytes not followed by CRLF");
    CHECK(error(std::string(colo::kMaxHttpResponse + 1, 'H')) == "malformed HTTP answer: larger than 1048576 bytes");
}

TEST_CASE("http exchange: a real server's answer over loopback") {
    colo::TcpListener listener({"127.0.0.1", 0}, colo::ConnectionOptions{});
    auto server = std::async(std::launch::async, [&] {
        colo::TcpConnection connection = listener.accept(5000ms);
        const std::string request = read_request(connection);
        const std::string answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        connection.write_all(std::as_bytes(std::span(answer)));
        connection.flush();
        return request;
    });
    const auto addresses = colo::lookup_tcp({"127.0.0.1", listener.port()}, false);
    const HttpResponse r = colo::http_exchange(addresses.get(), format_http_post("h", "/p", "{}"), Clock::now() + 5s, 5000ms);
    CHECK(r.status == 200);
    CHECK(r.body == "ok");
    CHECK(server.get() == format_http_post("h", "/p", "{}"));
}

TEST_CASE("http exchange: silence, an early close and a refused port are HttpUnreachable within the deadline") {
    const auto unreachable = [](const colo::AddrinfoList& addresses, std::chrono::milliseconds budget) {
        const auto started = Clock::now();
        std::string message = "(no error)";
        try {
            (void)colo::http_exchange(addresses.get(), format_http_post("h", "/p", "{}"), started + budget, budget);
        } catch (const colo::HttpUnreachable& e) {
            message = e.what();
        }
        return std::pair(message, Clock::now() - started);
    };
    SUBCASE("accepted by the kernel, never answered") {
        colo::TcpListener listener({"127.0.0.1", 0}, colo::ConnectionOptions{});
        const auto addresses = colo::lookup_tcp({"127.0.0.1", listener.port()}, false);
        const auto [message, took] = unreachable(addresses, 300ms);
        CHECK(message == "no answer within 300 ms (waiting for the answer)");
        CHECK(took >= 300ms);
        CHECK(took < 1000ms);
    }
    // A server that takes the request and sends 42 bytes of a 49-byte answer; the connection
    // stays open while the future holds it.
    const auto half_answer = [](colo::TcpListener& listener) {
        return std::async(std::launch::async, [&listener] {
            colo::TcpConnection connection = listener.accept(5000ms);
            (void)read_request(connection);
            const std::string half = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
            connection.write_all(std::as_bytes(std::span(half)));
            connection.flush();
            return connection;
        });
    };
    SUBCASE("half an answer, then silence: the deadline holds") {
        colo::TcpListener listener({"127.0.0.1", 0}, colo::ConnectionOptions{});
        auto server = half_answer(listener);
        const auto addresses = colo::lookup_tcp({"127.0.0.1", listener.port()}, false);
        const auto [message, took] = unreachable(addresses, 300ms);
        CHECK(message == "no answer within 300 ms (waiting for the answer)");
        CHECK(took < 1000ms);
        (void)server.get();
    }
    SUBCASE("closed after part of an answer") {
        colo::TcpListener listener({"127.0.0.1", 0}, colo::ConnectionOptions{});
        auto server = std::async(std::launch::async, [&] { (void)half_answer(listener).get(); });  // then closed
        const auto addresses = colo::lookup_tcp({"127.0.0.1", listener.port()}, false);
        const auto [message, took] = unreachable(addresses, 2000ms);
        server.get();
        CHECK(message == "the server closed the connection after 42 bytes of an answer");
        CHECK(took < 1000ms);
    }
    SUBCASE("nobody listening") {
        std::uint16_t port = 0;
        {
            colo::TcpListener listener({"127.0.0.1", 0}, colo::ConnectionOptions{});
            port = listener.port();
        }
        const auto addresses = colo::lookup_tcp({"127.0.0.1", port}, false);
        const auto [message, took] = unreachable(addresses, 2000ms);
        CHECK(message == "connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
        CHECK(took < 1000ms);
    }
}
