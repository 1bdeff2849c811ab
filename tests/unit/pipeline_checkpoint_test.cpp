// COLO/Remus checkpoints between a Primary and a Secondary over FakeBackends, driven step by step
// from one thread (Pair in pipeline_test_support.hpp).
#include <doctest/doctest.h>

#include <sched.h>

#include <thread>

#include "tests/unit/pipeline_test_support.hpp"

using namespace pipeline_test;

namespace {

void write_pages(FakeBackend& guest, std::uint64_t first, std::uint64_t count, unsigned generation) {
    for (std::uint64_t p = first; p < first + count; ++p) guest.guest_write(Pfn{p}, pattern(p, generation));
}

}  // namespace

TEST_CASE("pipeline checkpoint: entering COLO and each checkpoint make the SVM equal to the PVM") {
    for (const auto mode : {ProtectionMode::colo, ProtectionMode::remus}) {
        CAPTURE(to_string(mode));
        Pair pair(primary_config(mode), secondary_config(mode));
        pair.protect();
        CHECK(pair.primary->role() == Role::protecting);
        CHECK(pair.secondary->role() == Role::protecting);
        CHECK(differing(pair.pvm, pair.svm, kPages).empty());
        CHECK(pair.svm.vcpu_state() == bytes_of("vcpu@sync"));
        CHECK_FALSE(pair.pvm.paused());
        CHECK(pair.svm.paused() == (mode == ProtectionMode::remus));  // remus: the SVM never runs

        for (unsigned epoch = 1; epoch <= 3; ++epoch) {
            write_pages(pair.pvm, epoch * 10, 7, epoch);
            pair.pvm.set_vcpu_state(bytes_of("vcpu@" + std::to_string(epoch)));
            CHECK_FALSE(differing(pair.pvm, pair.svm, kPages).empty());
            REQUIRE(pair.checkpoint());
            CHECK(differing(pair.pvm, pair.svm, kPages).empty());
            CHECK(pair.svm.vcpu_state() == pair.pvm.vcpu_state());
            CHECK(pair.primary->status().epoch == epoch);
            CHECK(pair.secondary->status().epoch == epoch);
        }
        const auto stats = pair.primary->status();
        CHECK(stats.checkpoints == 3);
        CHECK(stats.pages_sent_paused == 3 * 7);  // streaming was never called: all sent paused
        CHECK(stats.pages_migrated == kPages);
        CHECK(stats.state == "protected");
        CHECK(stats.last_checkpoint.has_value());
        CHECK(pair.secondary->status().pages_flushed == 3 * 7);
    }
}

TEST_CASE("pipeline checkpoint: streamed pages go to the cache only and are not resent unless dirtied again") {
    Pair pair(primary_config(ProtectionMode::colo), secondary_config(ProtectionMode::colo));
    pair.protect();
    write_pages(pair.pvm, 0, 20, 1);
    CHECK(pair.primary->stream_pass() == 20);
    pair.settle();
    // In the cache, not in the SVM, until a checkpoint commits them.
    CHECK(std::memcmp(pair.secondary->cache().page(Pfn{3}).data(), pair.pvm.page(Pfn{3}).data(), kPageSize) == 0);
    CHECK(differing(pair.pvm, pair.svm, kPages).size() == 20);

    write_pages(pair.pvm, 15, 3, 2);  // dirtied again after streaming
    write_pages(pair.pvm, 100, 1, 2);
    REQUIRE(pair.checkpoint());
    CHECK(differing(pair.pvm, pair.svm, kPages).empty());
    const auto p = pair.primary->status();
    CHECK(p.pages_streamed == 20);
    CHECK(p.pages_sent_paused == 4);  // 15, 16, 17, 100
    const auto s = pair.secondary->status();
    CHECK(s.pages_received_streamed == 20);
    CHECK(s.pages_received_checkpoint == 4);
    CHECK(s.pages_flushed == 21);  // the union: 0..19 and 100
}

