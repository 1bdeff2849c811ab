// Auto-converge: GuestThrottle pauses a running guest for part of every period, and the pre-copy
// raises it step by step while its rounds do not shrink.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "tests/unit/error_of.hpp"
#include "tests/unit/pipeline_test_support.hpp"
#include "toolstack/replication/guest_throttle.hpp"
#include "toolstack/replication/migration.hpp"
#include "toolstack/replication/precopy_sender.hpp"

using namespace pipeline_test;
using colo::test::error_of;

namespace {

// A FakeBackend seen through the Backend interface, where pause and resume from any thread but
// the test's own are only counted: the fake "guest" (its harvest hook) then dirties the same pages
// whenever the throttle happens to run, so the pre-copy's rounds are the same in every run.
class ThrottleProbe final : public Backend {
public:
    explicit ThrottleProbe(FakeBackend& guest) : guest_(guest) {}

    std::atomic<unsigned> throttle_pauses{0}, throttle_resumes{0}, failed_pauses{0};
    std::atomic<bool> fail_throttle_pause{false};

    [[nodiscard]] BackendKind kind() const override { return guest_.kind(); }
    [[nodiscard]] std::string name() const override { return guest_.name(); }
    [[nodiscard]] GuestMemory& memory() override { return guest_.memory(); }
    void pause() override {
        if (owner_ == std::this_thread::get_id()) return guest_.pause();
        if (fail_throttle_pause) {
            ++failed_pauses;
            throw Error("fake: pause failed");
        }
        ++throttle_pauses;
    }
    void resume() override {
        if (owner_ == std::this_thread::get_id()) return guest_.resume();
        ++throttle_resumes;
    }
    [[nodiscard]] bool paused() const override { return guest_.paused(); }
    void start_dirty_log() override { guest_.start_dirty_log(); }
    void stop_dirty_log() override { guest_.stop_dirty_log(); }
    void harvest_dirty(DirtyBitmap& into) override { guest_.harvest_dirty(into); }
    [[nodiscard]] std::vector<StateRecord> save_state() override { return guest_.save_state(); }
    void restore_state(std::span<const StateRecord> state) override { guest_.restore_state(state); }
    void set_console_sink(ConsoleSink sink) override { guest_.set_console_sink(std::move(sink)); }

private:
    FakeBackend& guest_;
    const std::thread::id owner_ = std::this_thread::get_id();
};

// A guest whose pause state any thread may read, which counts every resume that comes while the
// test's pipeline says it holds the guest paused: a pause undone behind the pipeline's back.
class HoldProbe final : public Backend {
public:
    explicit HoldProbe(FakeBackend& guest) : guest_(guest) {}

    std::atomic<bool> pipeline_holds{false};
    std::atomic<unsigned> pauses{0}, undone{0};

    [[nodiscard]] BackendKind kind() const override { return guest_.kind(); }
    [[nodiscard]] std::string name() const override { return guest_.name(); }
    [[nodiscard]] GuestMemory& memory() override { return guest_.memory(); }
    void pause() override {
        ++pauses;
        paused_ = true;
    }
    void resume() override {
        if (pipeline_holds) ++undone;
        paused_ = false;
    }
    [[nodiscard]] bool paused() const override { return paused_; }
    void start_dirty_log() override {}
    void stop_dirty_log() override {}
    void harvest_dirty(DirtyBitmap&) override {}
    [[nodiscard]] std::vector<StateRecord> save_state() override { return {}; }
    void restore_state(std::span<const StateRecord>) override {}
    void set_console_sink(ConsoleSink) override {}

private:
    FakeBackend& guest_;
    std::atomic<bool> paused_{false};
};

// Polls for up to five seconds (the throttle's thread runs on its own schedule).
template <typename Condition>
bool eventually(Condition condition) {
    for (int i = 0; i < 500; ++i) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return condition();
}

}  // namespace

TEST_CASE("guest throttle: pauses and resumes the guest while set, and leaves it running after stop") {
    FakeBackend guest{"guest", kPages};
    ThrottleProbe probe(guest);
    GuestThrottle throttle(probe, std::chrono::milliseconds(2));
    throttle.set_percent(50);
    CHECK(throttle.percent() == 50);
    CHECK(eventually([&] { return probe.throttle_pauses >= 3; }));
    throttle.stop();
    CHECK(probe.throttle_pauses == probe.throttle_resumes);  // never left paused
    const unsigned after_stop = probe.throttle_pauses;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(probe.throttle_pauses == after_stop);
    throttle.set_percent(50);  // a stopped throttle stays stopped
    CHECK(throttle.percent() == 50);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(probe.throttle_pauses == after_stop);
}

