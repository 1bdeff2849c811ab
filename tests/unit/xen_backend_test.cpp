// The Xen backend against a fake domain behind the XenCalls seam: dirty logging, pause/resume,
// HVM context, console ring, and that every failing library call reaches the caller with the
// call's name and errno.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "backends/error.hpp"
#include "tests/unit/error_of.hpp"
#include "tests/unit/xen_fake_domain.hpp"
#include "xen/console_ring.hpp"
#include "xen/hvm_context.hpp"
#include "xen/xen_backend.hpp"

using colo::DirtyBitmap;
using colo::Pfn;
using colo::StateRecord;
using colo::xen::FakeDomain;
using colo::xen::XenBackend;

using colo::test::system_error_of;

namespace {

constexpr colo::xen::DomainId kDomid = 7;

struct Fixture {
    explicit Fixture(std::uint64_t frames = 300, std::uint64_t chunk = 64) {
        auto owned = std::make_unique<FakeDomain>(kDomid, frames);
        domain = owned.get();
        domain->hvm_context = colo::xen::make_hvm_context(1);
        calls = std::move(owned);
        chunk_pages = chunk;
    }
    XenBackend& attach() {
        backend = std::make_unique<XenBackend>(std::move(calls), kDomid, "guest", chunk_pages);
        return *backend;
    }
    FakeDomain* domain = nullptr;
    std::unique_ptr<colo::xen::XenCalls> calls;
    std::unique_ptr<XenBackend> backend;
    std::uint64_t chunk_pages = 64;
};

std::set<std::uint64_t> frames_of(const DirtyBitmap& b) {
    std::set<std::uint64_t> out;
    for (const Pfn p : b.frames()) out.insert(p.value);
    return out;
}


}  // namespace

TEST_CASE("xen backend: log-dirty rounds return exactly the pages written between them") {
    Fixture f;
    f.domain->make_hole(Pfn{200}, 20);
    XenBackend& b = f.attach();
    DirtyBitmap bits(b.memory().frame_limit());

    b.start_dirty_log();
    CHECK(f.domain->logdirty_on);
    for (std::uint64_t p : {0, 1, 63, 64, 150, 299}) f.domain->guest_write(Pfn{p}, std::byte{0x11});
    b.harvest_dirty(bits);
    CHECK(frames_of(bits) == std::set<std::uint64_t>{0, 1, 63, 64, 150, 299});

    bits.clear_all();
    for (std::uint64_t p : {5, 64, 199, 220}) f.domain->guest_write(Pfn{p}, std::byte{0x22});
    b.harvest_dirty(bits);
    CHECK(frames_of(bits) == std::set<std::uint64_t>{5, 64, 199, 220});

    bits.clear_all();
    b.harvest_dirty(bits);  // nothing written since: nothing dirty
    CHECK(bits.empty());
    CHECK(f.domain->counters.cleans == 3);

    // harvest ORs: bits already set by the pipeline stay set.
    bits.set(Pfn{3});
    f.domain->guest_write(Pfn{4}, std::byte{0x33});
    b.harvest_dirty(bits);
    CHECK(frames_of(bits) == std::set<std::uint64_t>{3, 4});

    b.stop_dirty_log();
    CHECK_FALSE(f.domain->logdirty_on);
    CHECK_THROWS_WITH_AS(b.harvest_dirty(bits), doctest::Contains("without start_dirty_log"), colo::Error);
}

TEST_CASE("xen backend: a page read after a harvest has the content the guest wrote") {
    Fixture f;
    XenBackend& b = f.attach();
    DirtyBitmap bits(b.memory().frame_limit());
    b.start_dirty_log();
    f.domain->guest_write(Pfn{42}, std::byte{0x5a});
    b.harvest_dirty(bits);
    b.pause();
    std::vector<std::byte> page(colo::kPageSize);
    const std::vector<Pfn> frames = bits.frames();
    REQUIRE(frames.size() == 1);
    b.memory().read_pages(frames, page);
    CHECK(page[0] == std::byte{0x5a});
    CHECK(page[colo::kPageSize - 1] == std::byte{0x5a});
}

TEST_CASE("xen backend: log-dirty already on is turned off and enabled again, as Xen's save code does") {
    Fixture f;
    f.domain->logdirty_on = true;  // left on by a run that died
    XenBackend& b = f.attach();
    f.domain->log.clear();
    b.start_dirty_log();
    CHECK(f.domain->log == std::vector<std::string>{"logdirty_enable", "logdirty_off", "logdirty_enable"});
    CHECK(f.domain->logdirty_on);

    // Once on, a second start is a no-op rather than another juggle.
    f.domain->log.clear();
    b.start_dirty_log();
    CHECK(f.domain->log.empty());
}