TEST_CASE("pipeline checkpoint: a streaming pass with fewer dirty pages than the threshold keeps them") {
    PrimaryConfig pc = primary_config(ProtectionMode::colo);
    pc.stream_min_pages = 10;
    Pair pair(pc, secondary_config(ProtectionMode::colo));
    pair.protect();
    write_pages(pair.pvm, 0, 4, 1);
    CHECK(pair.primary->stream_pass() == 0);
    CHECK(pair.primary->pending().count() == 4);
    write_pages(pair.pvm, 50, 6, 1);
    CHECK(pair.primary->stream_pass() == 10);
    CHECK(pair.primary->pending().empty());
    // Pages a pass kept back go with the checkpoint.
    write_pages(pair.pvm, 90, 3, 2);
    CHECK(pair.primary->stream_pass() == 0);
    REQUIRE(pair.checkpoint());
    CHECK(pair.primary->status().pages_sent_paused == 3);
    CHECK(differing(pair.pvm, pair.svm, kPages).empty());
}

TEST_CASE("pipeline checkpoint: pages the SVM dirtied itself are reverted at the next checkpoint") {
    Pair pair(primary_config(ProtectionMode::colo), secondary_config(ProtectionMode::colo));
    pair.protect();
    const auto before = snapshot(pair.pvm, kPages);
    pair.svm.guest_write(Pfn{5}, std::byte{0xEE});  // the SVM runs and diverges in memory
    pair.svm.guest_write(Pfn{200}, std::byte{0xEF});
    write_pages(pair.pvm, 30, 2, 1);
    REQUIRE(pair.checkpoint());
    CHECK(differing(pair.pvm, pair.svm, kPages).empty());
    CHECK(std::memcmp(pair.svm.page(Pfn{5}).data(), before.data() + 5 * kPageSize, kPageSize) == 0);
    const auto s = pair.secondary->status();
    CHECK(s.svm_dirty_reverted == 2);
    CHECK(s.pages_flushed == 4);
}

TEST_CASE("pipeline checkpoint: a link dropped mid-checkpoint leaves the SVM exactly at the last committed one") {
    for (const auto mode : {ProtectionMode::remus, ProtectionMode::colo}) {
        CAPTURE(to_string(mode));
        PrimaryConfig pc = primary_config(mode);
        pc.precopy.batch_pages = 4;
        Pair pair(pc, secondary_config(mode));
        pair.protect();
        write_pages(pair.pvm, 0, 8, 1);
        pair.pvm.set_vcpu_state(bytes_of("vcpu@1"));
        REQUIRE(pair.checkpoint());
        const auto committed = snapshot(pair.svm, kPages);

        write_pages(pair.pvm, 40, 20, 2);  // 5 batches of 4
        pair.pvm.set_vcpu_state(bytes_of("vcpu@2"));
        // checkpoint-begin and two page batches get through; then the link drops.
        pair.to_secondary->drop_after(3);
        pair.primary->send_checkpoint();
        CHECK(pair.primary->role() == Role::unprotected);
        CHECK(pair.log.has("continues UNPROTECTED"));
        // Nothing harvested for the failed checkpoint is lost.
        CHECK(pair.primary->pending().count() == 20);
        CHECK(pair.primary->pending().test(Pfn{40}));
        CHECK(pair.primary->pending().test(Pfn{59}));

        CHECK(pair.settle() == Secondary::Outcome::failed_over);
        CHECK(pair.secondary->role() == Role::active);
        CHECK(pair.secondary->status().pages_received_checkpoint == 8 + 8);  // checkpoint 1, and what arrived of 2
        CHECK(snapshot(pair.svm, kPages) == committed);
        CHECK(pair.svm.vcpu_state() == bytes_of("vcpu@1"));
        CHECK_FALSE(pair.svm.paused());  // it is the guest now
        CHECK(pair.log.has("takes over from checkpoint 1"));
    }
}

