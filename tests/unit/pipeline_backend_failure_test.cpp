// Failure handling that always finishes: every Backend call the pipeline makes while a guest is
// protected (initial sync, COLO entry, a checkpoint with held output and dirty pages, a stream
// pass) is made to fail, one at a time, on the primary and on the secondary. Whatever fails, the
// sides end in states they report, the PVM runs, the peer is told, the console output reaches
// the sink exactly once and no harvested page is dropped.
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "tests/unit/pipeline_test_support.hpp"

using namespace pipeline_test;

namespace {

using Call = FakeBackend::Call;

constexpr std::uint64_t kWritten = 20;  // pages the guest writes before the checkpoint

PrimaryConfig config_for(ProtectionMode mode) {
    PrimaryConfig c = primary_config(mode);
    c.stream_min_pages = 1;
    return c;
}

// share_cache: the SVM's memory a copy-on-write view of the RAM cache (KVM), or a copy (Xen).
SecondaryConfig secondary_for(ProtectionMode mode, bool share_cache) {
    SecondaryConfig c = secondary_config(mode);
    c.share_cache = share_cache;
    return c;
}

// The life of a protected guest up to one committed checkpoint and one stream pass, driven step
// by step; it stops early where a side has ended.
struct Driven {
    std::string printed;         // what the guest printed
    std::vector<Pfn> written;    // the pages it wrote while protected
};

Driven drive(Pair& pair) {
    Driven d;
    const auto settle = [&] {
        try {
            (void)pair.settle();
        } catch (const Error&) {
            // The secondary failed: it has said so to the primary, which the next step hears.
        }
    };
    d.printed = "boot\n";
    pair.pvm.guest_print(d.printed);
    pair.primary->send_initial_sync();
    settle();
    if (!pair.primary->await_colo_entry()) {
        settle();
        return d;
    }
    d.printed += "held line\n";
    pair.pvm.guest_print("held line\n");
    for (std::uint64_t p = 0; p < kWritten; ++p) {
        pair.pvm.guest_write(Pfn{p}, pattern(p, 1));
        d.written.push_back(Pfn{p});
    }
    pair.primary->send_checkpoint();
    settle();
    if (!pair.primary->await_checkpoint()) {
        settle();
        return d;
    }
    pair.pvm.guest_write(Pfn{kWritten}, pattern(kWritten, 2));
    d.written.push_back(Pfn{kWritten});
    (void)pair.primary->stream_pass();
    settle();
    pair.primary->poll(Primary::Clock::now());  // a Failure the secondary sent last is read here
    settle();
    return d;
}

// Every (call, occurrence) the fault-free run makes on `guest`.
std::vector<std::pair<Call, unsigned>> calls_made(ProtectionMode mode, bool on_primary, bool share_cache) {
    Pair pair(config_for(mode), secondary_for(mode, share_cache));
    FakeBackend& guest = on_primary ? pair.pvm : pair.svm;
    const std::size_t from = guest.calls().size();
    drive(pair);
    REQUIRE(pair.primary->role() == Role::protecting);
    REQUIRE(pair.primary->status().checkpoints == 1);
    std::vector<std::pair<Call, unsigned>> out;
    std::map<Call, unsigned> seen;
    for (std::size_t i = from; i < guest.calls().size(); ++i) {
        const Call call = guest.calls()[i];
        out.emplace_back(call, seen[call]++);
    }
    return out;
}

void check_no_page_dropped(const Pair& pair, const std::vector<Pfn>& written) {
    // Every page the guest wrote is still in the backend's log (not harvested yet), pending, or
    // in the secondary's RAM cache.
    for (const Pfn pfn : written) {
        if (pair.pvm.unharvested(pfn) || pair.primary->pending().test(pfn)) continue;
        CAPTURE(pfn.value);
        CHECK(std::memcmp(pair.pvm.page(pfn).data(), pair.secondary->cache().page(pfn).data(), kPageSize) == 0);
    }
}

// For each mode, each call the fault-free run makes on one guest (the PVM's or the SVM's) fails
// in turn; `check` looks at the outcome, and what holds for every failure is checked here: the
// PVM runs, the SVM never took over, the console output reached the sink once and in order.
// `must_include` are the kinds of call the run has to have made, so none goes untried.
template <typename Check>
void each_failing_call(bool on_primary, const std::vector<Call>& must_include, Check check, bool share_cache = true) {
    for (const ProtectionMode mode : {ProtectionMode::colo, ProtectionMode::remus}) {
        const std::string mode_name = to_string(mode);
        CAPTURE(mode_name);
        CAPTURE(share_cache);
        std::set<Call> kinds;
        for (const auto& [call, occurrence] : calls_made(mode, on_primary, share_cache)) {
            kinds.insert(call);
            const std::string fault = std::string("fake ") + FakeBackend::name_of(call);
            CAPTURE(fault);
            CAPTURE(occurrence);
            Pair pair(config_for(mode), secondary_for(mode, share_cache));
            (on_primary ? pair.pvm : pair.svm).fail_call(call, occurrence);
            const Driven driven = drive(pair);
            check(pair, fault, driven);
            CHECK_FALSE(pair.pvm.paused());
            CHECK(pair.secondary_out.get().empty());
            // Nothing held is kept back, nothing is released twice.
            pair.pvm.guest_print("after\n");
            CHECK(pair.primary_out.get() == driven.printed + "after\n");
            CHECK(pair.primary_out.problems.empty());
        }
        for (const Call call : must_include) {
            const std::string call_name = FakeBackend::name_of(call);
            CAPTURE(call_name);
            CHECK(kinds.count(call) == 1);
        }
    }
}

}  // namespace

