// The pre-shared key file of a replication link: keygen's mode whatever the umask, and every way
// load refuses a file that is not a private key of ours, with a line that says what to do.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/unit/error_of.hpp"
#include "tests/unit/linux_test_images.hpp"
#include "toolstack/transport/link_key.hpp"

using namespace colo;
using colo::test::error_of;
using linux_test::TempDir;

namespace {

// Writes `text` to `path` with mode `mode` (chmod, so the umask plays no part).
std::string write_file(const std::filesystem::path& path, const std::string& text, mode_t mode = 0600) {
    std::ofstream(path) << text;
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    return path.string();
}

const std::string kHex64 = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

bool same_bytes(const LinkKey& a, const LinkKey& b) {
    return std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin());
}

// Restores the process's umask when the test ends, pass or fail.
class UmaskGuard {
public:
    explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
    ~UmaskGuard() { ::umask(old_); }
    UmaskGuard(const UmaskGuard&) = delete;
    UmaskGuard& operator=(const UmaskGuard&) = delete;

private:
    mode_t old_;
};

}  // namespace

TEST_CASE("link key: keygen writes mode 0600 even with umask 000, never over an existing file, and load reads it back") {
    TempDir dir;
    REQUIRE(!dir.path().empty());
    const std::string path = (dir.path() / "link.key").string();
    LinkKey made = [&] {
        UmaskGuard umask(0);
        return LinkKey::generate(path);
    }();
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(made.id().size() == 16);

    const LinkKey loaded = LinkKey::load(path);
    CHECK(same_bytes(made, loaded));
    CHECK(loaded.id() == made.id());
    CHECK(loaded.path() == path);

    // A second keygen to the same path refuses, and the first key stays as it was.
    const std::string error = error_of([&] { (void)LinkKey::generate(path); });
    CHECK(error.find(path + " exists") != std::string::npos);
    CHECK(error.find('\n') == std::string::npos);
    CHECK(same_bytes(LinkKey::load(path), made));

    // Two keygens make two different keys.
    const LinkKey other = LinkKey::generate((dir.path() / "other.key").string());
    CHECK(!same_bytes(other, made));
    CHECK(other.id() != made.id());
}

TEST_CASE("link key: load refuses a file others may read, a symlink, and text that is not a key") {
    TempDir dir;
    REQUIRE(!dir.path().empty());
    const std::string good = write_file(dir.path() / "good.key", std::string(LinkKey::kFilePrefix) + kHex64 + "\n");
    CHECK_NOTHROW((void)LinkKey::load(good));

    SUBCASE("mode 0644") {
        const std::string path = write_file(dir.path() / "open.key", std::string(LinkKey::kFilePrefix) + kHex64 + "\n", 0644);
        const std::string error = error_of([&] { (void)LinkKey::load(path); });
        CHECK(error.find("mode 0644") != std::string::npos);
        CHECK(error.find("chmod 600 " + path) != std::string::npos);
        CHECK(error.find('\n') == std::string::npos);
    }
    SUBCASE("mode 0640 (group may read)") {
        const std::string path = write_file(dir.path() / "group.key", std::string(LinkKey::kFilePrefix) + kHex64 + "\n", 0640);
        CHECK(error_of([&] { (void)LinkKey::load(path); }).find("chmod 600") != std::string::npos);
    }
    SUBCASE("a symbolic link to a good key file") {
        const auto link = dir.path() / "link.key";
        std::filesystem::create_symlink(good, link);
        const std::string error = error_of([&] { (void)LinkKey::load(link.string()); });
        CHECK(error.find("is a symbolic link") != std::string::npos);
    }
    SUBCASE("a file of another user") {
        const std::string path = write_file(dir.path() / "theirs.key", std::string(LinkKey::kFilePrefix) + kHex64 + "\n");
        if (::geteuid() != 0) {
            MESSAGE("not root: cannot give a file to another user; not checked");
            return;
        }
        REQUIRE(::chown(path.c_str(), ::geteuid() + 1, static_cast<gid_t>(-1)) == 0);
        CHECK(error_of([&] { (void)LinkKey::load(path); }).find("belongs to another user (uid " + std::to_string(::geteuid() + 1) + ")") != std::string::npos);
    }
    SUBCASE("a missing file") {
        const std::string error = error_of([&] { (void)LinkKey::load((dir.path() / "none.key").string()); });
        CHECK(error.find("none.key") != std::string::npos);
        CHECK(error.find("No such file") != std::string::npos);
    }
    SUBCASE("a directory") {
        std::filesystem::create_directory(dir.path() / "dir.key");
        REQUIRE(::chmod((dir.path() / "dir.key").c_str(), 0700) == 0);
        CHECK(error_of([&] { (void)LinkKey::load((dir.path() / "dir.key").string()); }).find("not a regular file") != std::string::npos);
    }
    SUBCASE("text that is not a key") {
        // Each is refused as not a key, with the keygen command that writes one.
        const std::array<std::pair<const char*, std::string>, 6> not_keys = {{
            {"no prefix", kHex64 + "\n"},
            {"another prefix", "colo-replicate-key-v2 " + kHex64 + "\n"},
            {"hex one digit short", std::string(LinkKey::kFilePrefix) + kHex64.substr(1) + "\n"},
            {"hex one byte long", std::string(LinkKey::kFilePrefix) + kHex64 + "00\n"},
            {"a non-hex digit", std::string(LinkKey::kFilePrefix) + "g" + kHex64.substr(1) + "\n"},
            {"empty", ""},
        }};
        for (const auto& [name, text] : not_keys) {
            const std::string what = name;
            CAPTURE(what);
            const std::string path = write_file(dir.path() / "bad.key", text);
            const std::string error = error_of([&] { (void)LinkKey::load(path); });
            CHECK(error == "key file " + path + " is not a colo-replicate key (write one with `colo-replicate keygen " + path + "`)");
        }
    }
}

TEST_CASE("link key: the id depends on the bytes only") {
    std::array<std::byte, LinkKey::kBytes> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 7 + 1);
    const LinkKey a = LinkKey::from_bytes(bytes);
    const LinkKey b = LinkKey::from_bytes(bytes);
    CHECK(a.id() == b.id());
    CHECK(a.id().size() == 16);
    CHECK(a.id().find_first_not_of("0123456789abcdef") == std::string::npos);
    bytes[31] ^= std::byte{1};
    const LinkKey c = LinkKey::from_bytes(bytes);
    CHECK(c.id() != a.id());

    // The same bytes from a file give the same id as from memory.
    TempDir dir;
    REQUIRE(!dir.path().empty());
    const std::string path = write_file(dir.path() / "k.key", std::string(LinkKey::kFilePrefix) + kHex64 + "\n");
    std::array<std::byte, LinkKey::kBytes> file_bytes{};
    for (std::size_t i = 0; i < file_bytes.size(); ++i) file_bytes[i] = static_cast<std::byte>(std::stoi(kHex64.substr(2 * i, 2), nullptr, 16));
    const LinkKey from_file = LinkKey::load(path);
    CHECK(from_file.id() == LinkKey::from_bytes(file_bytes).id());
    CHECK(same_bytes(from_file, LinkKey::from_bytes(file_bytes)));
}
