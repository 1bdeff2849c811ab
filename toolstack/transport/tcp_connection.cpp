#include "toolstack/transport/tcp_connection.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "backends/error.hpp"
#include "toolstack/transport/address_lookup.hpp"

namespace colo {

namespace {

using Clock = std::chrono::steady_clock;

void set_option(int fd, int level, int name, int value, const char* what) {
    check_syscall(::setsockopt(fd, level, name, &value, sizeof value), what);
}

void set_nonblocking(int fd) {
    const int flags = check_syscall(::fcntl(fd, F_GETFL), "fcntl(F_GETFL)");
    check_syscall(::fcntl(fd, F_SETFL, flags | O_NONBLOCK), "fcntl(F_SETFL, O_NONBLOCK)");
}

bool is_lost_connection(int error) {
    return error == ECONNRESET || error == EPIPE || error == ENOTCONN || error == ETIMEDOUT ||
           error == EHOSTUNREACH || error == ENETUNREACH;
}

// Waits until `fd` is ready for `events` or `timeout` passes; false on timeout.
bool poll_within(int fd, short events, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        // Rounded up: a silence is reported only once the whole timeout has passed.
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
        if (rc > 0) return true;
        if (rc == 0 && Clock::now() >= deadline) return false;
        if (rc == 0) continue;
        if (errno != EINTR) throw SystemError("poll", errno);
    }
}

// One attempt at one address. Returns the connected socket, or sets `error` and returns an
// invalid fd.
UniqueFd try_connect(const addrinfo& address, std::chrono::milliseconds timeout, int& error, bool& timed_out) {
    UniqueFd fd(::socket(address.ai_family, address.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, address.ai_protocol));
    if (!fd.valid()) {
        error = errno;
        return {};
    }
    if (::connect(fd.get(), address.ai_addr, address.ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
        error = errno;
        return {};
    }
    if (!poll_within(fd.get(), POLLOUT, timeout)) {
        timed_out = true;
        error = ETIMEDOUT;
        return {};
    }
    int so_error = 0;
    socklen_t length = sizeof so_error;
    check_syscall(::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &length), "getsockopt(SO_ERROR)");
    if (so_error != 0) {
        error = so_error;
        return {};
    }
    return fd;
}

}  // namespace

void configure_replication_socket(int fd) {
    set_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)");
    set_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "setsockopt(SO_KEEPALIVE)");
    // Keepalive is the backstop behind io_timeout, for a connection nobody is waiting on.
    set_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, 5, "setsockopt(TCP_KEEPIDLE)");
    set_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, 1, "setsockopt(TCP_KEEPINTVL)");
    set_option(fd, IPPROTO_TCP, TCP_KEEPCNT, 3, "setsockopt(TCP_KEEPCNT)");
}

TcpConnection TcpConnection::connect(const Endpoint& endpoint, ConnectionOptions options) {
    const std::string where = "connect to " + to_string(endpoint);
    const AddrinfoList addresses = lookup_tcp(endpoint, false);
    int error = ECONNREFUSED;
    bool timed_out = false;
    for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
        UniqueFd fd = try_connect(*a, options.connect_timeout, error, timed_out);
        if (!fd.valid()) continue;
        configure_replication_socket(fd.get());
        return TcpConnection(std::move(fd), describe_address(a->ai_addr, a->ai_addrlen), options);
    }
    if (timed_out)
        throw Error(where + ": no answer within " + std::to_string(options.connect_timeout.count()) + " ms");
    throw SystemError("connect", error, where);
}

TcpConnection::TcpConnection(UniqueFd socket, std::string peer, ConnectionOptions options)
    : socket_(std::move(socket)), peer_(std::move(peer)), options_(options), read_buffer_(kReadBuffer) {
    set_nonblocking(socket_.get());
    write_buffer_.reserve(kWriteBuffer);
}

void TcpConnection::wait_for(short events, const char* waiting_for) {
    if (!poll_within(socket_.get(), events, options_.io_timeout))
        throw protocol::PeerSilent("peer silent for " + std::to_string(options_.io_timeout.count()) + " ms (" + waiting_for +
                    " " + peer_ + ")");
}

