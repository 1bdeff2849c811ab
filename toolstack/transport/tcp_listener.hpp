// A listening TCP socket for the secondary (or an incoming migration): bind, then accept one
// replication connection at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "backends/unique_fd.hpp"
#include "toolstack/transport/endpoint.hpp"
#include "toolstack/transport/tcp_connection.hpp"

namespace colo {

class TcpListener {
public:
    // Binds the first address `endpoint` resolves to (port 0: an ephemeral port, see port()).
    // Throws colo::Error naming the endpoint when it cannot.
    explicit TcpListener(const Endpoint& endpoint, ConnectionOptions options = {});

    // The bound port (the ephemeral one when the endpoint said 0).
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    // "127.0.0.1:8471", for messages.
    [[nodiscard]] const std::string& address() const noexcept { return address_; }

    // Waits up to `timeout` for a peer; throws colo::Error when none comes. The connection gets
    // this listener's ConnectionOptions.
    [[nodiscard]] TcpConnection accept(std::chrono::milliseconds timeout);
    // A peer already waiting, or nothing (never blocks). For a caller that polls fd() itself.
    [[nodiscard]] std::optional<TcpConnection> accept_waiting();
    [[nodiscard]] int fd() const noexcept { return socket_.get(); }

private:
    UniqueFd socket_;
    ConnectionOptions options_;
    std::uint16_t port_ = 0;
    std::string address_;
};

}  // namespace colo
