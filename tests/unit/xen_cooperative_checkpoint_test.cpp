// Cooperative checkpoints of a Xen guest with PV drivers (backends/guest_suspend.hpp,
// toolstack/replication/guest_suspend_device.hpp): which guests get them, the order of a
// checkpoint (suspend asked through xenstore, the guest suspended, paused, captured, resumed as
// "cancelled", unpaused), a guest that does not answer (checkpoint skipped, request withdrawn),
// and protection ending while the guest is suspended.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <thread>

#include "tests/unit/xen_pipeline_pair.hpp"
#include "toolstack/replication/guest_suspend_device.hpp"

using namespace colo;
using colo::xen::CheckpointStyle;
using colo::xen::FakeDomain;
using colo::xen::XenBackend;
using colo::xen::XenPair;

namespace {

constexpr const char* kShutdownNode = "/local/domain/3/control/shutdown";

std::unique_ptr<XenBackend> attach(bool pv_drivers, bool feature_suspend, CheckpointStyle style) {
    auto domain = std::make_unique<FakeDomain>(3, 64);
    domain->hvm_context = xen::make_hvm_context(1);
    if (pv_drivers) domain->make_cooperative();
    if (!feature_suspend) domain->xenstore.erase("/local/domain/3/control/feature-suspend");
    return std::make_unique<XenBackend>(std::move(domain), 3, "guest", xen::MapCache::kDefaultChunkPages, style);
}

// Position of the first `op` at or after `from` in the log (log.size() when absent).
std::size_t find_op(const std::vector<std::string>& log, const std::string& op, std::size_t from = 0) {
    return static_cast<std::size_t>(std::find(log.begin() + static_cast<std::ptrdiff_t>(from), log.end(), op) - log.begin());
}

void cooperative(FakeDomain& domain) { domain.make_cooperative(); }

}  // namespace

TEST_CASE("xen cooperative checkpoints: chosen for a guest with PV drivers that offers suspend, or as configured") {
    SUBCASE("auto: PV drivers and control/feature-suspend") {
        auto backend = attach(true, true, CheckpointStyle::automatic);
        CHECK(backend->cooperative_suspend() != nullptr);
        CHECK(backend->replication_caveat().empty());  // the takeover's resume rebinds everything
        CHECK(backend->cooperative_suspend()->how() == "xenstore /local/domain/3/control/shutdown");
    }
    SUBCASE("auto: PV drivers without feature-suspend stay transparent, with the caveat") {
        auto backend = attach(true, false, CheckpointStyle::automatic);
        CHECK(backend->cooperative_suspend() == nullptr);
        CHECK(backend->replication_caveat().find("event channels") != std::string::npos);
    }
    SUBCASE("auto: a bare guest is paused from outside") {
        auto backend = attach(false, false, CheckpointStyle::automatic);
        CHECK(backend->cooperative_suspend() == nullptr);
        CHECK(backend->replication_caveat().empty());
    }
    SUBCASE("transparent: never asked, and warned about") {
        auto backend = attach(true, true, CheckpointStyle::transparent);
        CHECK(backend->cooperative_suspend() == nullptr);
        CHECK_FALSE(backend->replication_caveat().empty());
    }
    SUBCASE("cooperative: refused for a guest that cannot suspend itself") {
        CHECK_THROWS_WITH_AS((void)attach(false, false, CheckpointStyle::cooperative),
                             doctest::Contains("checkpoint_style is \"cooperative\", but the guest cannot suspend itself"), Error);
    }
    CHECK_THROWS_WITH_AS((void)xen::parse_checkpoint_style("polite"), doctest::Contains("checkpoint_style must be"), Error);
}

TEST_CASE("xen cooperative checkpoints: suspended through xenstore before the pause, resumed as cancelled before the unpause") {
    XenPair pair(ProtectionMode::remus, cooperative);
    pair.protect();
    // The initial sync's final pause took the guest suspended too: the secondary's first replica
    // is one a resume rebuilds from.
    CHECK(pair.pvm_domain->counters.cancelled_resumes == 1);
    const auto& log = pair.pvm_domain->log;
    const std::size_t from = log.size();
    pair.checkpoint();
    REQUIRE(pair.primary->status().checkpoints == 1);
    const std::size_t ask = find_op(log, "xenstore_write", from);
    const std::size_t pause = find_op(log, "pause", from);
    const std::size_t capture = find_op(log, "hvm_get_context", from);
    const std::size_t resume = find_op(log, "resume_cancelled", from);
    const std::size_t unpause = find_op(log, "unpause", from);
    CHECK(ask < pause);
    CHECK(pause < capture);
    CHECK(capture < resume);
    CHECK(resume < unpause);
    CHECK(unpause < log.size());
    CHECK(pair.pvm_domain->xenstore[kShutdownNode].empty());  // the guest took the request
    CHECK_FALSE(pair.pvm_domain->info.shutdown);
    CHECK(pair.pvm_domain->counters.pause_depth == 0);
    CHECK(pair.pvm_domain->counters.cancelled_resumes == 2);
    const PrimaryStats stats = pair.primary->status();
    CHECK(stats.suspend_how == "xenstore /local/domain/3/control/shutdown");
    CHECK(stats.suspends == 2);
    CHECK(stats.suspend_timeouts == 0);
    CHECK(pair.secondary->status().checkpoints_applied >= 1);
}

