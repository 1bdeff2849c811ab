// `save` of a Xen guest through the guest's own process (PrimarySide over GuestService, the Xen
// backend on a fake domain): a guest with PV drivers is saved suspended (asked through xenstore,
// suspended, paused, written, told its suspend was cancelled with the pause held, unpaused), the
// image carries libxl's configuration of the domain for `restore`, a save without -c destroys the
// domain, and a failed save leaves the guest running as it was.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "backends/error.hpp"
#include "tests/unit/xen_fake_domain.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/guest_service.hpp"
#include "toolstack/guest_image.hpp"
#include "toolstack/primary_side.hpp"
#include "toolstack/transport/file_stream.hpp"
#include "xen/xen_backend.hpp"

using namespace colo;
using colo::xen::FakeDomain;

namespace {

constexpr const char* kJson = R"({"c_info": {"type": "pvh", "name": "xg"}})";

struct ServedXenGuest {
    ServedXenGuest(bool cooperative) {
        char tmpl[] = "/tmp/colo-xsave-XXXXXX";
        dir = ::mkdtemp(tmpl);
        ::setenv("COLO_RUN_DIR", dir.c_str(), 1);
        auto owned = std::make_unique<FakeDomain>(5, 32);
        domain = owned.get();
        domain->hvm_context = xen::make_hvm_context(5);
        domain->config_json = kJson;
        domain->params[xen::kHvmParamConsolePfn] = 0;  // no console ring: no reader thread
        if (cooperative) domain->make_cooperative();
        for (std::uint64_t p = 0; p < 32; p += 3) domain->guest_write(Pfn{p}, std::byte{0x33});
        journal = domain->journal;
        GuestConfig config;
        config.name = "xg";
        config.backend = "xen";
        service = std::make_unique<control::GuestService>(
            std::make_unique<xen::XenBackend>(std::move(owned), 5, "xg"), config);
        service->release_console_directly();
        side = std::make_unique<PrimarySide>(*service);
        service->bind();
        server = std::thread([this] { service->serve(); });
    }
    ~ServedXenGuest() {
        service->request_stop();
        server.join();
        side.reset();
        service.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
    std::size_t find(const std::string& op, std::size_t from = 0) const {
        return static_cast<std::size_t>(std::find(journal->begin() + static_cast<std::ptrdiff_t>(from), journal->end(), op) -
                                        journal->begin());
    }
    std::filesystem::path dir;
    FakeDomain* domain = nullptr;
    std::shared_ptr<std::vector<std::string>> journal;
    std::unique_ptr<control::GuestService> service;
    std::unique_ptr<PrimarySide> side;
    std::thread server;
};

}  // namespace

TEST_CASE("xen save: a guest with PV drivers is saved suspended, then resumed as cancelled (save -c)") {
    ServedXenGuest g(true);
    const std::string image = (g.dir / "xg.img").string();
    const std::size_t start = g.journal->size();
    (void)control::request("xg", "save " + image + " keep");
    const std::size_t asked = g.find("xenstore_write", start);
    const std::size_t paused = g.find("pause", asked);
    const std::size_t captured = g.find("hvm_get_context", paused);
    const std::size_t cancelled = g.find("resume_cancelled", captured);
    const std::size_t unpaused = g.find("unpause", cancelled);
    CHECK(asked < paused);
    CHECK(paused < captured);
    CHECK(captured < cancelled);
    CHECK(cancelled < unpaused);
    CHECK(unpaused < g.journal->size());
    CHECK_FALSE(g.domain->info.shutdown);  // running on, not suspended
    CHECK(g.domain->counters.pause_depth == 0);
    CHECK_FALSE(g.domain->destroyed);
    // The image holds what restore builds the domain from.
    FileSource source(image);
    GuestImageReader reader(source);
    CHECK(reader.config().domain_config == kJson);
}

TEST_CASE("xen save: without -c the saved domain is destroyed and the guest's process ends") {
    ServedXenGuest g(true);
    const std::string image = (g.dir / "xg.img").string();
    (void)control::request("xg", "save " + image);
    g.server.join();  // serve() returns: the guest is gone
    g.server = std::thread([] {});
    CHECK(g.domain->destroyed);
    CHECK(g.find("destroy_domain") > g.find("hvm_get_context"));
    CHECK(g.find("resume_cancelled") == g.journal->size());  // it goes suspended, never resumed
}

TEST_CASE("xen save: a failed save leaves the guest running and not suspended; a paused one is refused") {
    ServedXenGuest g(true);
    CHECK_THROWS_WITH_AS((void)control::request("xg", "save /nonexistent-dir/xg.img keep"),
                         doctest::Contains("/nonexistent-dir/xg.img"), Error);
    CHECK_FALSE(g.domain->info.shutdown);
    CHECK(g.domain->counters.cancelled_resumes == 1);
    CHECK(g.domain->counters.pause_depth == 0);

    (void)control::request("xg", "pause");
    const std::size_t before = g.journal->size();
    CHECK_THROWS_WITH_AS((void)control::request("xg", "save " + (g.dir / "p.img").string()),
                         doctest::Contains("is paused, and a guest that suspends itself for a save"), Error);
    CHECK(g.find("xenstore_write", before) == g.journal->size());  // not even asked
    CHECK_FALSE(std::filesystem::exists(g.dir / "p.img"));
}

TEST_CASE("xen save: a bare guest is paused from outside, as before") {
    ServedXenGuest g(false);
    const std::size_t start = g.journal->size();
    (void)control::request("xg", "save " + (g.dir / "xg.img").string() + " keep");
    CHECK(g.find("xenstore_write", start) == g.journal->size());
    CHECK(g.find("resume_cancelled", start) == g.journal->size());
    CHECK(g.domain->counters.pause_depth == 0);
}
