// One replication link over TCP: the sender connects and writes its stream header, the receiver
// accepts, reads it and answers (accepted, or refused with its own version: stream_header.hpp);
// the sender sends nothing more until the answer came. Both then talk through a StreamChannel. The channel reads on its own
// thread while the pipeline writes, so the socket is split into two TcpConnections on dup()ed
// descriptors, and closing the channel shuts the socket down so a blocked read returns at once.
#pragma once

#include <chrono>
#include <memory>

#include "toolstack/protocol/messages.hpp"
#include "toolstack/replication/stream_channel.hpp"
#include "toolstack/transport/endpoint.hpp"
#include "toolstack/transport/tcp_connection.hpp"
#include "toolstack/transport/tcp_listener.hpp"

namespace colo {

class ReplicationLink {
public:
    // Sender: connects to `peer`, writes `header`, waits for the answer. A receiver of another
    // stream version is a one-line colo::Error ("peer speaks stream version 1, this is 2").
    static std::unique_ptr<ReplicationLink> connect(const Endpoint& peer, const protocol::StreamHeader& header,
                                                    std::chrono::milliseconds peer_timeout);
    // Receiver: waits up to `accept_timeout` for one sender (a day when zero), reads its header
    // and answers it. A header of another version is refused with the same one-line error.
    static std::unique_ptr<ReplicationLink> accept(TcpListener& listener, std::chrono::milliseconds accept_timeout,
                                                   std::chrono::milliseconds peer_timeout);

    ~ReplicationLink();
    ReplicationLink(const ReplicationLink&) = delete;
    ReplicationLink& operator=(const ReplicationLink&) = delete;

    [[nodiscard]] Channel& channel() { return *channel_; }
    // The header the peer sent (receiver) or that we sent (sender).
    [[nodiscard]] const protocol::StreamHeader& header() const { return header_; }
    [[nodiscard]] const std::string& peer() const { return reader_.peer(); }

private:
    ReplicationLink(TcpConnection connection, protocol::StreamHeader header, bool header_is_peers);

    TcpConnection reader_;
    TcpConnection writer_;
    protocol::StreamHeader header_;
    std::unique_ptr<StreamChannel> channel_;
};

}  // namespace colo
