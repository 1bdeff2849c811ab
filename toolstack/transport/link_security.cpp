#include "toolstack/transport/link_security.hpp"

#include <filesystem>

#include "backends/error.hpp"

namespace colo {

namespace {

std::string absolute(const std::string& path, const char* option) {
    if (path.find_first_of(" \t\n") != std::string::npos)
        throw Error(std::string("--") + option + " " + path + ": the path may not contain white space");
    return std::filesystem::absolute(path).lexically_normal().string();
}

}  // namespace

void LinkSecurity::validate() const {
    const CertificateFiles& c = certificates;
    const int given = !c.certificate.empty() + !c.private_key.empty() + !c.ca.empty();
    if (given != 0 && given != 3) throw Error("x509 authentication needs all of --tls-cert, --tls-key and --tls-ca");
    if (given != 0 && !key_file.empty()) throw Error("give either --key or the --tls-* certificates, not both");
    if (!key_file.empty()) (void)absolute(key_file, "key"), (void)LinkKey::load(key_file);
    if (given != 0) {
        (void)absolute(c.certificate, "tls-cert"), (void)absolute(c.private_key, "tls-key"), (void)absolute(c.ca, "tls-ca");
        (void)TlsContext(c, TlsRole::client);  // loads and matches the files
    }
}

std::vector<std::string> LinkSecurity::request_arguments() const {
    if (!key_file.empty()) return {"key=" + absolute(key_file, "key")};
    if (certificates.certificate.empty()) return {};
    return {"tls_cert=" + absolute(certificates.certificate, "tls-cert"),
            "tls_key=" + absolute(certificates.private_key, "tls-key"), "tls_ca=" + absolute(certificates.ca, "tls-ca")};
}

std::shared_ptr<const TlsContext> LinkSecurity::context(TlsRole role) const {
    if (!key_file.empty()) return std::make_shared<const TlsContext>(LinkKey::load(key_file), role);
    if (!certificates.certificate.empty()) return std::make_shared<const TlsContext>(certificates, role);
    return nullptr;
}

}  // namespace colo