TEST_CASE("xen cooperative checkpoints: a guest that does not suspend in time has its checkpoint skipped, not paused") {
    XenPair pair(ProtectionMode::remus, cooperative, [](PrimaryConfig& c) { c.suspend_timeout = Millis{30}; });
    pair.protect();
    pair.pvm_domain->make_cooperative(false);  // from now on it ignores the request
    const std::size_t pauses = pair.pvm_domain->counters.pauses;
    CHECK_FALSE(pair.primary->send_checkpoint());
    CHECK(pair.primary->role() == Role::protecting);
    CHECK(pair.pvm_domain->counters.pauses == pauses);  // never paused
    CHECK(pair.pvm_domain->xenstore[kShutdownNode].empty());  // the request was withdrawn
    CHECK(pair.primary->status().suspend_timeouts == 1);
    CHECK(pair.primary->status().checkpoints == 0);
    // It answers again: the next checkpoint goes.
    pair.pvm_domain->make_cooperative(true);
    pair.checkpoint();
    CHECK(pair.primary->status().checkpoints == 1);
    CHECK(pair.primary->role() == Role::protecting);
}

TEST_CASE("xen cooperative checkpoints: a guest that takes a withdrawn request late is found suspended by the next checkpoint") {
    XenPair pair(ProtectionMode::remus, cooperative, [](PrimaryConfig& c) { c.suspend_timeout = Millis{30}; });
    pair.protect();
    pair.pvm_domain->make_cooperative(false);
    CHECK_FALSE(pair.primary->send_checkpoint());
    // It suspends after all, later: the next checkpoint asks nothing more of it than to be so.
    pair.pvm_domain->info.shutdown = true;
    pair.pvm_domain->info.shutdown_reason = xen::kShutdownSuspend;
    pair.checkpoint();
    CHECK(pair.primary->status().checkpoints == 1);
    CHECK_FALSE(pair.pvm_domain->info.shutdown);
    CHECK(pair.pvm_domain->counters.pause_depth == 0);
}

TEST_CASE("xen cooperative checkpoints: a guest that does not suspend for the initial sync fails protect, running") {
    XenPair pair(ProtectionMode::remus, [](FakeDomain& d) { d.make_cooperative(false); },
                 [](PrimaryConfig& c) { c.suspend_timeout = Millis{30}; });
    pair.primary->send_initial_sync();
    pair.settle();
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK(pair.primary->status().protection_lost_reason.find("did not suspend within 30 ms when asked through xenstore") !=
          std::string::npos);
    CHECK(pair.pvm_domain->counters.pause_depth == 0);
    CHECK_FALSE(pair.pvm_domain->info.shutdown);
}

TEST_CASE("xen cooperative checkpoints: protection lost while the guest is suspended resumes it as cancelled, then unpaused") {
    XenPair pair(ProtectionMode::remus, cooperative);
    pair.protect();
    pair.pvm_domain->fail_next("hvm_get_context", EIO);
    pair.checkpoint();
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK_FALSE(pair.pvm_domain->info.shutdown);  // not left suspended
    CHECK(pair.pvm_domain->counters.pause_depth == 0);
    CHECK_FALSE(pair.pvm->paused());
}

TEST_CASE("xen cooperative checkpoints: COLO mode is refused with the way out named") {
    CHECK_THROWS_WITH_AS(XenPair(ProtectionMode::colo, cooperative), doctest::Contains("only Remus mode supports: protect it with --remus"),
                         Error);
}

TEST_CASE("xen cooperative checkpoints: a guest that offers a suspend event channel is notified on it, not through xenstore") {
    XenPair pair(ProtectionMode::remus, [](FakeDomain& d) { d.offer_suspend_channel(7); });
    REQUIRE(pair.pvm->cooperative_suspend() != nullptr);
    CHECK(pair.pvm->cooperative_suspend()->how() == "suspend event channel (guest port 7)");
    CHECK(pair.pvm_domain->bound_ports.size() == 1);
    CHECK(pair.pvm_domain->bound_ports.begin()->second == 7);
    pair.protect();
    pair.checkpoint();
    CHECK(pair.primary->status().checkpoints == 1);
    CHECK(pair.pvm_domain->notifications == 2);  // the initial sync's final pause and the checkpoint
    CHECK(pair.pvm_domain->xenstore.count(kShutdownNode) == 0);  // never asked through xenstore
    CHECK(pair.pvm_domain->counters.cancelled_resumes == 2);
    CHECK_FALSE(pair.pvm_domain->info.shutdown);
}

TEST_CASE("xen cooperative checkpoints: a suspend event channel that is not a port number is refused with one line") {
    auto domain = std::make_unique<FakeDomain>(3, 64);
    domain->hvm_context = xen::make_hvm_context(1);
    domain->offer_suspend_channel(7);
    domain->xenstore["/local/domain/3/device/suspend/event-channel"] = "seven";
    CHECK_THROWS_WITH_AS(XenBackend(std::move(domain), 3, "guest"),
                         doctest::Contains("its device/suspend/event-channel is 'seven', not a port number"), Error);
}

