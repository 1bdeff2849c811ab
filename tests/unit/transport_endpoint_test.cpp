#include <doctest/doctest.h>

#include <string>

#include "backends/error.hpp"
#include "toolstack/transport/endpoint.hpp"

using colo::Endpoint;
using colo::parse_endpoint;

namespace {
std::string error_of(const char* text) {
    try {
        (void)parse_endpoint(text);
    } catch (const colo::Error& e) {
        return e.what();
    }
    return "(no error)";
}
}  // namespace

TEST_CASE("endpoint: host, host:port, [v6] and [v6]:port") {
    CHECK(parse_endpoint("backup.example") == Endpoint{"backup.example", 8471});
    CHECK(parse_endpoint("10.0.0.2:9000") == Endpoint{"10.0.0.2", 9000});
    CHECK(parse_endpoint("10.0.0.2", 1234) == Endpoint{"10.0.0.2", 1234});
    CHECK(parse_endpoint("[::1]") == Endpoint{"::1", 8471});
    CHECK(parse_endpoint("[fe80::1%eth0]:65535") == Endpoint{"fe80::1%eth0", 65535});
    CHECK(parse_endpoint("localhost:0") == Endpoint{"localhost", 0});
    CHECK(colo::kDefaultPort == 8471);
    CHECK(to_string(Endpoint{"::1", 5}) == "[::1]:5");
    CHECK(to_string(Endpoint{"host", 5}) == "host:5");
}

TEST_CASE("endpoint: bad text is a one-line error naming it") {
    CHECK(error_of("") == "bad endpoint '': empty host (expected host[:port])");
    CHECK(error_of(":80") == "bad endpoint ':80': empty host (expected host[:port])");
    CHECK(error_of("host:") == "bad endpoint 'host:': empty port (expected host[:port])");
    CHECK(error_of("host:http") ==
          "bad endpoint 'host:http': port 'http' is not a number from 0 to 65535 (expected host[:port])");
    CHECK(error_of("host:65536") ==
          "bad endpoint 'host:65536': port 65536 is not a number from 0 to 65535 (expected host[:port])");
    CHECK(error_of("host:-1") ==
          "bad endpoint 'host:-1': port '-1' is not a number from 0 to 65535 (expected host[:port])");
    CHECK(error_of("::1:80") ==
          "bad endpoint '::1:80': an IPv6 address needs brackets, as in [::1]:8471 (expected host[:port])");
    CHECK(error_of("[::1") == "bad endpoint '[::1': '[' without ']' (expected host[:port])");
    CHECK(error_of("[::1]80") == "bad endpoint '[::1]80': unexpected text after ']' (expected host[:port])");
    CHECK(error_of("a b:1") == "bad endpoint 'a b:1': the host contains a space, '/' or NUL (expected host[:port])");
}
