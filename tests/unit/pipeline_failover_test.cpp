// Losing either side: the primary continues unprotected, the secondary takes over; peer timeouts,
// the forced failover request, the one-winner role change, and both sides' run loops on threads.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "tests/unit/pipeline_test_support.hpp"
#include "toolstack/replication/failover_state.hpp"

using namespace pipeline_test;

TEST_CASE("pipeline failover: when the secondary dies the primary continues unprotected and says so") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus));
    pair.protect();
    pair.pvm.guest_print("held\n");
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary_out.get().empty());  // remus: waiting for a checkpoint
    CHECK(pair.primary->status().output_held == 5);  // "held\n", in status for the operator

    pair.to_primary->close();  // the secondary's host is gone
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK(pair.log.has("colo primary: secondary lost (memory link: the peer is gone); guest guest continues UNPROTECTED"));
    CHECK(pair.primary_out.get() == "held\n");  // nothing left to wait for
    CHECK_FALSE(pair.pvm.paused());
    pair.pvm.guest_print("more\n");
    CHECK(pair.primary_out.get() == "held\nmore\n");
    CHECK(pair.primary->status().state == "unprotected");
    CHECK(pair.primary->status().protection_lost_reason == "memory link: the peer is gone");
}

TEST_CASE("pipeline failover: a silent secondary is declared dead after the peer timeout") {
    PrimaryConfig pc = primary_config(ProtectionMode::colo);
    pc.link = LinkConfig{Millis{20}, Millis{200}};
    Pair pair(pc, secondary_config(ProtectionMode::colo));
    pair.protect();
    // The secondary hangs: it never reads or answers again.
    pair.primary->poll(Primary::Clock::now() + Millis{2000});
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK(pair.primary->status().protection_lost_reason == "no message from it for 200 ms");
}

TEST_CASE("pipeline failover: a silent primary makes the secondary take over after the peer timeout") {
    SecondaryConfig sc = secondary_config(ProtectionMode::colo);
    sc.link = LinkConfig{Millis{20}, Millis{200}};
    Pair pair(primary_config(ProtectionMode::colo), sc);
    pair.protect();
    CHECK(pair.secondary->process(Secondary::Clock::now() + Millis{2000}) == Secondary::Outcome::failed_over);
    CHECK(pair.secondary->role() == Role::active);
    CHECK(pair.log.has("primary lost (no message from the primary for 200 ms)"));
}

TEST_CASE("pipeline failover: heartbeats that queued while the primary was busy sending are not silence") {
    PrimaryConfig pc = primary_config(ProtectionMode::colo);
    pc.link = LinkConfig{Millis{20}, Millis{200}};
    SecondaryConfig sc = secondary_config(ProtectionMode::colo);
    sc.link = pc.link;
    Pair pair(pc, sc);
    pair.protect();
    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::thread secondary([&] { outcome = pair.secondary->run(); });
    // Streaming passes for twice the peer timeout without reading a single message.
    const auto end = Primary::Clock::now() + Millis{400};
    for (unsigned generation = 1; Primary::Clock::now() < end; ++generation) {
        for (std::uint64_t p = 0; p < 4; ++p) pair.pvm.guest_write(Pfn{p}, pattern(p, generation));
        CHECK(pair.primary->stream_pass() == 4);
        std::this_thread::sleep_for(Millis{5});
    }
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary->role() == Role::protecting);
    pair.primary->stop("test over");
    secondary.join();
    CHECK(outcome == Secondary::Outcome::stopped);
}

TEST_CASE("pipeline failover: a forced failover takes over once; a second request changes nothing") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus));
    pair.protect();
    CHECK(pair.svm.paused());
    pair.secondary->request_failover();
    CHECK(pair.settle() == Secondary::Outcome::failed_over);
    CHECK_FALSE(pair.svm.paused());
    pair.secondary->request_failover();
    CHECK(pair.settle() == Secondary::Outcome::failed_over);
    CHECK(pair.svm.counters().resumes == 1);
    CHECK(pair.secondary->status().state == "active");
}