TEST_CASE("xen backend: enabling log-dirty that fails twice reports the second failure") {
    Fixture f;
    XenBackend& b = f.attach();
    f.domain->fail_next("logdirty_enable", EOPNOTSUPP, 2);
    const auto e = system_error_of([&] { b.start_dirty_log(); });
    CHECK(e.operation() == "xc_shadow_control(ENABLE_LOGDIRTY)");
    CHECK(e.error_number() == EOPNOTSUPP);
    CHECK(std::string(e.what()).find("domain 7") != std::string::npos);
    // Not logging: a harvest is refused, and the destructor will not turn off what is not on.
    DirtyBitmap bits(b.memory().frame_limit());
    CHECK_THROWS_AS(b.harvest_dirty(bits), colo::Error);
}

TEST_CASE("xen backend: a PV domain is refused with the reason; so is HVM on shadow paging") {
    SUBCASE("PV") {
        Fixture f;
        f.domain->info.hvm = false;
        f.domain->info.hap = false;
        CHECK_THROWS_WITH_AS(f.attach(), doctest::Contains("PV guest: dirty-page logging needs HAP"), colo::Error);
    }
    SUBCASE("HVM without HAP") {
        Fixture f;
        f.domain->info.hap = false;
        CHECK_THROWS_WITH_AS(f.attach(), doctest::Contains("needs HAP"), colo::Error);
    }
    SUBCASE("dying") {
        Fixture f;
        f.domain->info.dying = true;
        CHECK_THROWS_WITH_AS(f.attach(), doctest::Contains("shutting down"), colo::Error);
    }
}

TEST_CASE("xen backend: harvest needs a bitmap of the guest's size") {
    Fixture f;
    XenBackend& b = f.attach();
    b.start_dirty_log();
    DirtyBitmap wrong(b.memory().frame_limit() + 1);
    CHECK_THROWS_WITH_AS(b.harvest_dirty(wrong), doctest::Contains("dirty bitmap has"), colo::Error);
}

TEST_CASE("xen backend: pause and resume are idempotent and pair Xen's pause count") {
    Fixture f;
    XenBackend& b = f.attach();
    CHECK_FALSE(b.paused());
    b.pause();
    b.pause();
    CHECK(b.paused());
    CHECK(f.domain->counters.pauses == 1);
    b.resume();
    b.resume();
    CHECK_FALSE(b.paused());
    CHECK(f.domain->counters.unpauses == 1);
}

TEST_CASE("xen backend: callers on several threads never pause Xen twice or leave it paused") {
    // The pipeline, the throttle and the control thread may all pause and resume. Xen counts
    // pauses: a check-then-pause raced by a second caller pauses twice and then unpauses once.
    Fixture f;
    XenBackend& b = f.attach();
    std::atomic<unsigned> failures{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; ++t) {
        callers.emplace_back([&b, &failures] {
            for (int i = 0; i < 3000; ++i) {
                try {
                    b.pause();
                    (void)b.paused();
                    b.resume();
                } catch (const colo::Error&) {
                    ++failures;  // Xen refused an unpause of a domain nobody paused
                }
            }
        });
    }
    for (auto& caller : callers) caller.join();
    CHECK(failures == 0);
    CHECK(f.domain->counters.max_pause_depth == 1);
    CHECK(f.domain->counters.pause_depth == 0);
    CHECK(f.domain->counters.pauses == f.domain->counters.unpauses);
    CHECK_FALSE(b.paused());
}

TEST_CASE("xen backend: HVM context round trip into another domain") {
    Fixture primary;
    primary.domain->hvm_context = colo::xen::make_hvm_context(9);
    XenBackend& a = primary.attach();
    CHECK_THROWS_WITH_AS((void)a.save_state(), doctest::Contains("pause it first"), colo::Error);
    a.pause();
    const std::vector<StateRecord> state = a.save_state();
    REQUIRE(state.size() == 2);  // and the HVM params (xen_hvm_params_test.cpp)
    CHECK(state[1].tag == colo::xen::kHvmParamsTag);
    CHECK(state[0].tag == colo::xen::kHvmContextTag);
    CHECK(state[0].version == colo::xen::kHvmContextVersion);
    CHECK(state[0].data == primary.domain->hvm_context);

    Fixture secondary;
    XenBackend& s = secondary.attach();
    CHECK_THROWS_WITH_AS(s.restore_state(state), doctest::Contains("pause it first"), colo::Error);
    s.pause();
    s.restore_state(state);
    CHECK(secondary.domain->hvm_context == primary.domain->hvm_context);
    CHECK(secondary.domain->counters.set_contexts == 1);
    // And what the secondary now holds saves back to the same record.
    CHECK(s.save_state() == state);
}

