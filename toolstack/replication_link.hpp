// One replication link over TCP: the sender connects (and, with a TlsContext, runs the TLS 1.3
// handshake before anything else crosses: the header and everything after it are encrypted and
// authenticated) and writes its stream header, the receiver
// accepts, reads it and answers (accepted, or refused with its own version: stream_header.hpp);
// the sender sends nothing more until the answer came. Both then talk through a StreamChannel. The channel reads on its own
// thread while the pipeline writes, so the socket is split into two TcpConnections on dup()ed
// descriptors, and closing the channel shuts the socket down so a blocked read returns at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "toolstack/protocol/messages.hpp"
#include "toolstack/replication/stream_channel.hpp"
#include "toolstack/transport/endpoint.hpp"
#include "toolstack/transport/tcp_connection.hpp"
#include "toolstack/transport/tcp_listener.hpp"
#include "toolstack/transport/tls_context.hpp"

namespace colo {

class ReplicationLink {
public:
    // Sender: connects to `peer`, writes `header`, waits for the answer. A receiver of another
    // stream version is a one-line colo::Error ("peer speaks stream version 1, this is 2").
    // `tls` null: in clear (--insecure). A receiver that wants TLS answers a clear header with
    // tls_required ("the receiver at ... takes TLS connections only").
    static std::unique_ptr<ReplicationLink> connect(const Endpoint& peer, const protocol::StreamHeader& header,
                                                    std::chrono::milliseconds peer_timeout,
                                                    std::shared_ptr<const TlsContext> tls = nullptr);
    // Receiver: waits up to `accept_timeout` (a day when zero) for a sender whose stream header is
    // valid, and answers it. Anyone may connect to the port, so a connection that is not such a
    // sender costs nothing lasting: one that closes, resets, sends bytes that are not a header
    // (refused), a header of another version (answered with ours, "peer speaks stream version
    // N"), or nothing within `peer_timeout` of its connect is dropped, `refused` is told why in
    // one line ("127.0.0.1:4711: not a colo-replicate stream (bad magic)"), and the wait goes on.
    // At most kMaxUnheardPeers connections wait for their header at once; one more drops the
    // oldest. Each is read without blocking and only as far as its header (16 KiB at most).
    // With `tls`, a connection must complete the TLS handshake (hold the same key) before a byte of
    // it is read as a header: one in clear is answered tls_required and dropped, one with another
    // key fails the handshake; either way nothing it sent reaches the rest of the receiver. Without
    // `tls`, a connection that starts a TLS handshake is dropped ("this receiver has no --key").
    static constexpr std::size_t kMaxUnheardPeers = 8;
    static std::unique_ptr<ReplicationLink> accept(TcpListener& listener, std::chrono::milliseconds accept_timeout,
                                                   std::chrono::milliseconds peer_timeout,
                                                   const std::function<void(const std::string&)>& refused = {},
                                                   std::shared_ptr<const TlsContext> tls = nullptr);

    ~ReplicationLink();
    ReplicationLink(const ReplicationLink&) = delete;
    ReplicationLink& operator=(const ReplicationLink&) = delete;

    [[nodiscard]] Channel& channel() { return *channel_; }
    // The header the peer sent (receiver) or that we sent (sender).
    [[nodiscard]] const protocol::StreamHeader& header() const { return header_; }
    [[nodiscard]] const std::string& peer() const { return reader_.peer(); }
    // True when the link runs over TLS.
    [[nodiscard]] bool secured() const noexcept { return reader_.secured(); }

private:
    ReplicationLink(TcpConnection connection, protocol::StreamHeader header, bool header_is_peers);

    TcpConnection reader_;
    TcpConnection writer_;
    protocol::StreamHeader header_;
    std::unique_ptr<StreamChannel> channel_;
};

}  // namespace colo