TEST_CASE("pipeline failover: a forced failover during the initial migration is refused") {
    Pair pair(primary_config(ProtectionMode::colo), secondary_config(ProtectionMode::colo));
    pair.secondary->request_failover();
    pair.primary->send_initial_sync();
    CHECK(pair.settle() == Secondary::Outcome::running);
    CHECK(pair.log.has("failover refused"));
    CHECK(pair.primary->await_colo_entry());
    CHECK(pair.settle() == Secondary::Outcome::running);  // the refused request does not linger
    CHECK(pair.secondary->role() == Role::protecting);
}

TEST_CASE("pipeline failover: the role changes by compare-and-swap with exactly one winner") {
    for (int trial = 0; trial < 20; ++trial) {
        FailoverState state(Role::protecting);
        std::atomic<int> winners{0};
        std::vector<std::thread> racers;
        for (int i = 0; i < 4; ++i) {
            racers.emplace_back([&] {
                if (state.transition(Role::protecting, Role::failing_over)) ++winners;
            });
        }
        for (auto& t : racers) t.join();
        CHECK(winners == 1);
        CHECK(state.role() == Role::failing_over);
    }
}

TEST_CASE("pipeline failover: the run loops checkpoint, stream and stop cleanly on their own threads") {
    PrimaryConfig pc = primary_config(ProtectionMode::colo);
    pc.link = LinkConfig{Millis{10}, Millis{2000}};
    pc.max_checkpoint_interval = Millis{30};
    pc.stream_period = Millis{5};
    SecondaryConfig sc = secondary_config(ProtectionMode::colo);
    sc.link = pc.link;
    Pair pair(pc, sc);
    std::uint64_t round = 0;
    pair.pvm.on_harvest([&](FakeBackend& guest) {  // runs on the primary's thread
        ++round;
        for (std::uint64_t k = 0; k < 8; ++k) guest.guest_write(Pfn{(round * 11 + k) % kPages}, pattern(k, round % 200));
        guest.guest_print("r" + std::to_string(round) + "\n");
    });
    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::thread secondary([&] { outcome = pair.secondary->run(); });
    std::jthread primary([&](std::stop_token stop) { pair.primary->run(stop); });
    for (int i = 0; i < 400 && pair.primary->status().checkpoints < 3; ++i) {
        std::this_thread::sleep_for(Millis{10});
    }
    primary.request_stop();
    primary.join();
    secondary.join();
    const auto p = pair.primary->status();
    const auto s = pair.secondary->status();
    CHECK(p.checkpoints >= 3);
    // The secondary's first report goes out with its first loop turn while protecting.
    REQUIRE(p.secondary.has_value());
    CHECK(p.secondary->epoch <= s.epoch);
    CHECK(p.secondary->checkpoints_applied <= s.checkpoints_applied);
    CHECK(p.pages_streamed > 0);
    CHECK(s.epoch >= p.epoch);  // the secondary applies before the primary hears of it
    CHECK(s.epoch <= p.epoch + 1);
    CHECK(outcome == Secondary::Outcome::stopped);
    CHECK(p.state == "stopped");
    CHECK(pair.log.has("the primary ended protection: stop requested"));
    CHECK(pair.primary_out.problems.empty());
}