TEST_CASE("xen backend: bad state records are refused before Xen sees them") {
    Fixture f;
    XenBackend& b = f.attach();
    b.pause();
    const auto good = colo::xen::make_hvm_context(3);

    std::vector<StateRecord> wrong_tag{StateRecord{99, 1, good}};
    CHECK_THROWS_WITH_AS(b.restore_state(wrong_tag), doctest::Contains("unknown state record tag 99"),
                         colo::Error);
    std::vector<StateRecord> wrong_version{StateRecord{colo::xen::kHvmContextTag, 2, good}};
    CHECK_THROWS_WITH_AS(b.restore_state(wrong_version), doctest::Contains("version 2"), colo::Error);
    CHECK_THROWS_WITH_AS(b.restore_state({}), doctest::Contains("no HVM context record (tag 1) among 0 state records"),
                         colo::Error);

    auto bad_magic = good;
    bad_magic[8] = std::byte{0};
    std::vector<StateRecord> r1{StateRecord{colo::xen::kHvmContextTag, 1, bad_magic}};
    CHECK_THROWS_WITH_AS(b.restore_state(r1), doctest::Contains("bad magic"), colo::Error);

    auto truncated = good;
    truncated.resize(good.size() - 20);
    std::vector<StateRecord> r2{StateRecord{colo::xen::kHvmContextTag, 1, truncated}};
    CHECK_THROWS_WITH_AS(b.restore_state(r2), doctest::Contains("runs past the end"), colo::Error);

    auto no_end = good;
    no_end.resize(good.size() - 8);
    std::vector<StateRecord> r3{StateRecord{colo::xen::kHvmContextTag, 1, no_end}};
    CHECK_THROWS_WITH_AS(b.restore_state(r3), doctest::Contains("no END descriptor"), colo::Error);

    std::vector<StateRecord> r4{StateRecord{colo::xen::kHvmContextTag, 1, std::vector<std::byte>(10)}};
    CHECK_THROWS_WITH_AS(b.restore_state(r4), doctest::Contains("too short"), colo::Error);

    CHECK(f.domain->counters.set_contexts == 0);
}

TEST_CASE("xen backend: every failing library call is reported with its name and errno") {
    struct Case {
        const char* op;          // the seam operation the fake fails
        const char* operation;   // the library call the error must name
        int error_number;
    };
    const Case cases[] = {
        {"pause", "xc_domain_pause", EPERM},
        {"unpause", "xc_domain_unpause", ESRCH},
        {"logdirty_off", "xc_shadow_control(OFF)", EFAULT},
        {"logdirty_clean", "xc_shadow_control(CLEAN)", ENOMEM},
        {"hvm_context_size", "xc_domain_hvm_getcontext(size)", EACCES},
        {"hvm_get_context", "xc_domain_hvm_getcontext", E2BIG},
        {"hvm_set_context", "xc_domain_hvm_setcontext", EINVAL},
    };
    for (const Case& c : cases) {
        CAPTURE(c.op);
        Fixture f;
        XenBackend& b = f.attach();
        b.start_dirty_log();
        if (std::string(c.op) == "unpause") b.pause();
        if (std::string(c.op) == "hvm_set_context" || std::string(c.op).starts_with("hvm_")) b.pause();
        f.domain->fail_next(c.op, c.error_number);
        DirtyBitmap bits(b.memory().frame_limit());
        const auto e = system_error_of([&] {
            const std::string op = c.op;
            if (op == "pause") b.pause();
            if (op == "unpause") b.resume();
            if (op == "logdirty_off") b.stop_dirty_log();
            if (op == "logdirty_clean") b.harvest_dirty(bits);
            if (op == "hvm_context_size" || op == "hvm_get_context") (void)b.save_state();
            if (op == "hvm_set_context") {
                const std::vector<StateRecord> s{StateRecord{1, 1, colo::xen::make_hvm_context(2)}};
                b.restore_state(s);
            }
        });
        CHECK(e.operation() == c.operation);
        CHECK(e.error_number() == c.error_number);
        const std::string message = e.what();
        CHECK(message.find(c.operation) != std::string::npos);
        CHECK(message.find(std::strerror(c.error_number)) != std::string::npos);
        CHECK(message.find("domain 7") != std::string::npos);
    }
}

