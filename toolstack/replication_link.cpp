#include "toolstack/replication_link.hpp"

#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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
    TcpConnection copy = connection.duplicate();  // shares the TLS session, when there is one
    copy.set_io_timeout(timeout);
    return copy;
}

// The first byte of a TLS connection: a handshake record (RFC 8446, 5.1).
constexpr std::byte kTlsHandshakeRecord{0x16};
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
                                                          std::chrono::milliseconds peer_timeout,
                                                          std::shared_ptr<const TlsContext> tls) {
    auto connection = TcpConnection::connect(peer, ConnectionOptions{std::chrono::milliseconds(3000), peer_timeout});
    if (tls != nullptr) {
        try {
            connection.start_tls(tls, std::max(std::chrono::milliseconds(3000), peer_timeout));
        } catch (const Error& e) {
            std::string why = e.what();
            if (why.find("the peer closed the connection") != std::string::npos || why.find("reset by peer") != std::string::npos)
                why += " (a receiver without --key hangs up on a TLS handshake; one with another key refuses it: its log says which)";
            throw Error(why);
        }
    }
    // In TLS 1.3 the client's handshake is done before the server has checked the client's
    // certificate: a receiver that does not trust ours says so (an alert, then a reset) only
    // while we send the header or wait for its answer. That is not a version 1 receiver (none
    // speaks TLS), nor a bare "connection reset".
    const auto after_handshake = [&](const Error& e) {
        return Error("the receiver at " + to_string(peer) + " ended the TLS connection before answering our stream header (" +
                     e.what() + "): a receiver that does not trust our certificate does so; its log says why");
    };
    try {
        protocol::write_header(connection, header);
        connection.flush();
    } catch (const Error& e) {
        if (tls == nullptr) throw;
        throw after_handshake(e);
    }
    // Nothing more is sent until the receiver has taken the header (stream_header.hpp).
    protocol::HeaderAnswer answer;
    try {
        answer = protocol::read_header_answer(connection);
    } catch (const Error& e) {
        if (tls != nullptr) throw after_handshake(e);
        if (dynamic_cast<const protocol::StreamTruncated*>(&e) != nullptr) throw Error(hung_up_on_header(peer));
        // A reset: it closed with our header partly unread.
        if (const auto* system = dynamic_cast<const SystemError*>(&e); system != nullptr && system->error_number() == ECONNRESET)
            throw Error(hung_up_on_header(peer));
        throw;
    }
    if (answer.verdict == protocol::HeaderVerdict::version_differs || answer.version != protocol::kStreamVersion)
        throw Error(protocol::version_mismatch(answer.version));
    if (answer.verdict == protocol::HeaderVerdict::tls_required)
        throw Error("the receiver at " + to_string(peer) + " takes TLS connections only: give this side --key with the receiver's key file");
    if (answer.verdict != protocol::HeaderVerdict::accepted)
        throw Error("the receiver at " + to_string(peer) + " refused our stream header (its log says why)");
    return std::unique_ptr<ReplicationLink>(new ReplicationLink(std::move(connection), header, false));
}