TEST_CASE("pipeline failover: in the run loop a console divergence forces a checkpoint before the interval") {
    PrimaryConfig pc = primary_config(ProtectionMode::colo);
    pc.link = LinkConfig{Millis{10}, Millis{20000}};
    pc.max_checkpoint_interval = Millis{600000};  // only a divergence can cause a checkpoint
    SecondaryConfig sc = secondary_config(ProtectionMode::colo);
    sc.link = pc.link;
    Pair pair(pc, sc);
    std::thread secondary([&] { (void)pair.secondary->run(); });
    std::jthread primary([&](std::stop_token stop) { pair.primary->run(stop); });
    for (int i = 0; i < 500 && pair.primary->role() != Role::protecting; ++i) std::this_thread::sleep_for(Millis{10});
    REQUIRE(pair.primary->role() == Role::protecting);
    pair.pvm.guest_print("same;pvm\n");
    pair.svm.guest_print("same;svm\n");
    for (int i = 0; i < 500 && pair.primary->status().checkpoints == 0; ++i) std::this_thread::sleep_for(Millis{10});
    primary.request_stop();
    primary.join();
    secondary.join();
    const auto p = pair.primary->status();
    CHECK(p.checkpoints == 1);
    CHECK(p.divergence_checkpoints == 1);
    CHECK(pair.primary_out.get() == "same;pvm\n");  // the PVM's output, released by the checkpoint
}

TEST_CASE("pipeline failover: killing the primary's link mid-run makes the secondary take over") {
    PrimaryConfig pc = primary_config(ProtectionMode::remus);
    pc.link = LinkConfig{Millis{10}, Millis{2000}};
    pc.checkpoint_interval = Millis{10};
    SecondaryConfig sc = secondary_config(ProtectionMode::remus);
    sc.link = pc.link;
    Pair pair(pc, sc);
    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::thread secondary([&] { outcome = pair.secondary->run(); });
    std::jthread primary([&](std::stop_token stop) { pair.primary->run(stop); });
    for (int i = 0; i < 400 && pair.secondary->status().checkpoints_applied < 2; ++i) {
        std::this_thread::sleep_for(Millis{10});
    }
    pair.to_secondary->close();  // the primary's host loses its network
    secondary.join();
    primary.join();
    CHECK(outcome == Secondary::Outcome::failed_over);
    CHECK(pair.secondary->role() == Role::active);
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK_FALSE(pair.svm.paused());
}

TEST_CASE("pipeline failover: a primary that says goodbye and closes is not taken over") {
    SecondaryConfig sc = secondary_config(ProtectionMode::colo);
    sc.link.heartbeat_period = Millis{1};  // the secondary's next heartbeat hits the closed link first
    Pair pair(primary_config(ProtectionMode::colo), sc);
    pair.protect();
    pair.primary->stop("maintenance");
    std::this_thread::sleep_for(Millis{5});
    CHECK(pair.settle() == Secondary::Outcome::stopped);
    CHECK(pair.secondary->role() == Role::stopped);
    CHECK(pair.log.has("the primary ended protection: maintenance"));
    CHECK(pair.svm.paused());
}

TEST_CASE("pipeline failover: a secondary that fails and closes is reported with its own reason") {
    PrimaryConfig pc = primary_config(ProtectionMode::colo);
    pc.link.heartbeat_period = Millis{1};  // the primary's next heartbeat hits the closed link first
    Pair pair(pc, secondary_config(ProtectionMode::colo));
    pair.protect();
    pair.to_secondary->alter_message(0, [](protocol::Message& m) { m = protocol::CheckpointBegin{9}; });
    pair.primary->send_checkpoint();
    CHECK_THROWS_AS(pair.settle(), Error);
    std::this_thread::sleep_for(Millis{5});
    CHECK_FALSE(pair.primary->await_checkpoint());
    CHECK(pair.primary->status().protection_lost_reason ==
          "the secondary failed: secondary: checkpoint-begin for epoch 9, expected 1");
}

