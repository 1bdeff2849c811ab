// How a replication link is secured, as the operator asked for it: a pre-shared key file
// (`--key`), x509 files (`--tls-cert`, `--tls-key`, `--tls-ca`), or neither (in clear).
// The CLI checks the files at once (so a typo is reported before anything connects) and hands
// the paths to the guest's process as request arguments ("key=PATH"), which builds the TlsContext.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "toolstack/transport/tls_context.hpp"

namespace colo {

struct LinkSecurity {
    std::string key_file;  // empty: no pre-shared key
    CertificateFiles certificates;  // all three set, or none

    [[nodiscard]] bool secured() const noexcept { return !key_file.empty() || !certificates.certificate.empty(); }
    // Throws colo::Error for a half-given certificate set, both a key and certificates, a path
    // that cannot pass as one request argument, or a key file that does not load.
    void validate() const;
    // "key=PATH" or "tls_cert=.. tls_key=.. tls_ca=..", absolute paths; empty when in clear.
    [[nodiscard]] std::vector<std::string> request_arguments() const;
    // The TLS setup for `role`; null when in clear.
    [[nodiscard]] std::shared_ptr<const TlsContext> context(TlsRole role) const;
};

}  // namespace colo
