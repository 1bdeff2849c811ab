// What one side of a replication link needs for TLS 1.3 (OpenSSL): an SSL_CTX that authenticates
// the peer, owned (STYLE §1), for either role.
//
// Two ways to authenticate, both mutual:
//   - a pre-shared key (LinkKey, the default): TLS 1.3 external PSK with (EC)DHE, so a recorded
//     session cannot be decrypted later even by someone who learns the key. Only a peer holding
//     the same key completes the handshake; the PSK identity is the key's id, so a receiver can
//     say "the peer's key is another one" instead of a bare handshake failure;
//   - x509 certificates: this host's certificate and private key, and a CA file; each side
//     requires a certificate from the other that the CA signed. Any holder of such a certificate
//     is a peer (no host name check: the operator's CA decides who replicates).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>

#include "toolstack/transport/link_key.hpp"

namespace colo {

enum class TlsRole { client, server };

struct CertificateFiles {
    std::string certificate;  // PEM, this host's certificate (chain)
    std::string private_key;  // PEM
    std::string ca;           // PEM, the CA(s) a peer's certificate must chain to
};

class TlsContext {
public:
    // Throws colo::Error when OpenSSL refuses the setup (a certificate file that does not load).
    TlsContext(LinkKey key, TlsRole role);
    TlsContext(const CertificateFiles& files, TlsRole role);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    [[nodiscard]] SSL_CTX* get() const noexcept { return ctx_; }
    [[nodiscard]] TlsRole role() const noexcept { return role_; }
    // The key, when authenticated by one.
    [[nodiscard]] const std::optional<LinkKey>& key() const noexcept { return key_; }
    // "key 0123abcd..." or "certificate FILE", for messages.
    [[nodiscard]] std::string describe() const;

private:
    void common_setup();

    SSL_CTX* ctx_ = nullptr;
    TlsRole role_;
    std::optional<LinkKey> key_;
    std::string certificate_;
};

// The text of the oldest error in this thread's OpenSSL error queue ("bad record mac"), and clears
// the queue; `fallback` when it is empty.
[[nodiscard]] std::string take_openssl_error(const std::string& fallback);

}  // namespace colo
