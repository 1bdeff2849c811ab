// The receiving side's Xen domain (xen/incoming_domain.hpp) through the fake seam: built from the
// sender's libxl configuration under NAME--incoming and paused, destroyed when replication fails
// before takeover (after every mapping of it is gone), renamed to NAME on takeover when the name
// is free, and each failing libxl call reported with its name and errno.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>

#include "backends/error.hpp"
#include "backends/guest_config.hpp"
#include "tests/unit/error_of.hpp"
#include "tests/unit/xen_fake_domain.hpp"
#include "xen/incoming_domain.hpp"
#include "xen/xen_backend.hpp"

using colo::xen::FakeDomain;
using colo::xen::IncomingDomain;
using colo::xen::IncomingGuest;
using colo::xen::XenBackend;

using colo::test::system_error_of;

namespace {

constexpr colo::xen::DomainId kNewDomid = 12;
const std::string kJson = R"({"c_info": {"type": "pvh", "name": "web"}, "b_info": {"max_memkb": 131072}})";

struct Receiver {
    Receiver() {
        auto owned = std::make_unique<FakeDomain>(kNewDomid, 64);
        domain = owned.get();
        journal = domain->journal;
        calls = std::move(owned);
    }
    XenBackend& receive(const std::string& json = kJson) {
        backend = std::make_unique<XenBackend>(std::move(calls), IncomingGuest{"web", json, {}});
        return *backend;
    }
    FakeDomain* domain = nullptr;
    std::shared_ptr<std::vector<std::string>> journal;
    std::unique_ptr<colo::xen::XenCalls> calls;
    std::unique_ptr<XenBackend> backend;
};

std::ptrdiff_t last_index_of(const std::vector<std::string>& log, const std::string& op) {
    const auto it = std::find(log.rbegin(), log.rend(), op);
    return it == log.rend() ? -1 : static_cast<std::ptrdiff_t>(log.rend() - it) - 1;
}

}  // namespace

TEST_CASE("xen incoming: the domain is built from the sender's configuration as NAME--incoming, paused") {
    CHECK(colo::xen::incoming_name("web") == "web--incoming");
    Receiver r;
    XenBackend& b = r.receive();
    CHECK(r.domain->created_from == kJson);
    CHECK(r.domain->created_as == "web--incoming");
    CHECK(b.domain() == kNewDomid);
    CHECK(b.name() == "web");
    REQUIRE(b.incoming() != nullptr);
    CHECK(b.incoming()->current_name() == "web--incoming");
    // Paused as libxl left it: state may be restored at once, and resume undoes libxl's pause.
    CHECK(b.paused());
    CHECK(r.domain->counters.pauses == 0);
    b.resume();
    CHECK(r.domain->counters.unpauses == 1);
    CHECK_FALSE(r.domain->info.paused);
}

TEST_CASE("xen incoming: a backend destroyed before takeover destroys its domain, after unmapping it") {
    Receiver r;
    r.receive();
    REQUIRE(r.domain->live_mappings() > 0);
    r.backend.reset();
    const auto& log = *r.journal;
    const auto destroy = last_index_of(log, "destroy_domain");
    REQUIRE(destroy >= 0);
    CHECK(destroy > last_index_of(log, "unmap_foreign"));
    CHECK(log.back() == "destroyed with 0 mappings");
}

TEST_CASE("xen incoming: a domain that cannot be replicated is destroyed again by the constructor") {
    Receiver r;
    r.domain->info.hvm = false;  // e.g. the sender's config was a PV guest
    const std::string message = colo::test::error_of([&] { r.receive(); });
    CHECK(message.find("PV guest") != std::string::npos);
    CHECK(std::count(r.journal->begin(), r.journal->end(), "destroy_domain") == 1);
}

TEST_CASE("xen incoming: takeover renames the domain to NAME, and it then outlives the backend") {
    Receiver r;
    XenBackend& b = r.receive();
    const std::string note = b.commit_incoming();
    CHECK(note == "xen domain 12 renamed from 'web--incoming' to 'web'");
    CHECK(r.domain->names.count("web") == 1);
    CHECK(r.domain->names.count("web--incoming") == 0);
    CHECK(b.incoming()->current_name() == "web");
    CHECK(b.commit_incoming().empty());  // once only
    r.backend.reset();
    CHECK(std::count(r.journal->begin(), r.journal->end(), "destroy_domain") == 0);
    CHECK(std::count(r.journal->begin(), r.journal->end(), "rename_domain") == 1);
}

TEST_CASE("xen incoming: takeover on the host where the old primary still holds NAME keeps the distinct name") {
    Receiver r;
    r.domain->names["web"] = 3;  // the primary's domain, on the same host
    XenBackend& b = r.receive();
    const std::string note = b.commit_incoming();
    CHECK(note.find("keeps the name 'web--incoming'") != std::string::npos);
    CHECK(note.find("domain 3") != std::string::npos);
    CHECK(b.incoming()->current_name() == "web--incoming");
    CHECK(std::count(r.journal->begin(), r.journal->end(), "rename_domain") == 0);
    r.backend.reset();  // committed all the same: the guest runs here now
    CHECK(std::count(r.journal->begin(), r.journal->end(), "destroy_domain") == 0);
}