TEST_CASE("xen backend: failing calls while attaching are reported with their names") {
    const std::pair<const char*, const char*> cases[] = {
        {"domain_info", "xc_domain_getinfo"},
        {"maximum_gpfn", "xc_domain_maximum_gpfn"},
        {"map_foreign", "xenforeignmemory_map"},
        {"hvm_param", "xc_hvm_param_get(17)"},
    };
    for (const auto& [op, operation] : cases) {
        CAPTURE(op);
        Fixture f;
        f.domain->fail_next(op, EIO);
        const auto e = system_error_of([&] { f.attach(); });
        CHECK(e.operation() == operation);
        CHECK(e.error_number() == EIO);
    }
    // A domain id that does not exist: the fake, like Xen, answers ESRCH.
    auto calls = std::make_unique<FakeDomain>(kDomid, 16);
    const auto e = system_error_of([&] { XenBackend b(std::move(calls), kDomid + 1, "nobody"); });
    CHECK(e.operation() == "xc_domain_getinfo");
    CHECK(e.error_number() == ESRCH);
}

TEST_CASE("xen backend: a domain name resolves through the seam; an unknown one is a clear error") {
    FakeDomain d(kDomid, 16);
    d.names["web"] = kDomid;
    CHECK(d.domain_by_name("web") == kDomid);
    const auto e = system_error_of([&] { (void)d.domain_by_name("mail"); });
    CHECK(e.operation() == "libxl_name_to_domid");
    CHECK(std::string(e.what()).find("no running domain named 'mail'") != std::string::npos);
}

namespace {

// The guest side of the PV console ring: bytes first, then out_prod, as a guest kernel does.
void guest_print(std::byte* ring, const std::string& text) {
    auto* prod_ptr = reinterpret_cast<std::uint32_t*>(ring + colo::xen::kConsoleOutProdOffset);
    std::uint32_t prod = __atomic_load_n(prod_ptr, __ATOMIC_RELAXED);
    for (char c : text) {
        ring[colo::xen::kConsoleOutOffset + prod % colo::xen::kConsoleOutSize] = static_cast<std::byte>(c);
        ++prod;
    }
    __atomic_store_n(prod_ptr, prod, __ATOMIC_RELEASE);
}

// A sink the reader thread and the test thread can share.
struct SeenText {
    std::mutex mutex;
    std::string text;
    colo::ConsoleSink sink() {
        return [this](std::span<const std::byte> bytes) {
            std::lock_guard lock(mutex);
            text.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        };
    }
    std::string get() {
        std::lock_guard lock(mutex);
        return text;
    }
};

}  // namespace

TEST_CASE("xen backend: console output reaches the sink by a checkpoint, without consuming the ring") {
    Fixture f;
    f.domain->params[colo::xen::kHvmParamConsolePfn] = 250;
    std::byte* ring = f.domain->frame(Pfn{250});
    guest_print(ring, "before attach\n");
    XenBackend& b = f.attach();
    SeenText seen;
    b.set_console_sink(seen.sink());
    guest_print(ring, "seq=1\n");
    b.pause();  // a checkpoint boundary delivers everything written before it
    CHECK(seen.get() == "seq=1\n");
    b.resume();
    guest_print(ring, "seq=2\n");
    b.start_dirty_log();
    DirtyBitmap bits(b.memory().frame_limit());
    b.harvest_dirty(bits);
    CHECK(seen.get() == "seq=1\nseq=2\n");
    // out_cons belongs to xenconsoled: the backend never moved it.
    std::uint32_t cons;
    std::memcpy(&cons, ring + colo::xen::kConsoleOutProdOffset - 4, 4);
    CHECK(cons == 0);
    // More than a ring's worth between two reads: the overwritten bytes are counted as lost.
    guest_print(ring, std::string(3000, 'x'));
    b.poll_console();
    CHECK(b.console_lost_bytes() == 3000 - colo::xen::kConsoleOutSize);
    CHECK(seen.get().size() == 12 + colo::xen::kConsoleOutSize);
}

