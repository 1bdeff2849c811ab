// The virtio-blk disk on real KVM with the built-in guest's disk workload (kvm/builtin_guest/
// disk.c): it writes numbered, checksummed blocks, reads them back, prints `disk-done` with the
// digest of what it wrote, and the image on the host holds exactly that (checked here with the
// same pattern code, kvm/builtin_guest/disk_pattern.h; tests/disk_pattern.py is the Python
// mirror the e2e tests use). Save + restore into a new VM mid-workload continues without a
// CORRUPT; a block changed behind the guest's back is caught; bad images are one-line errors.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "backends/disk_image.hpp"
#include "backends/error.hpp"
#include "kvm/builtin_guest/disk_pattern.h"
#include "kvm/kvm_backend.hpp"
#include "tests/kvm/console_capture.hpp"
#include "tests/kvm/guest_memory_copy.hpp"

using namespace std::chrono_literals;
using colo::GuestConfig;
using colo::kvm::KvmBackend;
using colo::test::ConsoleCapture;

namespace {

class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "colo-blk-test-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] std::filesystem::path image(const std::string& name, std::uint64_t bytes) const {
        const auto p = path_ / name;
        std::ofstream(p, std::ios::binary).close();
        std::filesystem::resize_file(p, bytes);
        return p;
    }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

GuestConfig disk_guest(const std::filesystem::path& image, std::uint64_t writes) {
    GuestConfig config;
    config.name = "blk-test";
    config.memory_mib = 16;
    config.working_set_mib = 2;
    config.dirty_rate = 1000;
    config.seed = 11;
    config.print_interval_ms = 20;
    config.disks = {colo::DiskConfig{image, "xvda", false}};
    config.disk_rate = 2000;  // 40 blocks per 20 ms interval
    config.disk_writes = writes;
    config.disk_flush_every = 8;
    return config;
}

struct ImageDigest {
    std::string hex;
    std::vector<std::string> problems;
};

// What tests/disk_pattern.py's image_digest computes: the digest of the blocks' generations as
// their headers say, every written block's payload checked.
ImageDigest image_digest(const std::filesystem::path& path, std::uint64_t blocks, std::uint64_t seed) {
    std::ifstream in(path, std::ios::binary);
    ImageDigest out;
    std::uint64_t digest = COLO_DISK_FNV_OFFSET;
    std::vector<std::uint8_t> block(COLO_DISK_BLOCK_BYTES);
    for (std::uint64_t b = 0; b < blocks; ++b) {
        in.read(reinterpret_cast<char*>(block.data()), static_cast<std::streamsize>(block.size()));
        std::uint64_t generation = 0;
        const auto verdict = colo_disk_check(block.data(), seed, b, &generation);
        if (!in || verdict != COLO_DISK_OK) out.problems.push_back("block " + std::to_string(b) + ": verdict " + std::to_string(verdict));
        digest = colo_disk_digest_step(digest, b, generation);
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(digest));
    out.hex = hex;
    return out;
}

// The value of `key=` in the first line starting with `prefix`, or "".
std::string field(const std::string& text, const std::string& prefix, const std::string& key) {
    const std::regex line("(^|\n)" + prefix + "[^\n]*");
    std::smatch m;
    if (!std::regex_search(text, m, line)) return "";
    const std::string found = m.str();
    const auto at = found.find(" " + key + "=");
    if (at == std::string::npos) return "";
    const auto start = at + key.size() + 2;
    return found.substr(start, found.find(' ', start) - start);
}

}  // namespace