TEST_CASE("xen incoming: a failed rename is reported with its name and errno; the domain stays") {
    Receiver r;
    XenBackend& b = r.receive();
    r.domain->fail_next("rename_domain", EACCES);
    const auto e = system_error_of([&] { (void)b.commit_incoming(); });
    CHECK(e.operation() == "libxl_domain_rename");
    CHECK(e.error_number() == EACCES);
    CHECK(std::string(e.what()).find("'web--incoming' to 'web'") != std::string::npos);
    r.backend.reset();
    CHECK(std::count(r.journal->begin(), r.journal->end(), "destroy_domain") == 0);
}

TEST_CASE("xen incoming: failing libxl calls are reported with the call's name and errno") {
    SUBCASE("create") {
        Receiver r;
        r.domain->fail_next("create_domain", ENOMEM);
        const auto e = system_error_of([&] { r.receive(); });
        CHECK(e.operation() == "libxl_domain_create_new");
        CHECK(e.error_number() == ENOMEM);
        CHECK(std::string(e.what()).find("web--incoming") != std::string::npos);
        CHECK(std::count(r.journal->begin(), r.journal->end(), "destroy_domain") == 0);  // nothing was made
    }
    SUBCASE("configuration that is not libxl's JSON") {
        Receiver r;
        const auto e = system_error_of([&] { r.receive("name = \"web\""); });
        CHECK(e.operation() == "libxl_domain_config_from_json");
        CHECK(e.error_number() == EINVAL);
    }
    SUBCASE("retrieving the sender's configuration") {
        FakeDomain d(kNewDomid, 16);
        d.config_json = kJson;
        CHECK(d.domain_config(kNewDomid) == kJson);
        d.fail_next("domain_config", ESRCH);
        const auto e = system_error_of([&] { (void)d.domain_config(kNewDomid); });
        CHECK(e.operation() == "libxl_retrieve_domain_configuration");
        CHECK(e.error_number() == ESRCH);
    }
    SUBCASE("destroy, from the destructor: reported, never thrown") {
        Receiver r;
        r.receive();
        r.domain->fail_next("destroy_domain", EBUSY);
        r.backend.reset();
        CHECK(std::count(r.journal->begin(), r.journal->end(), "destroy_domain") == 1);
    }
    SUBCASE("destroy, called directly") {
        FakeDomain d(kNewDomid, 16);
        d.fail_next("destroy_domain", EBUSY);
        const auto e = system_error_of([&] { d.destroy_domain(kNewDomid); });
        CHECK(e.operation() == "libxl_domain_destroy");
        CHECK(e.error_number() == EBUSY);
    }
}

TEST_CASE("xen incoming: a NAME--incoming left by an earlier receive is refused, not reused") {
    Receiver r;
    r.domain->names["web--incoming"] = 5;
    const std::string message = colo::test::error_of([&] { r.receive(); });
    CHECK(message.find("'web--incoming' already exists") != std::string::npos);
    // The failed constructor freed the fake domain: what it did is read from its journal. The
    // domain of that name (someone else's) was neither taken over nor destroyed.
    r.domain = nullptr;
    CHECK(std::count(r.journal->begin(), r.journal->end(), "create_domain") == 0);
    CHECK(std::count(r.journal->begin(), r.journal->end(), "destroy_domain") == 0);
    CHECK(std::count(r.journal->begin(), r.journal->end(), "rename_domain") == 0);
}

TEST_CASE("xen incoming: the sender's domain_config reaches the receiver through the guest config text") {
    FakeDomain d(kNewDomid, 16);
    d.config_json = "{\n  \"c_info\": {\"name\": \"web's\"}\n}\n";  // newlines and both quotes
    XenBackend sender(std::make_unique<FakeDomain>(kNewDomid, 16), kNewDomid, "web");
    colo::GuestConfig config;
    config.name = "web";
    config.backend = "xen";
    config.domain_config = d.domain_config(kNewDomid);
    const auto parsed = colo::parse_guest_config(colo::format_guest_config(config), "sent");
    CHECK(parsed.domain_config == d.config_json);
    // A domain libxl keeps no configuration for gives no empty description, but an error.
    const auto e = system_error_of([&] { (void)sender.domain_config(); });
    CHECK(e.operation() == "libxl_domain_config_to_json");
    CHECK(e.error_number() == ENODATA);
    CHECK(colo::test::error_of([] {
              (void)colo::parse_guest_config("name = \"web\"\ndomain_config = \"7b0\"\n", "sent");
          }) == "sent:2: domain_config must be lower-case hex digits in pairs");
}
