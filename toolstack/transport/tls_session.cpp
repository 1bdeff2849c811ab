#include "toolstack/transport/tls_session.hpp"

#include <fcntl.h>
#include <openssl/err.h>

#include <csignal>
#include <cerrno>
#include <mutex>

#include "backends/error.hpp"
#include "toolstack/protocol/byte_stream.hpp"

namespace colo {

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, int socket, std::string peer)
    : context_(std::move(context)),
      socket_(check_syscall(::fcntl(socket, F_DUPFD_CLOEXEC, 0), "fcntl(F_DUPFD_CLOEXEC)")),
      peer_(std::move(peer)) {
    // OpenSSL writes to the socket with write(2), not send(MSG_NOSIGNAL): a peer that reset the
    // connection would raise SIGPIPE and end the process instead of failing the write.
    static std::once_flag ignore_sigpipe;
    std::call_once(ignore_sigpipe, [] { ::signal(SIGPIPE, SIG_IGN); });
    ssl_ = SSL_new(context_->get());
    if (ssl_ == nullptr) throw Error("TLS: " + take_openssl_error("SSL_new failed"));
    SSL_set_app_data(ssl_, &refusal_);
    if (SSL_set_fd(ssl_, socket_.get()) != 1) {
        SSL_free(ssl_);
        throw Error("TLS: " + take_openssl_error("SSL_set_fd failed"));
    }
    if (context_->role() == TlsRole::client) {
        SSL_set_connect_state(ssl_);
    } else {
        SSL_set_accept_state(ssl_);
    }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

TlsWait TlsSession::wait_or_throw(int result, const char* operation) {
    try {
        return classify(result, operation);
    } catch (...) {
        // The session is dead; the other direction's next call reports the same cause (a record
        // that failed authentication on the reading side shows up on the writing side as a bare
        // broken pipe otherwise, and whichever thread reports first names the failure).
        failure_ = std::current_exception();
        throw;
    }
}

TlsWait TlsSession::classify(int result, const char* operation) {
    const int error = SSL_get_error(ssl_, result);
    const int saved_errno = errno;
    switch (error) {
        case SSL_ERROR_WANT_READ: ERR_clear_error(); return TlsWait::readable;
        case SSL_ERROR_WANT_WRITE: ERR_clear_error(); return TlsWait::writable;
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error();
            throw protocol::StreamTruncated("truncated stream: " + peer_ + " closed the connection");
        case SSL_ERROR_SYSCALL:
            ERR_clear_error();
            if (saved_errno == 0 || saved_errno == EPIPE) throw protocol::StreamTruncated("truncated stream: " + peer_ + " closed the connection");
            throw SystemError(operation, saved_errno, "connection to " + peer_ + " lost");
        default: break;
    }
    const unsigned long code = ERR_peek_error();
    if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        throw protocol::StreamTruncated("truncated stream: " + peer_ + " closed the connection");
    }
    const std::string why = take_openssl_error("protocol error");
    if (why == "bad record mac" || why == "decryption failed or bad record mac" || why == "decryption failed")
        throw Error("connection to " + peer_ + ": a TLS record failed authentication (" + why +
                    "): the stream was changed in transit");
    throw Error("connection to " + peer_ + ": TLS: " + why);
}

TlsWait TlsSession::handshake() {
    std::lock_guard lock(mutex_);
    ERR_clear_error();
    errno = 0;
    const int result = SSL_do_handshake(ssl_);
    if (result == 1) return TlsWait::none;
    const int error = SSL_get_error(ssl_, result);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return wait_or_throw(result, "SSL_do_handshake");
    // Why, as each side can tell: our callback's verdict on the peer's key, the peer's alert,
    // or the connection ending (a receiver without TLS reads a ClientHello as garbage and hangs up).
    std::string why = refusal_;
    if (why.empty()) {
        try {
            (void)wait_or_throw(result, "SSL_do_handshake");
            why = "failed";
        } catch (const protocol::StreamTruncated&) {
            why = "the peer closed the connection";
        } catch (const Error& e) {
            why = e.what();
            const std::string prefix = "connection to " + peer_ + ": TLS: ";
            if (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
        }
        if (const long verify = SSL_get_verify_result(ssl_); verify != X509_V_OK && why.find("certificate") != std::string::npos) {
            why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
        }
        if (why.find("decrypt error") != std::string::npos || why.find("handshake failure") != std::string::npos ||
            why.find("illegal parameter") != std::string::npos || why.find("bad key") != std::string::npos) {
            why += " (the peer refused our key or certificate: the two hosts have different key files?)";
        }
    }
    throw Error("TLS handshake with " + peer_ + " failed: " + why);
}

std::size_t TlsSession::transfer(int (*call)(SSL*, void*, std::size_t, std::size_t*), void* buffer, std::size_t size,
                                 TlsWait& wait, const char* operation) {
    std::lock_guard lock(mutex_);
    if (failure_) std::rethrow_exception(failure_);
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int result = call(ssl_, buffer, size, &n);
    if (result == 1) {
        wait = TlsWait::none;
        return n;
    }
    wait = wait_or_throw(result, operation);
    return 0;
}

std::size_t TlsSession::read(std::span<std::byte> out, TlsWait& wait) {
    return transfer(SSL_read_ex, out.data(), out.size(), wait, "recv");
}

std::size_t TlsSession::write(std::span<const std::byte> bytes, TlsWait& wait) {
    // SSL_write_ex only reads the buffer; the shared signature takes it as void*.
    const auto write_ex = [](SSL* ssl, void* buffer, std::size_t size, std::size_t* n) {
        return SSL_write_ex(ssl, buffer, size, n);
    };
    return transfer(write_ex, const_cast<std::byte*>(bytes.data()), bytes.size(), wait, "send");
}

}  // namespace colo
