// One TCP connection to a replication peer, as a ByteSource and a ByteSink.
//
// The socket is non-blocking; every wait goes through poll() with the connection's io_timeout,
// and the clock restarts whenever a byte moves. So a peer that stops talking (host gone, link
// cut, process frozen) is reported as protocol::PeerSilent ("peer silent for N ms") within
// io_timeout of its last byte, however long a record is; a peer that closed the connection is
// reported at once as protocol::StreamTruncated, one that reset it as SystemError.
// Writes use MSG_NOSIGNAL: a vanished peer is an error, never SIGPIPE.
//
// Buffering is bounded: writes collect in a fixed buffer (kWriteBuffer) that flush() sends;
// writes larger than the buffer go straight to the socket. Reads fill a fixed buffer. Nothing
// queues without limit. The destructor does not flush: unflushed bytes are dropped, and the
// pipeline flushes at each point where the peer must see what was written.
//
// Not thread-safe. For a reader thread beside a writer thread, give each its own object with
// duplicate().
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/unique_fd.hpp"
#include "toolstack/protocol/byte_stream.hpp"
#include "toolstack/transport/endpoint.hpp"
#include "toolstack/transport/tls_session.hpp"

namespace colo {

struct ConnectionOptions {
    std::chrono::milliseconds connect_timeout{3000};
    // How long the peer may stay silent (send nothing we wait for, take nothing we send).
    std::chrono::milliseconds io_timeout{800};
};

class TcpConnection final : public protocol::ByteSource, public protocol::ByteSink {
public:
    static constexpr std::size_t kWriteBuffer = 256 * 1024;
    static constexpr std::size_t kReadBuffer = 64 * 1024;

    // Tries each address of `endpoint` in turn. Throws colo::Error (SystemError with the errno of
    // the last attempt) naming the endpoint when none accepts.
    [[nodiscard]] static TcpConnection connect(const Endpoint& endpoint, ConnectionOptions options = {});

    // Takes a connected stream socket (set to non-blocking here). `peer` names it in errors.
    TcpConnection(UniqueFd socket, std::string peer, ConnectionOptions options);

    TcpConnection(TcpConnection&&) noexcept = default;
    TcpConnection& operator=(TcpConnection&&) noexcept = default;

    void read_exact(std::span<std::byte> out) override;
    void write_all(std::span<const std::byte> bytes) override;
    void flush() override;

    // Flushes, then tells the peer nothing more will come (it reads end of stream).
    void shutdown_write();

    // Ends the connection both ways without closing the descriptor: a read or write blocked in
    // another thread (on this object or a duplicate) returns at once with an error. For
    // Channel::close(); never throws.
    void shutdown_both() noexcept;

    // TLS from here on (before anything else crossed the connection): runs the handshake, waiting
    // up to `timeout` for the peer, then every read and write goes through the session. Throws
    // colo::Error naming why the handshake failed (wrong key, no TLS at the peer, silence).
    void start_tls(std::shared_ptr<const TlsContext> context, std::chrono::milliseconds timeout);
    // The same, one non-blocking step at a time, for a receiver serving many connections: true
    // once the handshake is done, false while it waits for the peer (poll fd() for input).
    bool step_tls(std::shared_ptr<const TlsContext> context);
    [[nodiscard]] bool secured() const noexcept { return tls_ != nullptr && tls_ready_; }

    // What has arrived, without waiting: 0 when nothing has (yet). Throws as read_exact does when
    // the connection ended.
    [[nodiscard]] std::size_t receive_available(std::span<std::byte> out);

    // A second object on a dup() of the same socket, with its own buffers, so one thread can read
    // while another writes (each object itself is single-threaded).
    [[nodiscard]] TcpConnection duplicate() const;

    [[nodiscard]] const std::string& peer() const noexcept { return peer_; }
    [[nodiscard]] std::chrono::milliseconds io_timeout() const noexcept { return options_.io_timeout; }
    void set_io_timeout(std::chrono::milliseconds timeout) noexcept { options_.io_timeout = timeout; }
    [[nodiscard]] int fd() const noexcept { return socket_.get(); }

private:
    std::size_t receive_some(std::span<std::byte> out);
    void send_all(std::span<const std::byte> bytes);
    void wait_for(short events, const char* waiting_for);
    std::size_t receive_once(std::span<std::byte> out, short& wait);

    UniqueFd socket_;
    std::string peer_;
    ConnectionOptions options_;
    std::vector<std::byte> read_buffer_;   // bytes [read_begin_, read_end_) are unread
    std::size_t read_begin_ = 0;
    std::size_t read_end_ = 0;
    std::vector<std::byte> write_buffer_;  // size() bytes pending, capacity kWriteBuffer
    std::shared_ptr<TlsSession> tls_;      // shared with duplicates: one session, both directions
    bool tls_ready_ = false;
};

// Turns on TCP_NODELAY (a checkpoint's last record must not wait for Nagle) and keepalive (so an
// idle connection to a dead host is eventually noticed by the kernel too). For TCP sockets only.
void configure_replication_socket(int fd);

}  // namespace colo
