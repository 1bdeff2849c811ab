#include "toolstack/transport/address_lookup.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "backends/error.hpp"

namespace colo {

AddrinfoList lookup_tcp(const Endpoint& endpoint, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* list = nullptr;
    const std::string port = std::to_string(endpoint.port);
    const int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &list);
    if (rc != 0)
        throw Error("cannot resolve '" + endpoint.host + "': " +
                    (rc == EAI_SYSTEM ? std::string(std::strerror(errno)) : std::string(gai_strerror(rc))));
    return AddrinfoList(list);
}

std::string describe_address(const sockaddr* address, socklen_t length) {
    char host[NI_MAXHOST];
    char port[NI_MAXSERV];
    if (getnameinfo(address, length, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "(unknown address)";
    if (address->sa_family == AF_INET6) return "[" + std::string(host) + "]:" + port;
    return std::string(host) + ":" + port;
}

bool is_loopback(const Endpoint& endpoint) {
    if (endpoint.host.empty()) return false;  // every address of this host
    const AddrinfoList addresses = lookup_tcp(endpoint, false);
    for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            const auto* v4 = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
            if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) return false;
        } else if (a->ai_family == AF_INET6) {
            const auto* v6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
            if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) return false;
        } else {
            return false;
        }
    }
    return addresses != nullptr;
}

}  // namespace colo
