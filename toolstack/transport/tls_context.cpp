#include "toolstack/transport/tls_context.hpp"

#include <openssl/err.h>

#include <cstring>

#include "backends/error.hpp"

namespace colo {

namespace {

// TLS 1.3's TLS_AES_128_GCM_SHA256: the PSK's session names it, so its hash (SHA-256) is the
// one both sides use to derive from the key.
constexpr unsigned char kPskCipher[] = {0x13, 0x01};

TlsContext* context_of(SSL* ssl) { return static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl))); }

// A session holding the pre-shared key, as OpenSSL's external-PSK callbacks want it.
SSL_SESSION* psk_session(SSL* ssl, const LinkKey& key) {
    const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kPskCipher);
    if (cipher == nullptr) return nullptr;
    SSL_SESSION* session = SSL_SESSION_new();
    if (session == nullptr) return nullptr;
    if (SSL_SESSION_set1_master_key(session, key.bytes().data(), key.bytes().size()) != 1 ||
        SSL_SESSION_set_cipher(session, cipher) != 1 || SSL_SESSION_set_protocol_version(session, TLS1_3_VERSION) != 1) {
        SSL_SESSION_free(session);
        return nullptr;
    }
    return session;
}

int use_psk(SSL* ssl, const EVP_MD* md, const unsigned char** id, std::size_t* id_length, SSL_SESSION** session) {
    const TlsContext* context = context_of(ssl);
    *session = nullptr;
    if (context == nullptr || !context->key()) return 0;
    // Asked again after the server's choice of cipher: our PSK's hash must be the one chosen.
    if (md != nullptr && EVP_MD_get_type(md) != NID_sha256) return 1;
    const std::string& identity = context->key()->id();
    *id = reinterpret_cast<const unsigned char*>(identity.data());
    *id_length = identity.size();
    *session = psk_session(ssl, *context->key());
    return *session != nullptr ? 1 : 0;
}

int find_psk(SSL* ssl, const unsigned char* identity, std::size_t length, SSL_SESSION** session) {
    const TlsContext* context = context_of(ssl);
    *session = nullptr;
    if (context == nullptr || !context->key()) return 0;
    const std::string& ours = context->key()->id();
    if (length != ours.size() || std::memcmp(identity, ours.data(), length) != 0) {
        // No session: the handshake fails (no certificate either). The session records why.
        if (auto* why = static_cast<std::string*>(SSL_get_app_data(ssl))) {
            std::string theirs(reinterpret_cast<const char*>(identity), std::min<std::size_t>(length, 64));
            for (char& c : theirs)
                if (c < 0x20 || c > 0x7e) c = '?';
            *why = "the peer's key (id " + theirs + ") is not this host's (id " + ours + "): the two hosts have different key files";
        }
        return 1;
    }
    *session = psk_session(ssl, *context->key());
    return *session != nullptr ? 1 : 0;
}

}  // namespace

std::string take_openssl_error(const std::string& fallback) {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return fallback;
    const char* reason = ERR_reason_error_string(code);
    if (reason != nullptr) return reason;
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

void TlsContext::common_setup() {
    ctx_ = SSL_CTX_new(role_ == TlsRole::client ? TLS_client_method() : TLS_server_method());
    if (ctx_ == nullptr) throw Error("TLS: " + take_openssl_error("SSL_CTX_new failed"));
    SSL_CTX_set_app_data(ctx_, this);
    // TLS 1.3 only: no version downgrade, no renegotiation, encrypted handshake.
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION);
    // The suites whose hash is SHA-256, the PSK's: a server that picked a SHA-384 suite first
    // would find the key unusable and ask for a certificate instead.
    if (SSL_CTX_set_ciphersuites(ctx_, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256") != 1)
        throw Error("TLS: " + take_openssl_error("no TLS 1.3 cipher suite"));
    // Writes go out in pieces as the socket takes them (non-blocking), from a buffer that may move.
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // One link per handshake: no session tickets to issue, store or resume.
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx_, 0);
    SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
}

TlsContext::TlsContext(LinkKey key, TlsRole role) : role_(role), key_(std::move(key)) {
    common_setup();
    if (role_ == TlsRole::client) {
        SSL_CTX_set_psk_use_session_callback(ctx_, use_psk);
    } else {
        SSL_CTX_set_psk_find_session_callback(ctx_, find_psk);
    }
}

TlsContext::TlsContext(const CertificateFiles& files, TlsRole role) : role_(role), certificate_(files.certificate) {
    common_setup();
    const auto fail = [this](const std::string& what) {
        const std::string why = take_openssl_error("failed");
        SSL_CTX_free(ctx_);
        ctx_ = nullptr;
        throw Error("TLS: " + what + ": " + why);
    };
    if (SSL_CTX_use_certificate_chain_file(ctx_, files.certificate.c_str()) != 1) fail("certificate " + files.certificate);
    if (SSL_CTX_use_PrivateKey_file(ctx_, files.private_key.c_str(), SSL_FILETYPE_PEM) != 1) fail("private key " + files.private_key);
    if (SSL_CTX_check_private_key(ctx_) != 1) fail("private key " + files.private_key + " does not match " + files.certificate);
    if (SSL_CTX_load_verify_locations(ctx_, files.ca.c_str(), nullptr) != 1) fail("CA file " + files.ca);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
}

TlsContext::~TlsContext() {
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

std::string TlsContext::describe() const {
    if (key_) return "key " + key_->id();
    return "certificate " + certificate_;
}

}  // namespace colo