// One attempt to read: bytes read, or 0 with `wait` set to what to poll for.
std::size_t TcpConnection::receive_once(std::span<std::byte> out, short& wait) {
    if (tls_ != nullptr) {
        TlsWait tls_wait = TlsWait::none;
        const std::size_t n = tls_->read(out, tls_wait);
        wait = tls_wait == TlsWait::writable ? POLLOUT : POLLIN;
        return n;
    }
    for (;;) {
        const ssize_t n = ::recv(socket_.get(), out.data(), out.size(), MSG_DONTWAIT);
        if (n > 0) return static_cast<std::size_t>(n);
        if (n == 0) throw protocol::StreamTruncated("truncated stream: " + peer_ + " closed the connection");
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait = POLLIN;
            return 0;
        }
        if (is_lost_connection(errno)) throw SystemError("recv", errno, "connection to " + peer_ + " lost");
        throw SystemError("recv", errno, "connection to " + peer_);
    }
}

std::size_t TcpConnection::receive_some(std::span<std::byte> out) {
    for (;;) {
        short wait = POLLIN;
        if (const std::size_t n = receive_once(out, wait); n > 0) return n;
        wait_for(wait, "waiting for data from");
    }
}

std::size_t TcpConnection::receive_available(std::span<std::byte> out) {
    short wait = POLLIN;
    return receive_once(out, wait);
}

void TcpConnection::send_all(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        if (tls_ != nullptr) {
            TlsWait wait = TlsWait::none;
            const std::size_t n = tls_->write(bytes, wait);
            bytes = bytes.subspan(n);
            if (n == 0) wait_for(wait == TlsWait::readable ? POLLIN : POLLOUT, "not reading from");
            continue;
        }
        const ssize_t n = ::send(socket_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(n));
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait_for(POLLOUT, "not reading from");
            continue;
        }
        if (is_lost_connection(errno)) throw SystemError("send", errno, "connection to " + peer_ + " lost");
        throw SystemError("send", errno, "connection to " + peer_);
    }
}

bool TcpConnection::step_tls(std::shared_ptr<const TlsContext> context) {
    if (tls_ == nullptr) tls_ = std::make_shared<TlsSession>(std::move(context), socket_.get(), peer_);
    tls_ready_ = tls_->handshake() == TlsWait::none;
    return tls_ready_;
}

void TcpConnection::start_tls(std::shared_ptr<const TlsContext> context, std::chrono::milliseconds timeout) {
    tls_ = std::make_shared<TlsSession>(std::move(context), socket_.get(), peer_);
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        const TlsWait wait = tls_->handshake();
        if (wait == TlsWait::none) break;
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0 || !poll_within(socket_.get(), wait == TlsWait::readable ? POLLIN : POLLOUT, left))
            throw Error("TLS handshake with " + peer_ + " failed: no answer within " + std::to_string(timeout.count()) + " ms");
    }
    tls_ready_ = true;
}

void TcpConnection::read_exact(std::span<std::byte> out) {
    while (!out.empty()) {
        if (read_begin_ < read_end_) {
            const std::size_t n = std::min(out.size(), read_end_ - read_begin_);
            std::copy_n(read_buffer_.begin() + static_cast<std::ptrdiff_t>(read_begin_), n, out.begin());
            read_begin_ += n;
            out = out.subspan(n);
        } else if (out.size() >= read_buffer_.size()) {
            out = out.subspan(receive_some(out));  // large reads skip the copy through the buffer
        } else {
            read_begin_ = 0;
            read_end_ = receive_some(read_buffer_);
        }
    }
}

void TcpConnection::write_all(std::span<const std::byte> bytes) {
    if (write_buffer_.size() + bytes.size() > kWriteBuffer) flush();
    if (bytes.size() >= kWriteBuffer) {
        send_all(bytes);
        return;
    }
    write_buffer_.insert(write_buffer_.end(), bytes.begin(), bytes.end());
}

void TcpConnection::flush() {
    try {
        send_all(write_buffer_);
    } catch (...) {
        // The stream is broken now; a retry must not send a record's tail without its head.
        write_buffer_.clear();
        throw;
    }
    write_buffer_.clear();
}

void TcpConnection::shutdown_both() noexcept {
    // An error here means the socket is already disconnected, which is what was asked for.
    (void)::shutdown(socket_.get(), SHUT_RDWR);
}

TcpConnection TcpConnection::duplicate() const {
    UniqueFd copy(::fcntl(socket_.get(), F_DUPFD_CLOEXEC, 0));
    if (!copy.valid()) throw SystemError("fcntl(F_DUPFD_CLOEXEC)", errno, "connection to " + peer_);
    TcpConnection twin(std::move(copy), peer_, options_);
    twin.tls_ = tls_;
    twin.tls_ready_ = tls_ready_;
    return twin;
}

void TcpConnection::shutdown_write() {
    flush();
    check_syscall(::shutdown(socket_.get(), SHUT_WR), "shutdown(SHUT_WR)");
}

}  // namespace colo