TEST_CASE("pipeline failover: a handover ends with the SVM exactly the paused PVM, and no goodbye") {
    for (const ProtectionMode mode : {ProtectionMode::remus, ProtectionMode::colo}) {
        CAPTURE(to_string(mode));
        PrimaryConfig pc = primary_config(mode);
        pc.link = LinkConfig{Millis{10}, Millis{2000}};
        pc.checkpoint_interval = Millis{10};
        pc.max_checkpoint_interval = Millis{10};
        SecondaryConfig sc = secondary_config(mode);
        sc.link = pc.link;
        Pair pair(pc, sc);
        std::uint64_t round = 0;
        pair.pvm.on_harvest([&](FakeBackend& guest) {
            ++round;
            for (std::uint64_t k = 0; k < 4; ++k) guest.guest_write(Pfn{(round * 7 + k) % kPages}, pattern(k, round % 200));
        });
        Secondary::Outcome outcome = Secondary::Outcome::running;
        std::thread secondary([&] { outcome = pair.secondary->run(); });
        std::jthread primary([&](std::stop_token stop) { pair.primary->run(stop); });
        for (int i = 0; i < 400 && pair.secondary->status().checkpoints_applied < 3; ++i) std::this_thread::sleep_for(Millis{10});
        REQUIRE(pair.secondary->status().checkpoints_applied >= 3);
        pair.primary->request_handover();
        primary.join();  // run() returns once it handed over
        secondary.join();
        CHECK(pair.primary->handed_over());
        CHECK(pair.primary->secondary_may_run());
        CHECK(pair.primary->status().state == "handed-over");
        CHECK(pair.pvm.paused());  // the PVM never runs again after its last checkpoint
        CHECK(outcome == Secondary::Outcome::failed_over);
        CHECK_FALSE(pair.log.has("the primary ended protection"));
        // The takeover starts from exactly where the PVM stopped.
        CHECK(differing(pair.pvm, pair.svm, kPages).empty());
        CHECK(pair.secondary->status().epoch == pair.primary->status().epoch);
    }
}

TEST_CASE("pipeline failover: with manual takeover a lost primary's replica waits, paused, for the order") {
    SecondaryConfig sc = secondary_config(ProtectionMode::colo);
    sc.link = LinkConfig{Millis{20}, Millis{200}};
    sc.manual_takeover = true;
    Pair pair(primary_config(ProtectionMode::colo), sc);
    pair.protect();
    const auto before = snapshot(pair.svm, kPages);
    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::jthread secondary([&](std::stop_token stop) { outcome = pair.secondary->run(stop); });
    pair.to_secondary->close();  // the primary's host is gone
    for (int i = 0; i < 400 && !pair.secondary->awaiting_takeover(); ++i) std::this_thread::sleep_for(Millis{5});
    REQUIRE(pair.secondary->awaiting_takeover());
    CHECK(pair.secondary->status().state == "primary-lost");
    CHECK(pair.svm.paused());
    CHECK(pair.log.has("takes over only on `colo-replicate failover guest` (takeover manual)"));
    // Past several peer timeouts nothing changes by itself.
    std::this_thread::sleep_for(Millis{600});
    CHECK(pair.secondary->status().state == "primary-lost");
    CHECK(snapshot(pair.svm, kPages) == before);
    pair.secondary->request_failover();
    secondary.join();
    CHECK(outcome == Secondary::Outcome::failed_over);
    CHECK(pair.secondary->role() == Role::active);
    CHECK_FALSE(pair.svm.paused());
}

TEST_CASE("pipeline failover: with manual takeover a stop while waiting drops the replica") {
    SecondaryConfig sc = secondary_config(ProtectionMode::remus);
    sc.link = LinkConfig{Millis{20}, Millis{200}};
    sc.manual_takeover = true;
    Pair pair(primary_config(ProtectionMode::remus), sc);
    pair.protect();
    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::jthread secondary([&](std::stop_token stop) { outcome = pair.secondary->run(stop); });
    pair.to_secondary->close();
    for (int i = 0; i < 400 && !pair.secondary->awaiting_takeover(); ++i) std::this_thread::sleep_for(Millis{5});
    REQUIRE(pair.secondary->awaiting_takeover());
    secondary.request_stop();
    secondary.join();
    CHECK(outcome == Secondary::Outcome::stopped);
    CHECK(pair.secondary->role() == Role::stopped);
    CHECK(pair.svm.paused());
}
