// Arbitration on a witness (ownership_arbiter.hpp): when the link between primary and secondary
// is lost, each side claims the guest from the revision the primary's protect left, and exactly
// one goes live; while the witness cannot be reached, neither does. The witness here is an
// in-memory compare-and-swap store (tests/unit/fake_witness.hpp; the etcd client has its own tests
// against a real etcd, tests/witness/).
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "tests/unit/fake_witness.hpp"
#include "tests/unit/pipeline_test_support.hpp"
#include "toolstack/replication/failover_state.hpp"
#include "toolstack/replication/ownership_arbiter.hpp"

using namespace pipeline_test;
using colo::test::FakeWitness;

namespace {

struct Arbitrated {
    std::shared_ptr<FakeWitness> witness = std::make_shared<FakeWitness>();
    std::shared_ptr<OwnershipArbiter> primary_arbiter = std::make_shared<OwnershipArbiter>(witness, "guest", "primary A");
    std::shared_ptr<OwnershipArbiter> secondary_arbiter = std::make_shared<OwnershipArbiter>(witness, "guest", "secondary B");
    std::atomic<int> fenced{0};
    std::unique_ptr<Pair> pair;

    explicit Arbitrated(ProtectionMode mode) {
        PrimaryConfig pc = primary_config(mode);
        SecondaryConfig sc = secondary_config(mode);
        pc.link = sc.link = LinkConfig{Millis{20}, Millis{200}};
        pc.arbiter = primary_arbiter;
        pc.fenced = [this](const std::string&) { ++fenced; };
        sc.arbiter = secondary_arbiter;
        primary_arbiter->claim_at_protect();  // as PrimarySide::protect does before connecting
        pair = std::make_unique<Pair>(pc, sc);
        pair->protect();
        secondary_arbiter->learn_owner();  // as serve_incoming_guest does
    }
    // The link is gone both ways, neither process is: a partition.
    void partition() {
        pair->to_primary->close();
        pair->to_secondary->close();
    }
};

}  // namespace

TEST_CASE("witness: a partition with the primary asking first: the primary goes on, the secondary drops its replica") {
    Arbitrated a(ProtectionMode::remus);
    Pair& pair = *a.pair;
    pair.pvm.guest_print("held\n");
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary_out.get().empty());  // remus: held for a checkpoint
    a.partition();
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK(pair.primary_out.get() == "held\n");  // won: this copy is the guest, its output goes out
    CHECK_FALSE(pair.pvm.paused());
    CHECK(pair.primary->status().arbitration.rfind("won:", 0) == 0);
    CHECK(pair.secondary->process(Secondary::Clock::now() + Millis{2000}) == Secondary::Outcome::stopped);
    CHECK(pair.secondary->role() == Role::stopped);
    CHECK(pair.svm.paused());
    CHECK(pair.secondary->status().stopped_reason ==
          "the witness names primary A as the owner (the primary is alive): this replica is dropped");
    CHECK(a.fenced == 0);
    CHECK(a.witness->read_owner("guest").id == "primary A");
}

TEST_CASE("witness: a partition with the secondary asking first: it takes over and the primary stops for good, releasing nothing") {
    Arbitrated a(ProtectionMode::remus);
    Pair& pair = *a.pair;
    pair.pvm.guest_print("never released\n");
    pair.primary->poll(Primary::Clock::now());
    a.partition();
    CHECK(pair.secondary->process(Secondary::Clock::now() + Millis{2000}) == Secondary::Outcome::failed_over);
    CHECK(pair.secondary->role() == Role::active);
    CHECK(pair.secondary->status().arbitration.rfind("won:", 0) == 0);
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary->role() == Role::stopped);
    CHECK(pair.primary_out.get().empty());  // what the lost copy held never goes out
    CHECK(pair.pvm.paused());
    CHECK(a.fenced == 1);
    CHECK(pair.primary->status().protection_lost_reason.find(
              "the witness names secondary B as the owner (the secondary took over): this copy is stopped for good") !=
          std::string::npos);
    pair.pvm.guest_print("after\n");
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary_out.get().empty());
}