namespace {

// A guest that takes a request only after the primary gave up on it: 300 ms to suspend against
// a timeout of 200 ms (and as long again for a request it took).
constexpr Millis kLateTimeout{200};
constexpr Millis kLateDelay{300};

bool suspended_now(XenPair& pair) { return pair.pvm->cooperative_suspend()->suspended(); }

}  // namespace

TEST_CASE("xen cooperative checkpoints: a guest that takes a request late suspends once, for the next checkpoint, and is left running") {
    for (const bool channel : {false, true}) {
    CAPTURE(channel);
    XenPair pair(
        ProtectionMode::remus, [&](FakeDomain& d) { channel ? d.offer_suspend_channel(7) : d.make_cooperative(); },
        [](PrimaryConfig& c) { c.suspend_timeout = kLateTimeout; });
    pair.protect();
    pair.pvm_domain->take_requests_late(kLateDelay);
    CHECK_FALSE(pair.primary->send_checkpoint());  // skipped: it took the request, but too late
    CHECK(pair.primary->status().suspend_timeouts == 1);
    const std::uint64_t suspends = pair.primary->status().suspends;
    std::this_thread::sleep_for(kLateDelay);  // it suspends meanwhile
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary->status().suspends == suspends + 1);  // noticed between checkpoints
    pair.checkpoint();  // uses that suspension: the guest is asked nothing more
    CHECK(pair.primary->status().checkpoints == 1);
    CHECK(pair.pvm_domain->suspend_requests == 1);
    CHECK(pair.primary->status().suspend_timeouts == 1);
    // No request is left over for it to act on once resumed: it stays running.
    std::this_thread::sleep_for(kLateDelay + Millis{100});
    CHECK_FALSE(suspended_now(pair));
    CHECK(pair.pvm_domain->suspend_requests == 1);
    CHECK(pair.primary->role() == Role::protecting);
    }
}

TEST_CASE("xen cooperative checkpoints: protection ending while a late guest is on its way to suspend waits for it and resumes it") {
    XenPair pair(ProtectionMode::remus, cooperative, [](PrimaryConfig& c) { c.suspend_timeout = kLateTimeout; });
    pair.protect();
    pair.pvm_domain->take_requests_late(kLateDelay);
    CHECK_FALSE(pair.primary->send_checkpoint());
    const unsigned resumes = pair.pvm_domain->counters.cancelled_resumes;
    pair.primary->stop("test");
    CHECK(pair.pvm_domain->counters.cancelled_resumes == resumes + 1);
    std::this_thread::sleep_for(kLateDelay);
    CHECK_FALSE(suspended_now(pair));
    CHECK(pair.pvm_domain->counters.pause_depth == 0);
}

TEST_CASE("xen cooperative checkpoints: a save or migration whose guest takes the request late resumes it before it fails") {
    for (const bool channel : {false, true}) {
    CAPTURE(channel);
    auto domain = std::make_unique<FakeDomain>(3, 64);
    FakeDomain& fake = *domain;
    domain->hvm_context = xen::make_hvm_context(1);
    channel ? domain->offer_suspend_channel(7) : domain->make_cooperative();
    domain->take_requests_late(kLateDelay);
    XenBackend backend(std::move(domain), 3, "guest");
    GuestSuspend& guest = *backend.cooperative_suspend();
    CHECK_THROWS_WITH_AS(suspend_device::SuspendedGuest(guest, kLateTimeout),
                         doctest::Contains("did not suspend within 200 ms"), Error);
    CHECK(fake.counters.cancelled_resumes == 1);  // it suspended after all, and was resumed
    std::this_thread::sleep_for(kLateDelay);
    CHECK_FALSE(guest.suspended());  // not left suspended with nobody to resume it
    CHECK(fake.suspend_requests == 1);
    }
}

TEST_CASE("xen cooperative checkpoints: a guest that suspends as its request is withdrawn has its checkpoint, not a timeout") {
    XenPair pair(ProtectionMode::remus, cooperative, [](PrimaryConfig& c) { c.suspend_timeout = Millis{30}; });
    pair.protect();
    const std::uint64_t suspends = pair.primary->status().suspends;
    // It answers only just too late: as the request is taken back.
    pair.pvm_domain->on_xenstore_write = [&](const std::string& path, const std::string& value) {
        if (path != kShutdownNode || !value.empty()) return;
        pair.pvm_domain->info.shutdown = true;
        pair.pvm_domain->info.shutdown_reason = xen::kShutdownSuspend;
    };
    pair.checkpoint();
    const PrimaryStats stats = pair.primary->status();
    CHECK(stats.checkpoints == 1);
    CHECK(stats.suspend_timeouts == 0);
    CHECK(stats.suspends == suspends + 1);
    CHECK_FALSE(pair.pvm_domain->info.shutdown);
}