TEST_CASE("pipeline backend failure: whichever PVM call fails, the PVM runs unprotected and the secondary stands down") {
    each_failing_call(true,
                      {Call::pause, Call::harvest_dirty, Call::read_pages, Call::save_state, Call::resume,
                       Call::start_dirty_log, Call::checkpoint_committed},
                      [](Pair& pair, const std::string& fault, const Driven& driven) {
                          CHECK(pair.primary->role() == Role::unprotected);
                          CHECK(pair.primary->phase() == transaction::PrimaryPhase::unprotected);
                          CHECK(pair.primary->status().protection_lost_reason.find(fault) != std::string::npos);
                          // Told, the secondary stops instead of taking over.
                          CHECK(pair.secondary->role() == Role::stopped);
                          check_no_page_dropped(pair, driven.written);
                      });
}

TEST_CASE("pipeline backend failure: whichever SVM call fails, the secondary stops and says why; the PVM runs on") {
    const auto check = [](Pair& pair, const std::string& fault, const Driven&) {
        CHECK(pair.secondary->role() == Role::stopped);
        CHECK(pair.secondary->phase() == transaction::SecondaryPhase::failed);
        CHECK(pair.secondary->status().stopped_reason.find(fault) != std::string::npos);
        CHECK(pair.primary->role() == Role::unprotected);
        CHECK(pair.primary->status().protection_lost_reason.find("the secondary failed: ") == 0);
        CHECK(pair.primary->status().protection_lost_reason.find(fault) != std::string::npos);
    };
    // The SVM's memory a copy-on-write view of the RAM cache: a checkpoint drops its copies.
    each_failing_call(false,
                      {Call::drop_private_copies, Call::restore_state, Call::start_dirty_log, Call::pause,
                       Call::harvest_dirty, Call::checkpoint_committed},
                      check);
    // A copy of its own: pages are written into it.
    each_failing_call(false,
                      {Call::write_pages, Call::restore_state, Call::start_dirty_log, Call::pause,
                       Call::harvest_dirty, Call::checkpoint_committed},
                      check, false);
}

TEST_CASE("pipeline backend failure: save_state failing after the harvest keeps every harvested page pending") {
    Pair pair(config_for(ProtectionMode::colo), secondary_config(ProtectionMode::colo));
    pair.protect();
    for (std::uint64_t p = 0; p < kWritten; ++p) pair.pvm.guest_write(Pfn{p}, pattern(p, 3));
    pair.pvm.fail_call(Call::save_state);
    pair.primary->send_checkpoint();
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK(pair.primary->pending().count() == kWritten);
    for (std::uint64_t p = 0; p < kWritten; ++p) CHECK(pair.primary->pending().test(Pfn{p}));
}

TEST_CASE("pipeline backend failure: a failure in the run loop ends protection; the console is not held forever") {
    PrimaryConfig pc = config_for(ProtectionMode::remus);
    pc.link = LinkConfig{Millis{10}, Millis{5000}};
    pc.checkpoint_interval = Millis{20};
    pc.stream_period = Millis{5};
    SecondaryConfig sc = secondary_config(ProtectionMode::remus);
    sc.link = pc.link;
    Pair pair(pc, sc);
    std::uint64_t round = 0;
    pair.pvm.on_harvest([&](FakeBackend& guest) {  // runs on the primary's thread
        ++round;
        guest.guest_write(Pfn{round % kPages}, pattern(round, 1));
        guest.guest_print("r" + std::to_string(round) + "\n");
        if (round == 12) guest.fail_call(Call::save_state);  // a later checkpoint's state fails
    });
    Secondary::Outcome outcome = Secondary::Outcome::running;
    std::string secondary_error;
    std::thread secondary([&] {
        try {
            outcome = pair.secondary->run();
        } catch (const std::exception& e) {
            secondary_error = e.what();
        }
    });
    std::jthread primary([&](std::stop_token stop) { pair.primary->run(stop); });
    primary.join();  // run() returns by itself: the failure ended protection
    secondary.join();
    CHECK(pair.primary->role() == Role::unprotected);
    CHECK(pair.primary->status().protection_lost_reason.find("fake save_state") != std::string::npos);
    CHECK(outcome == Secondary::Outcome::stopped);
    CHECK(secondary_error.empty());
    CHECK(pair.log.has("the primary gave up on this secondary: primary dropped the secondary: fake save_state"));
    CHECK_FALSE(pair.pvm.paused());
    // Every line the guest printed went out, in order, once: the gate holds nothing back now.
    pair.pvm.guest_print("after\n");
    std::string expected;
    for (std::uint64_t r = 1; r <= round; ++r) expected += "r" + std::to_string(r) + "\n";
    CHECK(pair.primary_out.get() == expected + "after\n");
    CHECK(pair.primary_out.problems.empty());
}
