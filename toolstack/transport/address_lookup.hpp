// Name resolution for endpoints: getaddrinfo's list, owned, and the numeric text of an address
// for messages ("127.0.0.1:8471", "[::1]:8471").
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "toolstack/transport/endpoint.hpp"

namespace colo {

struct AddrinfoDeleter {
    void operator()(addrinfo* list) const noexcept { freeaddrinfo(list); }
};
using AddrinfoList = std::unique_ptr<addrinfo, AddrinfoDeleter>;

// TCP addresses for `endpoint`; `passive` for a listener. Throws colo::Error when the name does
// not resolve.
[[nodiscard]] AddrinfoList lookup_tcp(const Endpoint& endpoint, bool passive);

// True when every address `endpoint` names is a loopback address (127.0.0.0/8, ::1): traffic to it
// never leaves this host. Throws as lookup_tcp does.
[[nodiscard]] bool is_loopback(const Endpoint& endpoint);

// The numeric "address:port" of a socket address.
[[nodiscard]] std::string describe_address(const sockaddr* address, socklen_t length);

}  // namespace colo
