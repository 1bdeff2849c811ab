#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "backends/error.hpp"
#include "backends/fake_backend.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/guest_service.hpp"
#include "toolstack/primary_side.hpp"

using namespace colo;

namespace {
// A private run directory per test, so tests never see a real host's guests.
struct TempRunDir {
    std::filesystem::path path;
    TempRunDir() {
        char tmpl[] = "/tmp/colo-run-XXXXXX";
        path = ::mkdtemp(tmpl);
        ::setenv("COLO_RUN_DIR", path.c_str(), 1);
    }
    ~TempRunDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

GuestConfig config_named(const std::string& name) {
    GuestConfig c;
    c.name = name;
    return c;
}
}  // namespace

TEST_CASE("guest service: lifecycle requests over the control socket") {
    TempRunDir dir;
    auto owned = std::make_unique<FakeBackend>("g1", 16);
    FakeBackend& fake = *owned;
    control::GuestService service(std::move(owned), config_named("g1"));
    service.release_console_directly();
    service.bind();
    std::thread server([&] { service.serve(); });

    CHECK(control::running_guests() == std::vector<std::string>{"g1"});
    auto info = control::request("g1", "info");
    REQUIRE(info.size() == 1);
    CHECK(info[0] == "g1 running 128 1 fake -");

    (void)control::request("g1", "pause");
    CHECK(fake.paused());
    CHECK(control::request("g1", "info")[0] == "g1 paused 128 1 fake -");
    (void)control::request("g1", "unpause");
    CHECK_FALSE(fake.paused());

    CHECK_THROWS_WITH_AS((void)control::request("g1", "reboot"), "unknown request 'reboot'", Error);
    CHECK_THROWS_WITH_AS((void)control::request("g1", "pause now"), "usage: pause", Error);
    CHECK_THROWS_WITH_AS((void)control::request("g2", "info"), "no guest named 'g2' runs on this host", Error);

    // A console client sees what the guest prints after it attached.
    std::mutex seen_mutex;
    std::string seen;
    std::atomic<bool> got_output{false};
    std::thread console([&] {
        control::request_stream("g1", "console", [&](std::span<const char> b) {
            std::lock_guard lock(seen_mutex);
            seen.append(b.data(), b.size());
            got_output = true;
        });
    });
    // Until the client is attached and saw a line: up to 10 s (a busy machine may be slow to
    // accept it).
    for (int i = 0; i < 2000 && !got_output; ++i) {
        fake.guest_print("seq=1\n");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    (void)control::request("g1", "destroy");
    server.join();
    service.console().close_clients();
    console.join();
    std::lock_guard lock(seen_mutex);
    CHECK(seen.find("seq=1\n") != std::string::npos);
}

TEST_CASE("guest service: a second guest of the same name is refused") {
    TempRunDir dir;
    control::GuestService first(std::make_unique<FakeBackend>("dup", 4), config_named("dup"));
    first.bind();
    std::thread server([&] { first.serve(); });
    control::GuestService second(std::make_unique<FakeBackend>("dup", 4), config_named("dup"));
    CHECK_THROWS_WITH_AS(second.bind(), doctest::Contains("a guest named 'dup' already runs"), Error);
    first.request_stop();
    server.join();
}

TEST_CASE("guest service: status of a primary shows the backend's replication caveat, and only then") {
    TempRunDir dir;
    auto owned = std::make_unique<FakeBackend>("g1", 16);
    FakeBackend& fake = *owned;
    control::GuestService service(std::move(owned), config_named("g1"));
    service.release_console_directly();
    PrimarySide replication(service);
    service.bind();
    std::thread server([&] { service.serve(); });
    auto has_caveat = [] {
        const auto status = control::request("g1", "status");
        return std::find(status.begin(), status.end(), "caveat state outside memory") != status.end();
    };
    CHECK_FALSE(has_caveat());
    fake.set_replication_caveat("state outside memory");
    CHECK(has_caveat());
    (void)control::request("g1", "destroy");
    server.join();
}
