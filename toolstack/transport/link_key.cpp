#include "toolstack/transport/link_key.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "backends/error.hpp"
#include "backends/unique_fd.hpp"

namespace colo {

namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string to_hex(std::span<const unsigned char> bytes) {
    std::string text;
    for (const unsigned char b : bytes) {
        text += kHex[b >> 4];
        text += kHex[b & 15];
    }
    return text;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string key_id(std::span<const unsigned char> key) {
    static constexpr char kLabel[] = "colo-replicate key id";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    const bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1 &&
                    EVP_DigestUpdate(md, kLabel, sizeof kLabel - 1) == 1 &&
                    EVP_DigestUpdate(md, key.data(), key.size()) == 1 && EVP_DigestFinal_ex(md, digest, &length) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) throw Error("SHA-256 of the link key failed (libcrypto)");
    return to_hex(std::span<const unsigned char>(digest, 8));
}

}  // namespace

LinkKey::LinkKey(std::array<unsigned char, kBytes> bytes, std::string path)
    : bytes_(bytes), id_(key_id(bytes_)), path_(std::move(path)) {}

LinkKey LinkKey::from_bytes(std::span<const std::byte, kBytes> bytes) {
    std::array<unsigned char, kBytes> copy{};
    std::memcpy(copy.data(), bytes.data(), kBytes);
    return LinkKey(copy, "(memory)");
}

LinkKey LinkKey::load(const std::string& path) {
    // O_NOFOLLOW: the key is read from the file named, not from wherever a planted link points.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) {
        if (errno == ELOOP) throw Error("key file " + path + " is a symbolic link; give the file itself");
        throw SystemError("open", errno, "key file " + path);
    }
    struct stat st {};
    check_syscall(::fstat(fd.get(), &st), "fstat");
    if (!S_ISREG(st.st_mode)) throw Error("key file " + path + " is not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw Error("key file " + path + " may be read by others (mode " + mode + "): chmod 600 " + path);
    }
    if (st.st_uid != ::geteuid()) throw Error("key file " + path + " belongs to another user (uid " + std::to_string(st.st_uid) + ")");
    char text[256];
    ssize_t n;
    do n = ::read(fd.get(), text, sizeof text - 1);
    while (n < 0 && errno == EINTR);
    if (n < 0) throw SystemError("read", errno, "key file " + path);
    const std::string content(text, static_cast<std::size_t>(n));
    const std::string prefix = kFilePrefix;
    const auto bad = [&path] { return Error("key file " + path + " is not a colo-replicate key (write one with `colo-replicate keygen " + path + "`)"); };
    if (content.compare(0, prefix.size(), prefix) != 0) throw bad();
    std::string hex = content.substr(prefix.size());
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) hex.pop_back();
    if (hex.size() != 2 * kBytes) throw bad();
    std::array<unsigned char, kBytes> bytes{};
    for (std::size_t i = 0; i < kBytes; ++i) {
        const int hi = hex_digit(hex[2 * i]);
        const int lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) throw bad();
        bytes[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return LinkKey(bytes, path);
}

LinkKey LinkKey::generate(const std::string& path) {
    std::array<unsigned char, kBytes> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) throw Error("no random bytes for a key (libcrypto RAND_bytes)");
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) {
        if (errno == EEXIST) throw Error(path + " exists; keygen never overwrites a key (remove it first)");
        throw SystemError("open", errno, "key file " + path);
    }
    // Whatever the umask: the key is the owner's alone.
    check_syscall(::fchmod(fd.get(), 0600), "fchmod");
    const std::string line = std::string(kFilePrefix) + to_hex(bytes) + "\n";
    std::size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(fd.get(), line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw SystemError("write", errno, "key file " + path);
        done += static_cast<std::size_t>(n);
    }
    check_syscall(::fsync(fd.get()), "fsync");
    return LinkKey(bytes, path);
}

}  // namespace colo
