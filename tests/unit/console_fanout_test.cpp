#include <doctest/doctest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>

#include "backends/fake_backend.hpp"
#include "toolstack/control/console_fanout.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/guest_service.hpp"
#include "toolstack/primary_side.hpp"

using namespace colo;

namespace {
std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/colo-fanout-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Sends this process's stderr to a file while it lives.
class StderrTo {
public:
    explicit StderrTo(const std::filesystem::path& file) : saved_(::dup(STDERR_FILENO)) {
        std::cerr.flush();
        UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        ::dup2(fd.get(), STDERR_FILENO);
    }
    ~StderrTo() {
        std::cerr.flush();
        ::dup2(saved_.get(), STDERR_FILENO);
    }
    StderrTo(const StderrTo&) = delete;
    StderrTo& operator=(const StderrTo&) = delete;

private:
    UniqueFd saved_;
};

// What a console client would receive.
std::string drain(int fd) {
    std::string out;
    char buf[256];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
}
}  // namespace

TEST_CASE("console fan-out: the log holds each byte at its console offset, so a byte released twice lands once") {
    TempDir dir;
    const auto log = dir.path / "console.log";
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    UniqueFd ours(pair[0]);
    control::ConsoleFanout fanout;
    fanout.open_log(log);
    fanout.add_client(UniqueFd(pair[1]));

    // A survivor's first release starts where the dead primary's last report said: offset 6.
    fanout.publish(6, bytes_of("seq=1\n"));
    CHECK(read_file(log) == std::string(6, '\0') + "seq=1\n");
    // The same bytes again at the same offset (released twice) change nothing.
    fanout.publish(6, bytes_of("seq=1\n"));
    fanout.publish_next(bytes_of("seq=2\n"));
    CHECK(read_file(log) == std::string(6, '\0') + "seq=1\nseq=2\n");
    CHECK(fanout.next_offset() == 18);
    // A client sees the bytes as they came.
    CHECK(drain(ours.get()) == "seq=1\nseq=1\nseq=2\n");
    CHECK(fanout.log_error().empty());
}

TEST_CASE("console fan-out: a guest created or restored on an existing log starts its stream at the log's end") {
    TempDir dir;
    const auto log = dir.path / "console.log";
    std::ofstream(log) << "seq=0\n";
    control::ConsoleFanout fanout;
    fanout.open_log(log);
    fanout.start_at_log_end();
    CHECK(fanout.next_offset() == 6);  // what a protect or migrate of this guest goes on from
    fanout.publish_next(bytes_of("seq=1\n"));
    fanout.publish(12, bytes_of("seq=2\n"));
    CHECK(read_file(log) == "seq=0\nseq=1\nseq=2\n");
}

TEST_CASE("console fan-out: a log that cannot seek (a pipe) gets the bytes in release order") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    control::ConsoleFanout fanout;
    fanout.open_log("/proc/self/fd/" + std::to_string(write_end.get()));
    fanout.publish(100, bytes_of("seq=1\n"));
    fanout.publish_next(bytes_of("seq=2\n"));
    char buf[64];
    const auto n = ::read(read_end.get(), buf, sizeof buf);
    CHECK(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))) == "seq=1\nseq=2\n");
    CHECK(fanout.log_error().empty());
}

TEST_CASE("console fan-out: a log write that fails (disk full) is reported, not swallowed") {
    TempDir run_dir;
    ::setenv("COLO_RUN_DIR", run_dir.path.c_str(), 1);
    const auto stderr_copy = run_dir.path / "stderr";
    {
        auto owned = std::make_unique<FakeBackend>("full", 16);
        FakeBackend& fake = *owned;
        GuestConfig config;
        config.name = "full";
        control::GuestService service(std::move(owned), config);
        service.console().open_log("/dev/full");  // every write: ENOSPC
        int pair[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
        UniqueFd ours(pair[0]);
        service.console().add_client(UniqueFd(pair[1]));
        service.release_console_directly();
        PrimarySide replication(service);
        service.bind();
        std::thread server([&] { service.serve(); });

        {
            StderrTo capture(stderr_copy);
            fake.guest_print("seq=1\n");
            fake.guest_print("seq=2\n");
        }
        // One line when the log starts failing, not one a write.
        CHECK(read_file(stderr_copy) ==
              "colo-replicate[full]: console log /dev/full: write at console offset 0 failed: No space left on device; "
              "released output is missing from the log until it can be written again\n");
        const std::string error = service.console().log_error();
        CHECK(error.find("No space left on device") != std::string::npos);
        CHECK(error.find("12 bytes missing, the first at console offset 0") != std::string::npos);
        // `status` says so, whoever answers it.
        const auto status = control::request("full", "status");
        CHECK(std::any_of(status.begin(), status.end(), [](const std::string& line) {
            return line.rfind("console_log_error No space left on device", 0) == 0;
        }));
        // The other readers still get the output.
        CHECK(drain(ours.get()) == "seq=1\nseq=2\n");
        (void)control::request("full", "destroy");
        server.join();
    }
}