TEST_CASE("guest throttle: the pipeline's pause is never undone by a spell, and holds after stop") {
    FakeBackend guest{"guest", kPages};
    HoldProbe probe(guest);
    GuestThrottle throttle(probe, std::chrono::milliseconds(2));
    throttle.set_percent(90);  // spells of 1.8 ms in every 2 ms: most pauses land inside one
    REQUIRE(eventually([&] { return probe.pauses >= 3; }));
    for (int i = 0; i < 200; ++i) {
        throttle.pause_guest();
        probe.pipeline_holds = true;
        // The pipeline holds the guest across a spell's end (a final pass takes this long).
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        CHECK(probe.paused());
        probe.pipeline_holds = false;
        throttle.resume_guest();
    }
    CHECK(probe.undone == 0);
    // The final pass: paused through the throttle, then the throttle stops; the guest stays paused.
    throttle.pause_guest();
    probe.pipeline_holds = true;
    throttle.stop();
    CHECK(probe.paused());
    CHECK(probe.undone == 0);
}

TEST_CASE("guest throttle: the pipeline's resume during a spell lets the guest run once the spell ends") {
    FakeBackend guest{"guest", kPages};
    HoldProbe probe(guest);
    GuestThrottle throttle(probe, std::chrono::milliseconds(2));
    throttle.pause_guest();
    throttle.set_percent(99);
    throttle.resume_guest();  // the guest runs, apart from the spells
    REQUIRE(eventually([&] { return probe.pauses >= 3; }));
    throttle.stop();
    CHECK_FALSE(probe.paused());
}

TEST_CASE("guest throttle: percent is capped at 99, and 0 starts nothing") {
    FakeBackend guest{"guest", kPages};
    ThrottleProbe probe(guest);
    GuestThrottle throttle(probe, std::chrono::milliseconds(2));
    throttle.set_percent(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(probe.throttle_pauses == 0);
    throttle.set_percent(250);
    CHECK(throttle.percent() == 99);
}

TEST_CASE("guest throttle: a pause that fails on the throttle's thread is reported by stop") {
    FakeBackend guest{"guest", kPages};
    ThrottleProbe probe(guest);
    probe.fail_throttle_pause = true;
    GuestThrottle throttle(probe, std::chrono::milliseconds(2));
    throttle.set_percent(40);
    // The thread ends at its first pause; stop() must say why, once. (A fixed 20 ms wait here
    // stopped the throttle before its first pause on a busy machine.)
    REQUIRE(eventually([&] { return probe.failed_pauses >= 1; }));
    CHECK(error_of([&] { throttle.stop(); }) == "throttling the guest: fake: pause failed");
    CHECK_NOTHROW(throttle.stop());
}

TEST_CASE("pipeline migration: auto-converge raises the throttle while the rounds do not shrink") {
    // The guest rewrites the same 100 pages between any two harvests: every round carries 100
    // and finds 100 dirty again, so every round is slow. Two slow rounds raise the throttle:
    // 20% after round 2, then 40, 60, 80 and the cap of 95 after round 10.
    for (const bool auto_converge : {true, false}) {
        CAPTURE(auto_converge);
        FakeBackend source{"mig", kPages};
        FakeBackend destination{"mig", kPages};
        fill(source);
        source.set_vcpu_state(bytes_of("registers"));
        destination.pause();
        source.on_harvest([](FakeBackend& guest) {
            for (std::uint64_t k = 0; k < 100; ++k) guest.guest_write(Pfn{k}, pattern(k, 7));
        });
        ThrottleProbe probe(source);
        auto [sender_end, receiver_end] = MemoryChannel::make_pair();
        Log log;
        Released out;
        SecondaryConfig sc = secondary_config(ProtectionMode::colo);
        sc.log = log.fn();
        std::thread receiver([&] {
            Secondary secondary(destination, *receiver_end, sc, out.sink());
            (void)secondary.run();
        });
        MigrateConfig mc;
        mc.precopy.max_rounds = 12;
        mc.precopy.auto_converge = auto_converge;
        mc.log = log.fn();
        const MigrationResult result = migrate(probe, *sender_end, mc);
        receiver.join();
        CHECK(result.throttle_percent == (auto_converge ? 95u : 0u));
        CHECK(result.passes == 1 + 12 + 1);
        CHECK(differing(source, destination, kPages).empty());
        // Every spell resumed the guest, except one under way when the final pass paused it
        // through the throttle: that pause is the pipeline's now, and the spell leaves it alone.
        CHECK(probe.throttle_pauses - probe.throttle_resumes <= 1);
        if (!auto_converge) CHECK(probe.throttle_pauses == 0);
    }
}

TEST_CASE("pipeline migration: an out-of-range auto-converge throttle is refused before anything is sent") {
    PrecopyConfig config;
    config.throttle_max = 100;
    CHECK(error_of([&] { check_precopy_config(config); }) ==
          "replication: auto-converge throttle 20..100% is out of range (1..99, initial <= max)");
    config.throttle_max = 95;
    config.throttle_initial = 0;
    CHECK(error_of([&] { check_precopy_config(config); }) != "(no error)");
    config.auto_converge = false;
    CHECK(error_of([&] { check_precopy_config(config); }) == "(no error)");
}
