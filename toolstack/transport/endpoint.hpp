// Where a replication peer listens: "host[:port]" on the command line, an Endpoint here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace colo {

inline constexpr std::uint16_t kDefaultPort = 8471;

struct Endpoint {
    std::string host;  // a name, an IPv4 address or an IPv6 address (without brackets)
    std::uint16_t port = kDefaultPort;
    bool operator==(const Endpoint&) const = default;
};

// Accepts "host", "host:port", "[v6-address]" and "[v6-address]:port"; port 0 asks a listener
// for an ephemeral port. Throws colo::Error naming the bad text and what was expected.
[[nodiscard]] Endpoint parse_endpoint(std::string_view text, std::uint16_t default_port = kDefaultPort);

// "host:port", or "[v6]:port" when the host contains a colon.
[[nodiscard]] std::string to_string(const Endpoint& endpoint);

}  // namespace colo
