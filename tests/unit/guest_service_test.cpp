#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "backends/error.hpp"
#include "backends/fake_backend.hpp"
#include "backends/serialized_backend.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/guest_service.hpp"
#include "toolstack/primary_side.hpp"
#include "toolstack/replication_link.hpp"
#include "toolstack/transport/endpoint.hpp"
#include "toolstack/transport/tcp_listener.hpp"

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

namespace {
// Polls `condition` for up to ten seconds.
template <typename Condition>
bool eventually(Condition condition) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return condition();
}

std::string status_line(const std::string& guest, const std::string& key) {
    for (const auto& line : control::request(guest, "status", std::chrono::seconds(2))) {
        if (line.starts_with(key + " ")) return line.substr(key.size() + 1);
    }
    return {};
}

// Guest g1 served with a PrimarySide, and a peer that accepts its replication link and answers
// its stream header, as a receiver does, then says nothing until hang_up().
struct ServedPrimary {
    TempRunDir dir;
    TcpListener peer{parse_endpoint("127.0.0.1:0")};
    std::unique_ptr<ReplicationLink> peer_link;
    std::thread peer_thread;
    control::GuestService service{std::make_unique<FakeBackend>("g1", 16), config_named("g1")};
    std::optional<PrimarySide> replication;
    std::thread server;

    ServedPrimary() {
        peer_thread = std::thread([this] {
            try {
                peer_link = ReplicationLink::accept(peer, std::chrono::seconds(10), std::chrono::seconds(30));
            } catch (const Error&) {
                // Nobody connected: the test says what it expected.
            }
        });
        service.release_console_directly();
        replication.emplace(service);
        service.bind();
        server = std::thread([this] { service.serve(); });
    }
    ~ServedPrimary() {
        service.request_stop();
        server.join();
        replication.reset();  // ends protection or a migration before the service goes
        if (peer_thread.joinable()) peer_thread.join();
    }
    [[nodiscard]] std::string peer_address() const { return "127.0.0.1:" + std::to_string(peer.port()); }
    void hang_up() {
        peer_thread.join();
        peer_link.reset();
    }
};
}  // namespace

TEST_CASE("guest service: pause, unpause and a second protect are refused while the guest is protected") {
    // The peer never answers: the primary stays in its initial sync, which is protection as far as
    // ownership goes.
    ServedPrimary g;
    (void)control::request("g1", "protect " + g.peer_address() + " heartbeat_timeout=30000");
    const char* refusal = "guest g1 is protected (colo primary); destroy its secondary to end protection first";
    CHECK_THROWS_WITH_AS((void)control::request("g1", "pause"), refusal, Error);
    CHECK_THROWS_WITH_AS((void)control::request("g1", "unpause"), refusal, Error);
    CHECK_THROWS_WITH_AS((void)control::request("g1", "protect " + g.peer_address()), "the guest is already protected",
                         Error);
    // (running, or paused for a moment by the initial sync's final pass on a slow run)
    const std::string info = control::request("g1", "info", std::chrono::seconds(2))[0];
    CHECK(info.starts_with("g1 "));
    CHECK(info.ends_with(" 128 1 fake colo primary"));

    g.hang_up();  // the primary goes on unprotected, and the guest is the operator's again
    REQUIRE(eventually([] { return status_line("g1", "state") == "unprotected"; }));
    (void)control::request("g1", "pause");
}

TEST_CASE("guest service: during a migration list, info and status answer, and pause is refused") {
    ServedPrimary g;
    std::string migrate_error;
    std::thread migrator([&] {
        try {
            (void)control::request("g1", "migrate " + g.peer_address() + " heartbeat_timeout=30000",
                                   std::chrono::seconds(60));
        } catch (const Error& e) {
            migrate_error = e.what();
        }
    });
    const bool migrating = eventually([] { return status_line("g1", "state") == "migrating"; });
    CHECK(migrating);
    if (migrating) {
        CHECK(control::running_guests() == std::vector<std::string>{"g1"});
        // (running or paused: the final pass pauses it while the migration waits for the receiver)
        const std::string info = control::request("g1", "info", std::chrono::seconds(2))[0];
        CHECK(info.starts_with("g1 "));
        CHECK(info.ends_with(" 128 1 fake migrating"));
        CHECK_THROWS_WITH_AS((void)control::request("g1", "pause"),
                             "guest g1 is being migrated; wait for the migration to end", Error);
        CHECK_THROWS_WITH_AS((void)control::request("g1", "protect 127.0.0.1:1"), "the guest is being migrated", Error);
    }
    // The receiver hangs up: the migration fails, the guest goes on here and is the operator's again.
    g.hang_up();
    migrator.join();
    // (where it fails depends on how far it got: sending the config, or waiting for the receiver)
    CHECK_FALSE(migrate_error.empty());
    CHECK(control::request("g1", "info", std::chrono::seconds(2))[0] == "g1 running 128 1 fake -");
    (void)control::request("g1", "pause");
    CHECK(status_line("g1", "state") == "unprotected");
}

TEST_CASE("guest service: the serialised backend a guest's process hands out offers the guest's NICs") {
    // Without them the pipeline would build no network device and hold nothing.
    auto inner = std::make_unique<colo::FakeBackend>("nics", 16);
    colo::FakeNic& nic = inner->add_nic();
    colo::SerializedBackend backend(std::move(inner));
    REQUIRE(backend.nics().size() == 1);
    CHECK(backend.nics()[0] == &nic);
}