TEST_CASE("pipeline checkpoint: a failed streaming send keeps every harvested page") {
    PrimaryConfig pc = primary_config(ProtectionMode::colo);
    pc.precopy.batch_pages = 4;
    Pair pair(pc, secondary_config(ProtectionMode::colo));
    pair.protect();
    write_pages(pair.pvm, 60, 20, 1);
    pair.to_secondary->drop_after(2);
    CHECK(pair.primary->stream_pass() == 0);
    CHECK(pair.primary->pending().count() == 20);
    CHECK(pair.primary->role() == Role::unprotected);
}

TEST_CASE("pipeline checkpoint: altered messages are rejected with a clear error and never touch the SVM") {
    struct Case {
        const char* what;
        std::uint64_t index;  // message of the checkpoint: 0 begin, 1.. batches, then state, output, end
        std::function<void(protocol::Message&)> alter;
        std::string error;
    };
    const std::vector<Case> cases = {
        {"wrong page count", 4,
         [](protocol::Message& m) { std::get<protocol::CheckpointEnd>(m).pages += 1; },
         "secondary: checkpoint-end for epoch 1 claims 17 pages, 1 state and 1 device records; epoch 1 brought 16, "
         "1 and 1"},
        {"wrong epoch", 0, [](protocol::Message& m) { std::get<protocol::CheckpointBegin>(m).epoch = 5; },
         "secondary: checkpoint-begin for epoch 5, expected 1"},
        {"frame outside memory", 1,
         [](protocol::Message& m) { std::get<protocol::PageBatch>(m).frames[3] = Pfn{kPages + 9}; },
         "replication: page-batch names frame 265, outside guest memory"},
        {"short page data", 1, [](protocol::Message& m) { std::get<protocol::PageBatch>(m).data.resize(100); },
         "replication: page-batch carries 100 bytes for 16 frames (expected 65536)"},
        {"message out of place", 2, [](protocol::Message& m) { m = protocol::EnterColo{1}; },
         "secondary: unexpected enter-colo in phase checkpoint"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Pair pair(primary_config(ProtectionMode::colo), secondary_config(ProtectionMode::colo));
        pair.protect();
        const auto before = snapshot(pair.svm, kPages);
        write_pages(pair.pvm, 0, 16, 1);  // one batch of 16
        pair.pvm.set_vcpu_state(bytes_of("vcpu@1"));
        pair.to_secondary->alter_message(c.index, c.alter);
        pair.primary->send_checkpoint();
        CHECK_THROWS_WITH_AS(pair.settle(), c.error.c_str(), Error);
        CHECK(pair.secondary->role() == Role::stopped);
        CHECK(snapshot(pair.svm, kPages) == before);
        CHECK(pair.svm.vcpu_state() == bytes_of("vcpu@sync"));
        // The primary hears why and carries on alone; the secondary does not take over.
        CHECK_FALSE(pair.primary->await_checkpoint());
        CHECK(pair.primary->role() == Role::unprotected);
        CHECK(pair.primary->status().protection_lost_reason == "the secondary failed: " + c.error);
    }
}

TEST_CASE("pipeline checkpoint: switching streaming off sends every dirty page while paused") {
    for (const bool stream : {true, false}) {
        CAPTURE(stream);
        PrimaryConfig pc = primary_config(ProtectionMode::colo);
        pc.stream = stream;
        Pair pair(pc, secondary_config(ProtectionMode::colo));
        pair.protect();
        write_pages(pair.pvm, 0, 30, 1);
        (void)pair.primary->stream_pass();
        pair.settle();
        REQUIRE(pair.checkpoint());
        CHECK(differing(pair.pvm, pair.svm, kPages).empty());
        const auto p = pair.primary->status();
        CHECK(p.pages_streamed == (stream ? 30 : 0));
        CHECK(p.pages_sent_paused == (stream ? 0 : 30));
    }
}

TEST_CASE("pipeline checkpoint: switching cache backup off copies all memory into the cache while paused") {
    for (const bool backup : {true, false}) {
        CAPTURE(backup);
        SecondaryConfig sc = secondary_config(ProtectionMode::colo);
        sc.cache_backup = backup;
        Pair pair(primary_config(ProtectionMode::colo), sc);
        pair.protect();
        CHECK(pair.secondary->status().pages_copied_entering_colo == (backup ? 0 : kPages));
        write_pages(pair.pvm, 7, 3, 1);
        REQUIRE(pair.checkpoint());
        CHECK(differing(pair.pvm, pair.svm, kPages).empty());
    }
}

TEST_CASE("pipeline checkpoint: switching early resume off keeps the PVM paused while the checkpoint is sent") {
    for (const bool early : {true, false}) {
        CAPTURE(early);
        PrimaryConfig pc = primary_config(ProtectionMode::colo);
        pc.early_resume = early;
        Pair pair(pc, secondary_config(ProtectionMode::colo));
        pair.protect();
        write_pages(pair.pvm, 0, 40, 1);
        bool paused_while_sending = false;
        // The last message of the checkpoint: begin, 3 batches, 1 state record, output, end.
        pair.to_secondary->alter_message(6, [&](protocol::Message& m) {
            REQUIRE(std::holds_alternative<protocol::CheckpointEnd>(m));
            paused_while_sending = pair.pvm.paused();
        });
        REQUIRE(pair.checkpoint());
        CHECK(paused_while_sending == !early);
        CHECK_FALSE(pair.pvm.paused());
        CHECK(differing(pair.pvm, pair.svm, kPages).empty());
    }
}

TEST_CASE("pipeline checkpoint: the pause runs at real-time priority unless switched off, and status says which") {
    for (const bool realtime : {true, false}) {
        CAPTURE(realtime);
        PrimaryConfig pc = primary_config(ProtectionMode::colo);
        pc.realtime_pause = realtime;
        Pair pair(pc, secondary_config(ProtectionMode::colo));
        CHECK(pair.pvm.realtime_pause() == realtime);  // the backend's own threads too (vCPUs)
        pair.protect();
        const unsigned saves_before = pair.pvm.counters().saves;
        for (int i = 0; i < 3; ++i) {
            write_pages(pair.pvm, 0, 4, static_cast<unsigned>(i + 1));
            REQUIRE(pair.checkpoint());
        }
        const auto stats = pair.primary->status();
        const unsigned saves = pair.pvm.counters().saves - saves_before;
        CHECK(saves == 3);
        if (!realtime) {
            CHECK(stats.pause_realtime == "off");
            CHECK(pair.pvm.counters().realtime_saves == 0);
        } else if (stats.pause_realtime == "on") {
            CHECK(pair.pvm.counters().realtime_saves == saves);  // the checkpoints', not the initial sync's
        } else {
            CHECK(stats.pause_realtime.rfind("refused: ", 0) == 0);  // not allowed here
            CHECK(pair.pvm.counters().realtime_saves == 0);
        }
        CHECK(::sched_getscheduler(0) != SCHED_FIFO);  // the pipeline's thread is back to its own
        CHECK(stats.pause_stop_p99.count() >= 0);
    }
}

TEST_CASE("pipeline checkpoint: the receiver is configured from the sender's replication-setup") {
    for (const auto mode : {ProtectionMode::colo, ProtectionMode::remus}) {
        for (const bool backup : {true, false}) {
            CAPTURE(to_string(mode));
            CAPTURE(backup);
            PrimaryConfig pc = primary_config(mode);
            pc.cache_backup = backup;
            const SecondaryConfig sc = secondary_config_for(setup_for_protection(pc), secondary_config(ProtectionMode::colo));
            CHECK(sc.link.peer_timeout == Millis{20000});  // kept from the base
            Pair pair(pc, sc);
            pair.protect();
            CHECK(pair.svm.paused() == (mode == ProtectionMode::remus));
            CHECK(pair.secondary->status().pages_copied_entering_colo == (backup ? 0 : kPages));
        }
    }
    const SecondaryConfig migration = secondary_config_for(setup_for_migration());
    CHECK_FALSE(migration.cache_backup);
    protocol::ReplicationSetup bad;
    bad.purpose = static_cast<protocol::ReplicationPurpose>(7);
    CHECK_THROWS_WITH_AS((void)secondary_config_for(bad), "replication-setup: unknown purpose 7", Error);
}

TEST_CASE("pipeline checkpoint: guest memory that does not start at frame 0 is copied frame for frame") {
    constexpr std::uint64_t kFirst = 100, kCount = 48;
    FakeBackend pvm("offset", kCount, Pfn{kFirst}), svm("offset", kCount, Pfn{kFirst});
    for (std::uint64_t p = kFirst; p < kFirst + kCount; ++p) pvm.guest_write(Pfn{p}, pattern(p, 0));
    svm.pause();
    auto [to_secondary, to_primary] = MemoryChannel::make_pair();
    Log log;
    Released out;
    PrimaryConfig pc = primary_config(ProtectionMode::remus);
    pc.log = log.fn();
    SecondaryConfig sc = secondary_config(ProtectionMode::remus);
    sc.cache_backup = false;  // the cache is filled from the SVM's regions on entry
    sc.log = log.fn();
    Primary primary(pvm, *to_secondary, pc, out.sink());
    Secondary secondary(svm, *to_primary, sc, out.sink());
    primary.send_initial_sync();
    REQUIRE(secondary.process(Secondary::Clock::now()) == Secondary::Outcome::running);
    REQUIRE(primary.await_colo_entry());
    CHECK(primary.status().pages_migrated == kCount);
    CHECK(secondary.status().pages_copied_entering_colo == kCount);
    for (std::uint64_t p = kFirst + 5; p < kFirst + 9; ++p) pvm.guest_write(Pfn{p}, pattern(p, 1));
    primary.send_checkpoint();
    (void)secondary.process(Secondary::Clock::now());
    REQUIRE(primary.await_checkpoint());
    CHECK(primary.status().pages_sent_paused == 4);
    for (std::uint64_t p = kFirst; p < kFirst + kCount; ++p) {
        CAPTURE(p);
        CHECK(std::memcmp(pvm.page(Pfn{p}).data(), svm.page(Pfn{p}).data(), kPageSize) == 0);
    }
    CHECK(std::memcmp(secondary.cache().page(Pfn{kFirst + 6}).data(), pvm.page(Pfn{kFirst + 6}).data(), kPageSize) == 0);
    CHECK_THROWS_WITH_AS((void)secondary.cache().page(Pfn{kFirst - 1}), "ram cache: frame 99 is outside guest memory", Error);
}

TEST_CASE("pipeline checkpoint: -i is the period between checkpoint starts; a late acknowledgement is an overrun") {
    using namespace std::chrono_literals;
    PrimaryConfig pc = primary_config(ProtectionMode::remus);
    pc.checkpoint_interval = Millis{200};
    Pair pair(pc, secondary_config(ProtectionMode::remus));
    pair.protect();
    // Acknowledged at once: the next is due 200 ms after this one paused the PVM, not after its
    // acknowledgement came.
    const auto before = Primary::Clock::now();
    pair.primary->send_checkpoint();
    const auto sent = Primary::Clock::now();
    pair.settle();
    REQUIRE(pair.primary->await_checkpoint());
    CHECK_FALSE(pair.primary->checkpoint_due(before + 199ms));
    CHECK(pair.primary->checkpoint_due(sent + 200ms));
    CHECK(pair.primary->status().checkpoint_overruns == 0);
    // A secondary slower than the interval: the next checkpoint is due as soon as this one is
    // acknowledged, and the overrun is counted.
    pair.primary->send_checkpoint();
    const auto late = Primary::Clock::now() + 250ms;
    std::this_thread::sleep_until(late);  // the slow secondary (the scenario, not a wait for a condition)
    pair.settle();
    REQUIRE(pair.primary->await_checkpoint());
    CHECK(pair.primary->status().checkpoint_overruns == 1);
    CHECK(pair.primary->checkpoint_due(Primary::Clock::now()));
}