namespace {

// A connection that has not yet sent a whole stream header: read without blocking, exactly as far
// as the header goes (the sender sends nothing more until it is answered).
struct UnheardPeer {
    TcpConnection connection;
    std::chrono::steady_clock::time_point deadline;
    std::vector<std::byte> bytes;
    std::size_t wanted = protocol::kStreamHeaderFixedBytes;
    bool first_byte_seen = false;  // check_first_byte has decided
    bool secured = false;          // ready for the header (the TLS handshake is done, with a TlsContext)
};

enum class Heard { more, header, gone };

// Reads what `peer` has sent so far. `header` once it holds a whole valid header; `gone` (with
// `why` set, the connection answered where an answer helps) when it is not a sender.
// A TLS receiver's first look at a connection: a TLS handshake goes on (true); anything else is
// refused, a clear stream header answered with tls_required. A receiver without TLS refuses a
// connection that starts a handshake. Sets `why` when it refuses.
enum class FirstByte { wait, ok, refused };
FirstByte check_first_byte(UnheardPeer& peer, bool want_tls, std::string& why) {
    if (peer.first_byte_seen) return FirstByte::ok;
    std::byte first{};
    const auto n = ::recv(peer.connection.fd(), &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return FirstByte::wait;
    if (n <= 0) return FirstByte::ok;  // closed or failed: the read that follows says how
    peer.first_byte_seen = true;
    const bool is_tls = first == kTlsHandshakeRecord;
    if (is_tls == want_tls) return FirstByte::ok;
    if (is_tls) {
        why = "began a TLS handshake, but this receiver has no --key (start receive with the sender's key file)";
        return FirstByte::refused;
    }
    const std::byte bytes[1] = {first};
    if (protocol::may_start_stream_header(bytes)) {
        try {
            protocol::write_header_answer(peer.connection, {protocol::kStreamVersion, protocol::HeaderVerdict::tls_required});
            peer.connection.flush();
        } catch (...) {  // best effort, as any refusal
        }
        why = "sent its stream header in clear; this receiver takes TLS only (give the sender --key)";
    } else {
        why = "neither TLS nor a colo-replicate stream; this receiver takes TLS only";
    }
    return FirstByte::refused;
}

// Reads what `peer` has sent so far. `header` once it holds a whole valid header; `gone` (with
// `why` set, the connection answered where an answer helps) when it is not a sender.
Heard listen_to(UnheardPeer& peer, protocol::StreamHeader& header, std::string& why,
                const std::shared_ptr<const TlsContext>& tls) {
    if (!peer.secured) {
        switch (check_first_byte(peer, tls != nullptr, why)) {
            case FirstByte::refused: return Heard::gone;
            case FirstByte::wait: return Heard::more;
            case FirstByte::ok: break;
        }
        if (tls != nullptr) {
            try {
                if (!peer.connection.step_tls(tls)) return Heard::more;
            } catch (const protocol::StreamTruncated&) {
                why = "closed the connection during the TLS handshake";
                return Heard::gone;
            } catch (const Error& e) {
                // The refusal line names the peer already.
                why = e.what();
                const std::string named = "TLS handshake with " + peer.connection.peer() + " failed";
                if (why.rfind(named, 0) == 0) why = "TLS handshake failed" + why.substr(named.size());
                return Heard::gone;
            }
        }
        peer.secured = true;
    }
    for (;;) {
        std::byte buffer[4096];
        const std::size_t want = std::min(sizeof buffer, peer.wanted - peer.bytes.size());
        std::size_t n = 0;
        try {
            n = peer.connection.receive_available(std::span(buffer, want));
        } catch (const protocol::StreamTruncated&) {
            why = peer.bytes.empty() ? "closed the connection without a word"
                                     : "closed the connection after " + std::to_string(peer.bytes.size()) +
                                           " bytes, before its stream header was complete";
            return Heard::gone;
        } catch (const SystemError& e) {
            why = std::string("connection failed before a stream header: ") + std::strerror(e.error_number());
            return Heard::gone;
        } catch (const Error& e) {
            why = e.what();
            return Heard::gone;
        }
        if (n == 0) return Heard::more;
        peer.bytes.insert(peer.bytes.end(), buffer, buffer + n);
        try {
            if (!protocol::may_start_stream_header(peer.bytes)) throw Error("not a colo-replicate stream (bad magic)");
            if (peer.bytes.size() < peer.wanted) continue;
            if (peer.wanted == protocol::kStreamHeaderFixedBytes) {
                peer.wanted = protocol::stream_header_length(peer.bytes);
                if (peer.bytes.size() < peer.wanted) continue;
            }
            protocol::MemorySource source(peer.bytes);
            header = protocol::read_header(source);
            return Heard::header;
        } catch (const protocol::StreamVersionMismatch& e) {
            refuse_header(peer.connection, protocol::HeaderVerdict::version_differs);
            why = protocol::version_mismatch(e.peer_version());
        } catch (const Error& e) {
            refuse_header(peer.connection, protocol::HeaderVerdict::refused);
            why = e.what();
        }
        return Heard::gone;
    }
}

}  // namespace

std::unique_ptr<ReplicationLink> ReplicationLink::accept(TcpListener& listener, std::chrono::milliseconds accept_timeout,
                                                         std::chrono::milliseconds peer_timeout,
                                                         const std::function<void(const std::string&)>& refused,
                                                         std::shared_ptr<const TlsContext> tls) {
    using Clock = std::chrono::steady_clock;
    if (accept_timeout.count() == 0) accept_timeout = std::chrono::hours(24);
    const auto give_up = Clock::now() + accept_timeout;
    std::vector<UnheardPeer> unheard;
    const auto drop = [&](std::size_t i, const std::string& why) {
        const std::string line = unheard[i].connection.peer() + ": " + why;
        unheard.erase(unheard.begin() + static_cast<std::ptrdiff_t>(i));
        if (refused) refused(line);
    };
    for (;;) {
        // Whoever has spoken: a sender's header usually arrives with its connect.
        for (std::size_t i = 0; i < unheard.size();) {
            protocol::StreamHeader header;
            std::string why;
            switch (listen_to(unheard[i], header, why, tls)) {
                case Heard::more: ++i; break;
                case Heard::gone: drop(i, why); break;
                case Heard::header: {
                    unheard[i].connection.set_io_timeout(peer_timeout);
                    try {
                        answer_header(unheard[i].connection, protocol::HeaderVerdict::accepted);
                    } catch (const Error& e) {
                        drop(i, std::string("went away before its header was answered: ") + e.what());
                        break;
                    }
                    return std::unique_ptr<ReplicationLink>(
                        new ReplicationLink(std::move(unheard[i].connection), std::move(header), true));
                }
            }
        }
        const auto now = Clock::now();
        for (std::size_t i = 0; i < unheard.size();) {
            if (now < unheard[i].deadline) {
                ++i;
                continue;
            }
            drop(i, "sent no stream header within " + std::to_string(peer_timeout.count()) + " ms" +
                        (unheard[i].bytes.empty() ? "" : " (" + std::to_string(unheard[i].bytes.size()) + " bytes)"));
        }
        if (now >= give_up) {
            throw Error("no peer connected to " + listener.address() + " within " +
                        std::to_string(accept_timeout.count()) + " ms");
        }
        auto wake = give_up;
        std::vector<pollfd> fds{{listener.fd(), POLLIN, 0}};
        for (const auto& peer : unheard) {
            fds.push_back({peer.connection.fd(), POLLIN, 0});
            wake = std::min(wake, peer.deadline);
        }
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
        const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<std::int64_t>(wait.count(), 1 << 30)));
        if (ready < 0 && errno != EINTR) throw SystemError("poll", errno, "listening on " + listener.address());
        if ((fds[0].revents & POLLIN) == 0) continue;
        while (auto connection = listener.accept_waiting()) {
            if (unheard.size() == kMaxUnheardPeers) {
                // The oldest has had the longest to speak; a sender speaks at once.
                drop(0, "dropped unheard: " + std::to_string(kMaxUnheardPeers) + " newer connections wait for their header");
            }
            unheard.push_back(UnheardPeer{std::move(*connection), Clock::now() + peer_timeout, {}, protocol::kStreamHeaderFixedBytes, false, false});
        }
    }
}

}  // namespace colo
