#include "toolstack/transport/endpoint.hpp"

#include <algorithm>
#include <cctype>

#include "backends/error.hpp"

namespace colo {

namespace {

[[noreturn]] void bad(std::string_view text, const std::string& why) {
    throw Error("bad endpoint '" + std::string(text) + "': " + why + " (expected host[:port])");
}

std::uint16_t parse_port(std::string_view text, std::string_view port) {
    if (port.empty()) bad(text, "empty port");
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        bad(text, "port '" + std::string(port) + "' is not a number from 0 to 65535");
    const unsigned long value = std::stoul(std::string(port));
    if (value > 65535) bad(text, "port " + std::string(port) + " is not a number from 0 to 65535");
    return static_cast<std::uint16_t>(value);
}

}  // namespace

Endpoint parse_endpoint(std::string_view text, std::uint16_t default_port) {
    Endpoint endpoint{{}, default_port};
    std::string_view rest;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) bad(text, "'[' without ']'");
        endpoint.host = std::string(text.substr(1, close - 1));
        rest = text.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') bad(text, "unexpected text after ']'");
    } else {
        const auto colon = text.find(':');
        if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos)
            bad(text, "an IPv6 address needs brackets, as in [::1]:8471");
        endpoint.host = std::string(text.substr(0, colon));
        if (colon != std::string_view::npos) rest = text.substr(colon);
    }
    if (endpoint.host.empty()) bad(text, "empty host");
    if (std::any_of(endpoint.host.begin(), endpoint.host.end(),
                    [](char c) { return std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '\0'; }))
        bad(text, "the host contains a space, '/' or NUL");
    if (!rest.empty()) endpoint.port = parse_port(text, rest.substr(1));
    return endpoint;
}

std::string to_string(const Endpoint& endpoint) {
    const std::string port = std::to_string(endpoint.port);
    if (endpoint.host.find(':') != std::string::npos) return "[" + endpoint.host + "]:" + port;
    return endpoint.host + ":" + port;
}

}  // namespace colo