TEST_CASE("witness: while it cannot be reached the primary holds its output, paused, and goes on once it answers") {
    Arbitrated a(ProtectionMode::colo);
    Pair& pair = *a.pair;
    a.witness->set_reachable(false);
    a.partition();
    std::thread primary([&] { pair.primary->poll(Primary::Clock::now()); });
    // The status poll an operator would make: arbitrating, paused, and why.
    bool seen = false;
    for (int i = 0; i < 500 && !seen; ++i) {
        const PrimaryStats s = pair.primary->status();
        seen = s.state == "arbitrating" && s.arbitration.find("the witness cannot be reached: witness fake://witness: unreachable") != std::string::npos;
        if (!seen) std::this_thread::sleep_for(Millis{10});
    }
    CHECK(seen);
    CHECK(pair.pvm.paused());
    CHECK(pair.log.has("paused, its output held, until the witness answers"));
    a.witness->set_reachable(true);
    primary.join();
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK_FALSE(pair.pvm.paused());
}

TEST_CASE("witness: while it cannot be reached the secondary does not take over; once it answers, it does") {
    Arbitrated a(ProtectionMode::colo);
    Pair& pair = *a.pair;
    a.witness->set_reachable(false);
    a.partition();
    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::thread secondary([&] { outcome = pair.secondary->process(Secondary::Clock::now() + Millis{5000}); });
    bool seen = false;
    for (int i = 0; i < 500 && !seen; ++i) {
        seen = pair.secondary->status().arbitration.find("not taking over until the witness answers") != std::string::npos;
        if (!seen) std::this_thread::sleep_for(Millis{10});
    }
    CHECK(seen);
    CHECK(pair.secondary->role() == Role::failing_over);
    CHECK(pair.svm.paused());  // a COLO SVM stands still meanwhile
    a.witness->set_reachable(true);
    secondary.join();
    CHECK(outcome == Secondary::Outcome::failed_over);
    CHECK(pair.secondary->role() == Role::active);
}

TEST_CASE("witness: a waiting side gives up when stopped, and does not go live") {
    Arbitrated a(ProtectionMode::colo);
    Pair& pair = *a.pair;
    a.witness->set_reachable(false);
    a.partition();
    std::stop_source stop;
    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::thread secondary([&] { outcome = pair.secondary->run(stop.get_token()); });
    for (int i = 0; i < 500 && pair.secondary->role() != Role::failing_over; ++i) std::this_thread::sleep_for(Millis{10});
    CHECK(pair.secondary->role() == Role::failing_over);
    stop.request_stop();
    secondary.join();
    CHECK(outcome == Secondary::Outcome::stopped);
    CHECK(pair.secondary->role() == Role::stopped);
}

TEST_CASE("witness: the secondary needs the primary's claim; protect claims from whatever the key holds") {
    auto witness = std::make_shared<FakeWitness>();
    OwnershipArbiter secondary(witness, "g", "secondary");
    CHECK_THROWS_WITH(secondary.learn_owner(), doctest::Contains("names no owner of g"));
    OwnershipArbiter first(witness, "g", "primary 1");
    first.claim_at_protect();
    OwnershipArbiter second(witness, "g", "primary 2");  // e.g. the survivor, protected again
    second.claim_at_protect();
    CHECK(witness->read_owner("g").id == "primary 2");
    secondary.learn_owner();
    // The first primary's claim is stale now: it loses.
    CHECK(first.arbitrate([] { return false; }, [](const std::string&, bool) {}) == OwnershipArbiter::Verdict::lost);
    CHECK(first.winner() == "primary 2");
    witness->set_reachable(false);
    CHECK_THROWS_AS(second.claim_at_protect(), WitnessUnreachable);
    CHECK(OwnershipArbiter::owner_id("primary", "web").rfind("primary web@", 0) == 0);
}
