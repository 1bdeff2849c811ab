// Live migration (pre-copy) from a FakeBackend to a Secondary, over an in-memory link, with the
// sender and the receiver on their own threads as in the real tool.
#include <doctest/doctest.h>

#include <thread>

#include "tests/unit/pipeline_test_support.hpp"
#include "toolstack/replication/migration.hpp"

using namespace pipeline_test;

namespace {

struct Migration {
    FakeBackend source{"mig", kPages};
    FakeBackend destination{"mig", kPages};
    std::unique_ptr<MemoryChannel> sender_end, receiver_end;
    Log log;
    Released out;

    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::thread receiver;

    Migration() {
        auto ends = MemoryChannel::make_pair();
        sender_end = std::move(ends.first);
        receiver_end = std::move(ends.second);
        fill(source);
        source.set_vcpu_state(bytes_of("registers"));
        destination.pause();
    }
    ~Migration() {
        if (receiver.joinable()) receiver.join();
    }
    std::string receiver_error;  // what the receiving side threw, if anything

    // The receiving side on its own thread, as `receive` runs it; join() before looking at it.
    void start_receiver() {
        receiver = std::thread([this] {
            SecondaryConfig sc = secondary_config(ProtectionMode::colo);
            sc.log = log.fn();
            Secondary secondary(destination, *receiver_end, sc, out.sink());
            try {
                outcome = secondary.run();
            } catch (const Error& e) {
                receiver_error = e.what();
            }
        });
    }
};

}  // namespace

TEST_CASE("pipeline migration: pre-copy copies memory and state exactly while the guest writes") {
    Migration m;
    // The guest dirties 50 distinct pages in each of the first three rounds, then 5 (few enough to
    // stop), which the final, paused pass must carry.
    unsigned harvest = 0;
    m.source.on_harvest([&](FakeBackend& guest) {
        const unsigned round = harvest++;
        const std::uint64_t n = round < 3 ? 50 : (round == 3 ? 5 : 0);
        for (std::uint64_t k = 0; k < n; ++k) {
            guest.guest_write(Pfn{(round * 37 + k * 13) % kPages}, pattern(k, 10 + round));
        }
    });

    m.start_receiver();
    MigrateConfig mc;
    mc.precopy.stop_threshold_pages = 8;
    mc.precopy.batch_pages = 32;
    mc.precopy.auto_converge = false;  // rounds 2 and 3 are "slow"; the rounds here are the test's
    mc.log = m.log.fn();
    const MigrationResult result = migrate(m.source, *m.sender_end, mc);
    m.receiver.join();

    CHECK(m.outcome == Secondary::Outcome::migrated);
    CHECK(differing(m.source, m.destination, kPages).empty());
    CHECK(m.destination.vcpu_state() == m.source.vcpu_state());
    CHECK_FALSE(m.destination.paused());
    CHECK(m.source.paused());  // left for the caller to destroy
    CHECK(result.passes == 5);  // full, three dirty rounds, final
    CHECK(result.pages_sent == kPages + 3 * 50 + 5);
    CHECK(result.pages_final == 5);
    CHECK(result.bytes_sent == result.pages_sent * kPageSize + bytes_of("registers").size());
    CHECK(result.downtime <= result.total);
}

TEST_CASE("pipeline migration: what the guest prints the moment it runs on the destination is released there") {
    Migration m;
    m.destination.on_resume([](FakeBackend& guest) { guest.guest_print("first words\n"); });
    m.start_receiver();
    MigrateConfig mc;
    mc.log = m.log.fn();
    (void)migrate(m.source, *m.sender_end, mc);
    m.receiver.join();
    REQUIRE(m.outcome == Secondary::Outcome::migrated);
    CHECK(m.out.get() == "first words\n");
    CHECK(m.out.problems.empty());
}

TEST_CASE("pipeline migration: a disk moves with the guest: its blocks first, then its writes until the pause") {
    Migration m;
    constexpr std::uint64_t kDisk = 4 * 65536;
    FakeDisk& source = m.source.add_disk(kDisk);
    FakeDisk& destination = m.destination.add_disk(0);
    source.guest_write(65536, std::vector<std::byte>(65536, std::byte{0x42}));
    // The guest writes its disk while memory is pre-copied.
    m.source.on_harvest([&](FakeBackend&) { source.guest_write(3 * 65536, std::vector<std::byte>(512, std::byte{0x43})); });
    m.start_receiver();
    MigrateConfig mc;
    mc.log = m.log.fn();
    const MigrationResult result = migrate(m.source, *m.sender_end, mc);
    m.receiver.join();
    REQUIRE(m.outcome == Secondary::Outcome::migrated);
    CHECK(destination.image_bytes() == source.image_bytes());
    CHECK(destination.image_bytes()[3 * 65536] == std::byte{0x43});
    CHECK(result.disk_sync_bytes == 65536);  // only the block with data carried data
    CHECK(result.disk_write_bytes >= 512);
    // The destination's guest writes straight to its disk now.
    destination.guest_write(0, std::vector<std::byte>(512, std::byte{1}));
    CHECK(destination.image_bytes()[0] == std::byte{1});
}