TEST_CASE("virtio-blk: the built-in guest's disk workload finishes clean and the image holds what it says") {
    TempDir dir;
    const auto image = dir.image("disk.img", 1 << 20);  // 256 blocks
    ConsoleCapture console;
    auto guest = KvmBackend::create(disk_guest(image, 400));
    REQUIRE(guest->disks().size() == 1);
    CHECK(guest->disks()[0]->size_bytes() == 1 << 20);
    guest->set_console_sink(console.sink());
    guest->resume();
    const bool done = console.wait_for_line("disk-done", 30s);
    guest->pause();
    INFO("console: " << console.text().substr(0, 3000));
    INFO("vcpu failure: " << guest->vcpu_failure());
    REQUIRE(done);
    const std::string text = console.text();
    CHECK(field(text, "disk-check", "blocks") == "256");  // min(1 MiB / 4096, 1024)
    CHECK(text.find("CORRUPT") == std::string::npos);
    CHECK(text.find("DISKERR") == std::string::npos);
    CHECK(field(text, "disk-done", "writes") == "400");
    const auto stats = guest->disks()[0]->stats();
    CHECK(stats.writes == 400);
    CHECK(stats.write_bytes == 400 * 4096);
    CHECK(stats.flushes == 50);
    CHECK(stats.reads >= 400 + 256);  // a read-back per write, a full pass after the last write
    CHECK(stats.errors == 0);
    const auto on_disk = image_digest(image, 256, 11);
    CHECK(on_disk.problems.empty());
    CHECK(on_disk.hex == field(text, "disk-done", "digest"));

    // A block changed behind the guest's back is caught by its next pass.
    std::uint64_t written_block = 0;
    {
        std::ifstream in(image, std::ios::binary);
        std::vector<std::uint8_t> block(COLO_DISK_BLOCK_BYTES);
        for (std::uint64_t b = 0; b < 256; ++b) {
            in.read(reinterpret_cast<char*>(block.data()), static_cast<std::streamsize>(block.size()));
            if (block[0] != 0) {
                written_block = b;
                break;
            }
        }
    }
    {
        const int fd = ::open(image.c_str(), O_WRONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        const std::uint8_t byte = 0xee;
        CHECK(::pwrite(fd, &byte, 1, static_cast<off_t>(written_block * COLO_DISK_BLOCK_BYTES + 1000)) == 1);
        ::close(fd);
    }
    guest->resume();
    // The whole line: a pause may land while the UART is still passing it on.
    const bool caught = console.wait_for_line("disk CORRUPT block=" + std::to_string(written_block) + " ", 10s);
    guest->pause();
    CHECK(caught);
    CHECK(console.text().find("disk CORRUPT block=" + std::to_string(written_block) + " want=") != std::string::npos);
    CHECK(console.text().find(" torn\n") != std::string::npos);
}

TEST_CASE("virtio-blk: save and restore into a new VM mid-workload continues without a CORRUPT") {
    TempDir dir;
    const auto image = dir.image("disk.img", 1 << 20);
    const auto copy = dir.path() / "moved.img";
    ConsoleCapture before, after;
    auto config = disk_guest(image, 1200);
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(before.sink());
    guest->resume();
    REQUIRE(before.wait_for_lines(12, 10s));  // a few intervals of writes: mid-workload
    guest->pause();
    const auto state = guest->save_state();
    const auto writes_before = guest->disks()[0]->stats().writes;
    REQUIRE(writes_before > 0);
    REQUIRE(writes_before < 1200);
    // The new VM gets the image as it is now (paused: no request is half done), as a migration
    // would deliver it.
    std::filesystem::copy_file(image, copy);
    auto moved_config = config;
    moved_config.disks[0].target = copy;
    auto next = KvmBackend::create_incoming(moved_config);
    colo::test::copy_memory(guest->memory(), next->memory());
    next->restore_state(state);
    guest.reset();
    next->set_console_sink(after.sink());
    next->resume();
    const bool done = after.wait_for_line("disk-done", 30s);
    next->pause();
    INFO("before: " << before.text().substr(0, 2000));
    INFO("after: " << after.text().substr(0, 3000));
    REQUIRE(done);
    CHECK(before.text().find("CORRUPT") == std::string::npos);
    CHECK(after.text().find("CORRUPT") == std::string::npos);
    CHECK(after.text().find("DISKERR") == std::string::npos);
    // It continued where it was: the new VM's disk served only the writes that were left.
    CHECK(next->disks()[0]->stats().writes == 1200 - writes_before);
    CHECK(field(after.text(), "disk-done", "writes") == "1200");
    const auto on_disk = image_digest(copy, 256, 11);
    CHECK(on_disk.problems.empty());
    CHECK(on_disk.hex == field(after.text(), "disk-done", "digest"));
}

TEST_CASE("virtio-blk: a missing, misfit or busy image is a one-line error; an incoming guest makes its own") {
    TempDir dir;
    const auto missing = dir.path() / "missing.img";
    CHECK_THROWS_WITH_AS((void)KvmBackend::create(disk_guest(missing, 0)),
                         ("open disk image " + missing.string() + ": No such file or directory (errno 2)").c_str(),
                         colo::SystemError);
    const auto odd = dir.image("odd.img", 1000);
    CHECK_THROWS_WITH_AS((void)KvmBackend::create(disk_guest(odd, 0)),
                         ("disk image " + odd.string() + " is 1000 bytes, not a multiple of 512").c_str(), colo::Error);
    const auto busy = dir.image("busy.img", 4096);
    {
        colo::DiskImage holder(busy, true);
        CHECK_THROWS_WITH_AS((void)KvmBackend::create(disk_guest(busy, 0)),
                             ("disk image " + busy.string() + " is in use by another process").c_str(), colo::Error);
    }
    // An incoming guest (restore, migrate, protect) creates its missing image, empty; the
    // replication layer gives it the sender's size.
    auto incoming = KvmBackend::create_incoming(disk_guest(missing, 0));
    REQUIRE(incoming->disks().size() == 1);
    CHECK(std::filesystem::exists(missing));
    CHECK(incoming->disks()[0]->size_bytes() == 0);
    incoming->disks()[0]->resize(1 << 20);
    CHECK(std::filesystem::file_size(missing) == 1 << 20);
    // The running guest holds its image: nobody else may open it for writing.
    CHECK_THROWS_WITH_AS(colo::DiskImage(missing, true),
                         ("disk image " + missing.string() + " is in use by another process").c_str(), colo::Error);
}