TEST_CASE("xen backend: console output reaches the sink while the guest runs, with no checkpoint") {
    Fixture f;
    f.domain->params[colo::xen::kHvmParamConsolePfn] = 250;
    std::byte* ring = f.domain->frame(Pfn{250});
    XenBackend& b = f.attach();
    SeenText seen;
    b.set_console_sink(seen.sink());
    guest_print(ring, "hello from the guest\n");
    // Wait for the reader thread (generously: this is about delivery, not speed).
    for (int i = 0; i < 500 && seen.get().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(seen.get() == "hello from the guest\n");
    // A new sink replaces the old one: later output goes only there.
    SeenText second;
    b.set_console_sink(second.sink());
    guest_print(ring, "later\n");
    b.poll_console();
    CHECK(second.get() == "later\n");
    CHECK(seen.get() == "hello from the guest\n");
}

TEST_CASE("xen backend: output written while the console sink changes hands reaches the new sink") {
    Fixture f;
    f.domain->params[colo::xen::kHvmParamConsolePfn] = 250;
    std::byte* ring = f.domain->frame(Pfn{250});
    XenBackend& b = f.attach();
    SeenText first, second, third;
    b.set_console_sink(first.sink());
    b.poll_console();
    // Written after the first sink's last look and before the switch: the second sink's.
    guest_print(ring, "seq=16\n");
    b.set_console_sink(second.sink());
    b.poll_console();
    CHECK(second.get() == "seq=16\n");
    // With no sink nothing is taken from the ring: the next sink gets it.
    b.set_console_sink({});
    guest_print(ring, "seq=17\n");
    b.poll_console();
    b.set_console_sink(third.sink());
    b.poll_console();
    CHECK(third.get() == "seq=17\n");
    CHECK(first.get().empty());
}

TEST_CASE("xen backend: without a console ring the sink is accepted and never called") {
    Fixture f;  // HVM_PARAM_CONSOLE_PFN unset
    XenBackend& b = f.attach();
    SeenText seen;
    b.set_console_sink(seen.sink());
    b.pause();
    b.poll_console();
    CHECK(seen.get().empty());
}

TEST_CASE("xen backend: destruction turns log-dirty off and unmaps every mapping before the handles close") {
    Fixture f;
    auto journal = f.domain->journal;
    {
        XenBackend& b = f.attach();
        b.start_dirty_log();
        CHECK(f.domain->live_mappings() > 0);
        journal->clear();
        f.backend.reset();
    }
    REQUIRE_FALSE(journal->empty());
    CHECK(journal->front() == "logdirty_off");
    CHECK(journal->back() == "destroyed with 0 mappings");
    CHECK(std::count(journal->begin(), journal->end(), "unmap_foreign") > 0);
}

TEST_CASE("xen backend: destruction does not touch log-dirty it did not turn on") {
    Fixture f;
    auto journal = f.domain->journal;
    f.attach();
    journal->clear();
    f.backend.reset();
    CHECK(std::count(journal->begin(), journal->end(), "logdirty_off") == 0);
}

TEST_CASE("xen backend: a secondary's console ring overwritten by a checkpoint is the sender's output, not new") {
    Fixture f;
    f.domain->params[colo::xen::kHvmParamConsolePfn] = 250;
    std::byte* ring = f.domain->frame(Pfn{250});
    XenBackend& b = f.attach();
    SeenText seen;
    b.set_console_sink(seen.sink());
    guest_print(ring, "svm's own\n");
    b.pause();
    REQUIRE(seen.get() == "svm's own\n");
    // The primary's ring as of the checkpoint: more lines and a later out_prod.
    std::vector<std::byte> sender(colo::kPageSize);
    guest_print(sender.data(), "seq=1\nseq=2\nseq=3\nseq=4\n");
    const Pfn frame{250};
    b.memory().write_pages(std::span(&frame, 1), sender);
    b.poll_console();
    CHECK(seen.get() == "svm's own\n");  // nothing of the sender's output
    b.resume();
    guest_print(ring, "seq=5\n");  // the guest runs on from the checkpoint
    b.poll_console();
    CHECK(seen.get() == "svm's own\nseq=5\n");
}

TEST_CASE("xen backend: a guest with an event-channel upcall gets a replication caveat; a bare one none") {
    Fixture f;
    XenBackend& backend = f.attach();
    CHECK(backend.replication_caveat().empty());
    f.domain->params[colo::xen::kHvmParamCallbackIrq] = 0x0200000000000000ULL | 0xf3;  // a vector upcall
    const std::string caveat = backend.replication_caveat();
    CHECK(caveat.find("xen domain 7 (guest) uses Xen event channels") == 0);
    CHECK(caveat.find('\n') == std::string::npos);
}