TEST_CASE("pipeline migration: a destination disk slow to sync does not look like a dead receiver") {
    // The destination writes its copy back and syncs it before it acknowledges; on a busy host
    // that takes longer than the sender waits for a silent peer (CI saw the migration fail so).
    Migration m;
    FakeDisk& source = m.source.add_disk(2 * 65536);
    FakeDisk& destination = m.destination.add_disk(0);
    source.guest_write(0, std::vector<std::byte>(512, std::byte{0x42}));
    MigrateConfig mc;
    mc.log = m.log.fn();
    mc.link.heartbeat_period = Millis{20};
    mc.link.peer_timeout = Millis{150};
    // Each sync of the copy takes four times what the sender waits: only heartbeats sent while
    // it runs keep the link alive.
    destination.on_image_flush([] { std::this_thread::sleep_for(Millis{600}); });
    m.receiver = std::thread([&] {
        SecondaryConfig sc = secondary_config(ProtectionMode::colo);
        sc.log = m.log.fn();
        sc.link.heartbeat_period = Millis{20};
        Secondary secondary(m.destination, *m.receiver_end, sc, m.out.sink());
        try {
            m.outcome = secondary.run();
        } catch (const Error& e) {
            m.receiver_error = e.what();
        }
    });
    const MigrationResult result = migrate(m.source, *m.sender_end, mc);
    m.receiver.join();
    CHECK(m.receiver_error == "");
    CHECK(m.outcome == Secondary::Outcome::migrated);
    CHECK(destination.image_flushes() >= 1);
    CHECK(destination.image_bytes() == source.image_bytes());
    CHECK(result.disk_sync_bytes == 65536);
}

TEST_CASE("pipeline migration: the round limit ends pre-copy even when the guest never slows down") {
    Migration m;
    m.source.on_harvest([&](FakeBackend& guest) {
        for (std::uint64_t k = 0; k < 100; ++k) guest.guest_write(Pfn{k}, pattern(k, 3));
    });
    m.start_receiver();
    MigrateConfig mc;
    mc.precopy.max_rounds = 4;
    mc.precopy.auto_converge = false;
    mc.log = m.log.fn();
    const MigrationResult result = migrate(m.source, *m.sender_end, mc);
    m.receiver.join();
    CHECK(result.passes == 1 + 4 + 1);
    CHECK(result.pages_sent == kPages + 4 * 100);  // without the limit it would go on for 30 rounds
    CHECK(result.throttle_percent == 0);
    CHECK(m.source.counters().pauses == 1);  // the final pass only
    CHECK(differing(m.source, m.destination, kPages).empty());
}

TEST_CASE("pipeline migration: a dropped link leaves the guest running at the source") {
    Migration m;
    m.sender_end->drop_after(5);
    m.start_receiver();
    MigrateConfig mc;
    mc.precopy.batch_pages = 16;  // 16 batches: the link drops in the middle of the full pass
    mc.log = m.log.fn();
    CHECK_THROWS_WITH_AS((void)migrate(m.source, *m.sender_end, mc), doctest::Contains("the guest continues here"),
                         LinkDown);
    m.receiver.join();
    CHECK_FALSE(m.source.paused());
    CHECK(m.receiver_error.find("before the guest was complete") != std::string::npos);
    CHECK(m.destination.paused());
}

TEST_CASE("pipeline migration: a wrong page count in migration-commit is refused") {
    Migration m;
    m.sender_end->alter_message(kPages / 16 + 1, [](protocol::Message& msg) {
        REQUIRE(std::holds_alternative<protocol::MigrationCommit>(msg));
        std::get<protocol::MigrationCommit>(msg).pages_total += 1;
    });
    m.start_receiver();
    MigrateConfig mc;
    mc.precopy.batch_pages = 16;
    mc.log = m.log.fn();
    // One full pass of 16 batches, no dirty rounds, one state record, then the commit.
    CHECK_THROWS_WITH_AS((void)migrate(m.source, *m.sender_end, mc),
                         doctest::Contains("receiver failed: secondary: migration-commit says 257 pages"), Error);
    m.receiver.join();
    CHECK(m.receiver_error == "secondary: migration-commit says 257 pages were sent, 256 arrived");
    CHECK_FALSE(m.source.paused());
}

TEST_CASE("pipeline migration: the NIC's host side moves with the guest, and comes back when the migration fails") {
    SUBCASE("migrated: the source gives its TAP up, the destination makes its own") {
        Migration m;
        FakeNic& source_nic = m.source.add_nic({}, true);
        FakeNic& destination_nic = m.destination.add_nic({}, false);
        source_nic.host_receive(bytes_of("before"));
        m.start_receiver();
        MigrateConfig mc;
        mc.log = m.log.fn();
        (void)migrate(m.source, *m.sender_end, mc);
        m.receiver.join();
        CHECK(m.outcome == Secondary::Outcome::migrated);
        CHECK_FALSE(source_nic.attached());
        CHECK(destination_nic.attached());
        CHECK(destination_nic.attaches() == 1);
        // The destination's guest has what the source's had received (it is device state).
        CHECK(destination_nic.received() == std::vector<FakeNic::Frame>{bytes_of("before")});
        // It announced the guest's new place (this vif names no IPv4 address: the IPv6 neighbour
        // advertisement and RARP), then is a plain NIC.
        CHECK(destination_nic.sent_to_host().size() == 2);
        destination_nic.guest_transmit(bytes_of("hello"));
        CHECK(destination_nic.sent_to_host().back() == bytes_of("hello"));
    }
    SUBCASE("the receiver refuses the end: the source takes its TAP back and runs on") {
        Migration m;
        FakeNic& source_nic = m.source.add_nic({}, true);
        m.destination.add_nic({}, false);
        m.destination.fail_call(FakeBackend::Call::restore_state);
        m.start_receiver();
        MigrateConfig mc;
        mc.log = m.log.fn();
        CHECK_THROWS((void)migrate(m.source, *m.sender_end, mc));
        m.receiver.join();
        CHECK(source_nic.attached());
        CHECK(source_nic.attaches() == 1);
        CHECK_FALSE(m.source.paused());
    }
}
