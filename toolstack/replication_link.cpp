#include "toolstack/replication_link.hpp"

#include <fcntl.h>

#include <algorithm>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/error.hpp"
#include "toolstack/protocol/stream_header.hpp"

namespace colo {

namespace {
// The writing half waits longer than the reading half: a peer that is alive but slow to take a
// large backlog (its pipeline busy applying pages) keeps sending keepalives, so liveness is judged
// on the reading side; a write that cannot progress for this long means the peer is stuck.
std::chrono::milliseconds write_timeout(std::chrono::milliseconds peer_timeout) {
    return std::max(std::chrono::milliseconds(10000), peer_timeout * 8);
}

TcpConnection duplicate(const TcpConnection& connection, std::chrono::milliseconds timeout) {
    UniqueFd copy(check_syscall(::fcntl(connection.fd(), F_DUPFD_CLOEXEC, 0), "fcntl(F_DUPFD_CLOEXEC)"));
    return TcpConnection(std::move(copy), connection.peer(), ConnectionOptions{timeout, timeout});
}
}  // namespace

ReplicationLink::ReplicationLink(TcpConnection connection, protocol::StreamHeader header, bool header_is_peers)
    : reader_(std::move(connection)),
      writer_(duplicate(reader_, write_timeout(reader_.io_timeout()))),
      header_(std::move(header)) {
    const int fd = reader_.fd();
    channel_ = std::make_unique<StreamChannel>(
        reader_, writer_, header_is_peers ? std::optional(header_) : std::nullopt,
        [fd] { ::shutdown(fd, SHUT_RDWR); });
    channel_->start_keepalive(std::max(std::chrono::milliseconds(10), reader_.io_timeout() / 8));
}

ReplicationLink::~ReplicationLink() {
    if (channel_) channel_->close();
}

std::unique_ptr<ReplicationLink> ReplicationLink::connect(const Endpoint& peer, const protocol::StreamHeader& header,
                                                          std::chrono::milliseconds peer_timeout) {
    auto connection = TcpConnection::connect(peer, ConnectionOptions{std::chrono::milliseconds(3000), peer_timeout});
    protocol::write_header(connection, header);
    connection.flush();
    return std::unique_ptr<ReplicationLink>(new ReplicationLink(std::move(connection), header, false));
}

std::unique_ptr<ReplicationLink> ReplicationLink::accept(TcpListener& listener, std::chrono::milliseconds accept_timeout,
                                                         std::chrono::milliseconds peer_timeout) {
    if (accept_timeout.count() == 0) accept_timeout = std::chrono::hours(24);
    auto connection = listener.accept(accept_timeout);
    connection.set_io_timeout(peer_timeout);
    auto header = protocol::read_header(connection);
    return std::unique_ptr<ReplicationLink>(new ReplicationLink(std::move(connection), std::move(header), true));
}

}  // namespace colo
