// The pre-shared key that authenticates both ends of a replication link (TLS 1.3 external PSK).
//
// A key file holds one line, "colo-replicate-key-v1 " and 64 hex digits (32 random bytes), and may
// be readable by its owner only: like ssh with a private key, a file that group or others may read
// is refused (anyone who read it could pose as either host). `keygen` writes a new one with
// O_EXCL, never over an existing file.
//
// The key's id (the first 8 bytes of SHA-256 of "colo-replicate key id" and the key, in hex) names
// it on the wire and in messages, so "the peer uses another key" can say which, without the id
// telling anything about the key itself.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>

namespace colo {

class LinkKey {
public:
    static constexpr std::size_t kBytes = 32;
    static constexpr const char* kFilePrefix = "colo-replicate-key-v1 ";

    // Reads `path`. Throws colo::Error naming the path and the fault (missing, readable by others,
    // not a key file).
    [[nodiscard]] static LinkKey load(const std::string& path);
    // Writes a new random key to `path` (mode 0600; refuses an existing path) and returns it.
    static LinkKey generate(const std::string& path);
    // For tests: a key from given bytes.
    [[nodiscard]] static LinkKey from_bytes(std::span<const std::byte, kBytes> bytes);

    [[nodiscard]] std::span<const unsigned char, kBytes> bytes() const noexcept { return bytes_; }
    [[nodiscard]] const std::string& id() const noexcept { return id_; }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    LinkKey(std::array<unsigned char, kBytes> bytes, std::string path);

    std::array<unsigned char, kBytes> bytes_{};
    std::string id_;
    std::string path_;
};

}  // namespace colo
