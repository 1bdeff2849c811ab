#include "toolstack/transport/tcp_listener.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "backends/error.hpp"
#include "toolstack/transport/address_lookup.hpp"

namespace colo {

namespace {

std::uint16_t port_of(const sockaddr_storage& address) {
    if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
    if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
    return 0;
}

}  // namespace

TcpListener::TcpListener(const Endpoint& endpoint, ConnectionOptions options) : options_(options) {
    const std::string where = "listen on " + to_string(endpoint);
    const AddrinfoList addresses = lookup_tcp(endpoint, true);
    int error = EADDRNOTAVAIL;
    for (const addrinfo* a = addresses.get(); a != nullptr && !socket_.valid(); a = a->ai_next) {
        UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
        if (!fd.valid()) {
            error = errno;
            continue;
        }
        // A restarted secondary must be able to listen again while old connections linger.
        const int one = 1;
        check_syscall(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), "setsockopt(SO_REUSEADDR)");
        if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), 16) != 0) {
            error = errno;
            continue;
        }
        socket_ = std::move(fd);
    }
    if (!socket_.valid()) throw SystemError("bind", error, where);

    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    check_syscall(::getsockname(socket_.get(), reinterpret_cast<sockaddr*>(&bound), &length), "getsockname");
    port_ = port_of(bound);
    address_ = describe_address(reinterpret_cast<const sockaddr*>(&bound), length);
}

std::optional<TcpConnection> TcpListener::accept_waiting() {
    for (;;) {
        sockaddr_storage peer{};
        socklen_t length = sizeof peer;
        UniqueFd fd(::accept4(socket_.get(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (fd.valid()) {
            configure_replication_socket(fd.get());
            return TcpConnection(std::move(fd), describe_address(reinterpret_cast<const sockaddr*>(&peer), length),
                                 options_);
        }
        // A connection that was reset before we took it is not an error of the listener.
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        throw SystemError("accept4", errno, "listening on " + address_);
    }
}

TcpConnection TcpListener::accept(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto connection = accept_waiting()) return std::move(*connection);
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{socket_.get(), POLLIN, 0};
        const int rc = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
        if (rc == 0)
            throw Error("no peer connected to " + address_ + " within " + std::to_string(timeout.count()) + " ms");
        if (rc < 0 && errno != EINTR) throw SystemError("poll", errno, "listening on " + address_);
    }
}

}  // namespace colo
