// One TLS 1.3 session over a connected, non-blocking TCP socket (OpenSSL), owned (STYLE §1).
//
// Every call is non-blocking and says what it waits for; TcpConnection does the waiting (poll with
// its io_timeout), so timeouts and errors stay the same with and without TLS.
//
// A link reads on one thread while another writes, but an SSL object is not safe for concurrent
// use: every OpenSSL call here runs under the session's mutex, held only for the call itself, never
// across a wait. A read that returns "want read" has taken everything the socket held, so polling
// the socket for input afterwards is sound.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "backends/unique_fd.hpp"
#include "toolstack/transport/tls_context.hpp"

namespace colo {

enum class TlsWait { none, readable, writable };

class TlsSession {
public:
    // Takes its own duplicate of `socket`. `peer` names the other side in errors.
    TlsSession(std::shared_ptr<const TlsContext> context, int socket, std::string peer);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // One step of the handshake: none once it is complete. Throws colo::Error, one line, when it
    // fails ("TLS handshake with 10.0.0.2:4711 failed: the peer's key (id ..) is not this host's").
    [[nodiscard]] TlsWait handshake();

    // Reads what is there (up to out.size()); 0 with `wait` set when nothing is. Throws
    // protocol::StreamTruncated when the peer closed, SystemError when the connection failed, and
    // colo::Error when a record fails authentication (changed in transit) or breaks the protocol.
    [[nodiscard]] std::size_t read(std::span<std::byte> out, TlsWait& wait);
    // Writes what the socket takes now; 0 with `wait` set when it takes nothing.
    [[nodiscard]] std::size_t write(std::span<const std::byte> bytes, TlsWait& wait);

    [[nodiscard]] const std::string& peer() const noexcept { return peer_; }

private:
    TlsWait wait_or_throw(int result, const char* operation);
    // One SSL_read_ex or SSL_write_ex under the mutex: bytes moved, or 0 with `wait` set.
    std::size_t transfer(int (*call)(SSL*, void*, std::size_t, std::size_t*), void* buffer, std::size_t size,
                         TlsWait& wait, const char* operation);
    TlsWait classify(int result, const char* operation);

    std::shared_ptr<const TlsContext> context_;
    UniqueFd socket_;
    std::string peer_;
    std::string refusal_;  // why our PSK callback refused the peer's key, when it did
    SSL* ssl_ = nullptr;
    std::exception_ptr failure_;  // the first fatal error, under mutex_
    std::mutex mutex_;
};

}  // namespace colo
