#include "toolstack/replication_link.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <string>
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

// A sender that hears nothing back: version 1 receivers hang up on a header they do not speak
// without a word, every later version answers (stream_header.hpp).
std::string hung_up_on_header(const Endpoint& peer) {
    return protocol::version_mismatch(protocol::kFirstAnsweringVersion - 1) + " (the receiver at " +
           to_string(peer) + " hung up on our stream header without answering, as version 1 does)";
}

void answer_header(TcpConnection& connection, protocol::HeaderVerdict verdict) {
    protocol::write_header_answer(connection, {protocol::kStreamVersion, verdict});
    connection.flush();
}

// A refusal is best effort: the sender may be gone already, and the receiver's own error is what
// it reports.
void refuse_header(TcpConnection& connection, protocol::HeaderVerdict verdict) noexcept {
    try {
        answer_header(connection, verdict);
    } catch (...) {
    }
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
    // Nothing more is sent until the receiver has taken the header (stream_header.hpp).
    protocol::HeaderAnswer answer;
    try {
        answer = protocol::read_header_answer(connection);
    } catch (const protocol::StreamTruncated&) {
        throw Error(hung_up_on_header(peer));
    } catch (const SystemError& e) {
        if (e.error_number() != ECONNRESET) throw;
        throw Error(hung_up_on_header(peer));  // it closed with our header partly unread
    }
    if (answer.verdict == protocol::HeaderVerdict::version_differs || answer.version != protocol::kStreamVersion)
        throw Error(protocol::version_mismatch(answer.version));
    if (answer.verdict != protocol::HeaderVerdict::accepted)
        throw Error("the receiver at " + to_string(peer) + " refused our stream header (its log says why)");
    return std::unique_ptr<ReplicationLink>(new ReplicationLink(std::move(connection), header, false));
}

std::unique_ptr<ReplicationLink> ReplicationLink::accept(TcpListener& listener, std::chrono::milliseconds accept_timeout,
                                                         std::chrono::milliseconds peer_timeout) {
    if (accept_timeout.count() == 0) accept_timeout = std::chrono::hours(24);
    auto connection = listener.accept(accept_timeout);
    connection.set_io_timeout(peer_timeout);
    protocol::StreamHeader header;
    try {
        header = protocol::read_header(connection);
    } catch (const protocol::StreamVersionMismatch& e) {
        refuse_header(connection, protocol::HeaderVerdict::version_differs);
        throw Error(protocol::version_mismatch(e.peer_version()));
    } catch (const protocol::StreamStopped&) {
        throw;  // nobody left to answer
    } catch (const Error&) {
        refuse_header(connection, protocol::HeaderVerdict::refused);
        throw;
    }
    answer_header(connection, protocol::HeaderVerdict::accepted);
    return std::unique_ptr<ReplicationLink>(new ReplicationLink(std::move(connection), std::move(header), true));
}

}  // namespace colo
