// Save a running built-in guest, restore it into a fresh VM, again and again: the console must
// read as if one guest had run without a break (STYLE §5, §9). And a damaged state set must be
// refused with a clear message before anything is applied.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <csignal>
#include <chrono>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "kvm/kvm_backend.hpp"
#include "kvm/layout.hpp"
#include "kvm/state_tags.hpp"
#include "kvm/vcpu_thread.hpp"
#include "tests/kvm/console_capture.hpp"
#include "tests/kvm/guest_memory_copy.hpp"
#include "toolstack/replication/ram_cache.hpp"

using namespace std::chrono_literals;
using colo::GuestConfig;
using colo::StateRecord;
using colo::kvm::KvmBackend;
using colo::test::ConsoleCapture;
using colo::test::copy_memory;

namespace {

GuestConfig restore_guest() {
    GuestConfig config;
    config.name = "restore-test";
    config.memory_mib = 16;
    config.working_set_mib = 4;
    config.dirty_rate = 4000;
    config.seed = 1234;
    config.print_interval_ms = 20;
    return config;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
        out.push_back(text.substr(start, nl - start));
    }
    return out;
}

// The lines an uninterrupted guest with `config` prints first (at least `count` of them).
std::vector<std::string> reference_lines(const GuestConfig& config, std::size_t count) {
    ConsoleCapture console;
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(console.sink());
    guest->resume();
    REQUIRE(console.wait_for_lines(count, 30s));
    guest->pause();
    return console.lines();
}

// Every line is the reference's line of the same number: same seq, same writes, same check.
void check_against(const std::vector<std::string>& lines, const std::vector<std::string>& reference) {
    REQUIRE(lines.size() <= reference.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        CAPTURE(i);
        REQUIRE(lines[i] == reference[i]);
    }
}

const StateRecord* find(const std::vector<StateRecord>& records, std::uint32_t tag) {
    const auto it = std::find_if(records.begin(), records.end(), [&](const StateRecord& r) { return r.tag == tag; });
    return it == records.end() ? nullptr : &*it;
}

std::uint64_t saved_msr(const std::vector<StateRecord>& state, std::uint32_t wanted) {
    namespace tags = colo::kvm::state_tags;
    const StateRecord* msrs = find(state, tags::vcpu_tag(0, tags::VcpuPart::msrs));
    REQUIRE(msrs != nullptr);
    std::uint32_t count = 0;
    std::memcpy(&count, msrs->data.data(), 4);
    for (std::uint32_t i = 0; i < count; ++i) {
        std::uint32_t index = 0;
        std::uint64_t value = 0;
        std::memcpy(&index, msrs->data.data() + 8 + i * 16, 4);
        std::memcpy(&value, msrs->data.data() + 8 + i * 16 + 8, 8);
        if (index == wanted) return value;
    }
    FAIL("MSR " << wanted << " is not in the MSR record");
    return 0;
}

std::uint64_t saved_tsc(const std::vector<StateRecord>& state) { return saved_msr(state, 0x10); }

// vCPU 0's interrupt state in a saved set: MP state, timer MSR, LAPIC timer vector bits.
std::string describe_saved_vcpu0(const std::vector<StateRecord>& state) {
    namespace tags = colo::kvm::state_tags;
    kvm_mp_state mp{};
    kvm_vcpu_events events{};
    kvm_lapic_state lapic{};
    std::memcpy(&mp, find(state, tags::vcpu_tag(0, tags::VcpuPart::mp_state))->data.data(), sizeof mp);
    std::memcpy(&events, find(state, tags::vcpu_tag(0, tags::VcpuPart::events))->data.data(), sizeof events);
    std::memcpy(&lapic, find(state, tags::vcpu_tag(0, tags::VcpuPart::lapic))->data.data(), sizeof lapic);
    const auto reg = [&](int offset) {
        std::uint32_t v;
        std::memcpy(&v, lapic.regs + offset, 4);
        return v;
    };
    return "mp_state=" + std::to_string(mp.mp_state) + " tsc_deadline=" + std::to_string(saved_msr(state, 0x6e0)) +
           " injected=" + std::to_string(events.interrupt.injected) + "/" + std::to_string(events.interrupt.nr) +
           " irr40=" + std::to_string(reg(0x220) & 1) + " isr40=" + std::to_string(reg(0x120) & 1) +
           " lvtt=" + std::to_string(reg(0x320)) + " svr=" + std::to_string(reg(0xf0)) +
           " tpr=" + std::to_string(reg(0x80)) + " shadow=" + std::to_string(events.interrupt.shadow);
}

// For a guest that stopped printing: where vCPU 0 is and what its timer says.
std::string describe_vcpu0(KvmBackend& guest) {
    namespace tags = colo::kvm::state_tags;
    guest.pause();
    const auto state = guest.save_state();
    kvm_regs regs{};
    kvm_mp_state mp{};
    std::memcpy(&regs, find(state, tags::vcpu_tag(0, tags::VcpuPart::regs))->data.data(), sizeof regs);
    std::memcpy(&mp, find(state, tags::vcpu_tag(0, tags::VcpuPart::mp_state))->data.data(), sizeof mp);
    return "vcpu0 rip=" + std::to_string(regs.rip) + " rflags=" + std::to_string(regs.rflags) +
           " mp_state=" + std::to_string(mp.mp_state) + " tsc=" + std::to_string(saved_msr(state, 0x10)) +
           " tsc_deadline=" + std::to_string(saved_msr(state, 0x6e0)) + " failure='" + guest.vcpu_failure() + "' " + describe_saved_vcpu0(state);
}

}  // namespace

TEST_CASE("kvm save/restore: 20 restores into fresh VMs continue the guest with no gap, repeat or corruption") {
    const auto config = restore_guest();

    // The reference: one guest that is never interrupted.
    std::vector<std::string> reference;
    {
        ConsoleCapture console;
        auto guest = KvmBackend::create(config);
        guest->set_console_sink(console.sink());
        guest->resume();
        REQUIRE(console.wait_for_lines(60, 20s));
        guest->pause();
        reference = console.lines();
    }

    // Console bytes from every incarnation, in order: a line cut by a save must be completed
    // by the restored guest, byte for byte.
    ConsoleCapture all;
    const auto sink = all.sink();
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(sink);
    guest->resume();
    REQUIRE(all.wait_for_lines(2, 10s));
    for (int round = 0; round < 20; ++round) {
        CAPTURE(round);
        guest->pause();
        REQUIRE(guest->paused());
        const auto state = guest->save_state();
        auto next = KvmBackend::create_incoming(config);
        copy_memory(guest->memory(), next->memory());
        next->restore_state(state);
        next->set_console_sink(sink);
        guest.reset();  // the old VM is gone before the new one runs
        next->resume();
        guest = std::move(next);
        const std::size_t have = all.lines().size();
        const bool printed = all.wait_for_lines(have + 2, 10s);
        REQUIRE_MESSAGE(printed, "restored guest printed nothing; " << describe_vcpu0(*guest) << "; state saved: tsc="
                                                                    << saved_tsc(state) << " "
                                                                    << describe_saved_vcpu0(state));
    }
    guest->pause();

    const auto lines = lines_of(all.text());
    REQUIRE(lines.size() >= 42);
    CHECK(all.text().find("CORRUPT") == std::string::npos);
    CHECK(all.text().find("FAULT") == std::string::npos);
    const std::size_t compare = std::min(lines.size(), reference.size());
    for (std::size_t i = 0; i < compare; ++i) {
        CAPTURE(i);
        REQUIRE(lines[i] == reference[i]);
    }
    for (std::size_t i = 0; i < lines.size(); ++i) {
        CAPTURE(lines[i]);
        REQUIRE(lines[i].rfind("seq=" + std::to_string(i) + " ", 0) == 0);
    }
}

TEST_CASE("kvm save/restore: save is refused while running") {
    auto guest = KvmBackend::create(restore_guest());
    guest->resume();
    CHECK_THROWS_WITH_AS((void)guest->save_state(),
                         "save_state refused: guest 'restore-test' is running (pause it first)", colo::Error);
    guest->pause();
    CHECK_FALSE(guest->save_state().empty());
}

TEST_CASE("kvm save/restore: a short or corrupted state set is rejected with a clear error") {
    auto config = restore_guest();
    auto guest = KvmBackend::create(config);
    guest->resume();
    guest->pause();
    const auto state = guest->save_state();
    namespace tags = colo::kvm::state_tags;
    REQUIRE(find(state, tags::vcpu_tag(0, tags::VcpuPart::lapic)) != nullptr);

    auto target = KvmBackend::create_incoming(config);

    SUBCASE("a record missing") {
        auto broken = state;
        broken.erase(std::find_if(broken.begin(), broken.end(), [&](const StateRecord& r) {
            return r.tag == tags::vcpu_tag(0, tags::VcpuPart::lapic);
        }));
        CHECK_THROWS_WITH_AS(target->restore_state(broken), "KVM state: missing vcpu0 LAPIC (tag 0x01000007)",
                             colo::Error);
    }
    SUBCASE("the set cut short") {
        const std::vector<StateRecord> half(state.begin(), state.begin() + static_cast<long>(state.size() / 2));
        CHECK_THROWS_AS(target->restore_state(half), colo::Error);
    }
    SUBCASE("a record truncated") {
        auto broken = state;
        for (auto& r : broken) {
            if (r.tag == tags::vcpu_tag(0, tags::VcpuPart::regs)) r.data.resize(100);
        }
        CHECK_THROWS_WITH_AS(target->restore_state(broken), "KVM state: vcpu0 regs (tag 0x01000002) is 100 bytes, expected 144",
                             colo::Error);
    }
    SUBCASE("an unknown version") {
        auto broken = state;
        broken.back().version = 99;
        CHECK_THROWS_WITH_AS(target->restore_state(broken), "KVM state: UART (tag 0x03000001) has version 99",
                             colo::Error);
    }
    SUBCASE("a record twice") {
        auto broken = state;
        broken.push_back(state.front());
        CHECK_THROWS_WITH_AS(target->restore_state(broken), "KVM state: machine (tag 0x00000001) appears twice",
                             colo::Error);
    }
    SUBCASE("a record from another machine") {
        auto broken = state;
        broken.push_back(StateRecord{tags::vcpu_tag(3, tags::VcpuPart::regs), 1, {}});
        CHECK_THROWS_WITH_AS(target->restore_state(broken),
                             "KVM state: unexpected vcpu3 regs (tag 0x01000302) for a guest with 1 vCPU(s)", colo::Error);
    }
    SUBCASE("an MSR record whose count lies") {
        auto broken = state;
        for (auto& r : broken) {
            if (r.tag == tags::vcpu_tag(0, tags::VcpuPart::msrs)) r.data[0] = std::byte{0xff};
        }
        CHECK_THROWS_AS(target->restore_state(broken), colo::Error);
    }
    SUBCASE("a guest of another size") {
        auto bigger = config;
        bigger.memory_mib = 32;
        auto other = KvmBackend::create_incoming(bigger);
        CHECK_THROWS_WITH_AS(other->restore_state(state),
                             "KVM state is for a guest with 1 vCPU(s) and 16 MiB; this guest has 1 and 32 MiB",
                             colo::Error);
    }
    // After every refusal the target still takes the good state.
    copy_memory(guest->memory(), target->memory());
    CHECK_NOTHROW(target->restore_state(state));
}

TEST_CASE("kvm live copy with the dirty log loses no page (copy while running, then dirty rounds, then restore)") {
    auto config = restore_guest();
    // Few writes per interval, so a page lost in the copy is likely verified (and reported)
    // before the guest happens to write it again; a lost generation-table page changes the
    // check values, which the reference comparison catches.
    config.dirty_rate = 500;
    const auto reference = reference_lines(config, 140);
    ConsoleCapture all;
    const auto sink = all.sink();
    auto source = KvmBackend::create(config);
    source->set_console_sink(sink);
    source->start_dirty_log();
    source->resume();
    REQUIRE(all.wait_for_lines(2, 10s));

    auto target = KvmBackend::create_incoming(config);
    // Round 0: everything, while the guest keeps writing.
    copy_memory(source->memory(), target->memory());
    std::vector<std::byte> buffer;
    const auto copy_dirty = [&] {
        colo::DirtyBitmap dirty(source->memory().frame_limit());
        source->harvest_dirty(dirty);
        const auto frames = dirty.frames();
        buffer.resize(frames.size() * colo::kPageSize);
        source->memory().read_pages(frames, buffer);
        target->memory().write_pages(frames, buffer);
        return frames.size();
    };
    std::size_t copied = 0;
    for (int round = 0; round < 5; ++round) {
        const std::size_t have = all.lines().size();
        REQUIRE(all.wait_for_lines(have + 1, 10s));
        copied += copy_dirty();
    }
    CHECK(copied > 0);
    source->pause();
    (void)copy_dirty();
    const auto state = source->save_state();
    source.reset();
    target->restore_state(state);
    target->set_console_sink(sink);
    target->resume();
    // 100 intervals of 20 ms verify the whole working set once; wait for a little more.
    const std::size_t have = all.lines().size();
    const bool ran = all.wait_for_lines(have + 110, 20s);
    target->pause();
    REQUIRE_MESSAGE(ran, target->vcpu_failure());
    CHECK(all.text().find("CORRUPT") == std::string::npos);
    auto lines = lines_of(all.text());
    lines.resize(std::min(lines.size(), reference.size()));
    CHECK(lines.size() >= 110);
    check_against(lines, reference);
}

TEST_CASE("kvm save/restore: a guest with 3 vCPUs (2 waiting for INIT/SIPI) pauses, saves and continues") {
    auto config = restore_guest();
    config.vcpus = 3;
    ConsoleCapture all;
    const auto sink = all.sink();
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(sink);
    guest->resume();
    REQUIRE(all.wait_for_lines(3, 10s));
    for (int round = 0; round < 3; ++round) {
        guest->pause();
        const auto state = guest->save_state();
        CHECK(state.size() == 1 + 3 * colo::kvm::state_tags::kVcpuPartCount + 5 + 1);
        auto next = KvmBackend::create_incoming(config);
        copy_memory(guest->memory(), next->memory());
        next->restore_state(state);
        next->set_console_sink(sink);
        guest.reset();
        next->resume();
        guest = std::move(next);
        const std::size_t have = all.lines().size();
        REQUIRE_MESSAGE(all.wait_for_lines(have + 2, 10s), guest->vcpu_failure());
    }
    guest->pause();
    CHECK(guest->vcpu_failure().empty());
    const auto lines = lines_of(all.text());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        CAPTURE(lines[i]);
        REQUIRE(lines[i].rfind("seq=" + std::to_string(i) + " ", 0) == 0);
    }
}


TEST_CASE("kvm save/restore: the restored guest's TSC continues from the saved one (no jump either way)") {
    const auto config = restore_guest();
    auto guest = KvmBackend::create(config);
    ConsoleCapture console;
    guest->set_console_sink(console.sink());
    guest->resume();
    REQUIRE(console.wait_for_lines(5, 10s));
    guest->pause();
    const auto saved = guest->save_state();
    const std::uint64_t before = saved_tsc(saved);
    const auto t0 = std::chrono::steady_clock::now();

    auto next = KvmBackend::create_incoming(config);
    copy_memory(guest->memory(), next->memory());
    next->restore_state(saved);
    const std::uint64_t after = saved_tsc(next->save_state());
    const auto elapsed_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
    // A fresh VM's TSC starts near 0 and a host TSC is far ahead: both would fail these bounds.
    CHECK(after >= before);
    const std::uint64_t bound = before + static_cast<std::uint64_t>(elapsed_us + 1000) * (guest->tsc_khz() / 1000 + 1);
    CHECK(after <= bound);
}

TEST_CASE("kvm pause/resume: 100 quick pauses lose and repeat nothing") {
    auto config = restore_guest();
    const auto reference = reference_lines(config, 30);
    ConsoleCapture console;
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(console.sink());
    for (int i = 0; i < 100; ++i) {
        guest->resume();
        CHECK_FALSE(guest->paused());
        std::this_thread::sleep_for(std::chrono::microseconds(200 + (i * 137) % 800));
        guest->pause();
        REQUIRE(guest->paused());
    }
    guest->resume();
    REQUIRE(console.wait_for_lines(10, 10s));
    guest->pause();
    auto lines = console.lines();
    lines.resize(std::min(lines.size(), reference.size()));
    check_against(lines, reference);
    CHECK(guest->vcpu_failure().empty());
}

TEST_CASE("kvm COLO pattern: a running secondary is overwritten at every checkpoint and takes over on failover") {
    auto config = restore_guest();
    config.dirty_rate = 1000;
    const auto reference = reference_lines(config, 60);

    ConsoleCapture primary_console, secondary_console;
    auto primary = KvmBackend::create(config);
    primary->set_console_sink(primary_console.sink());
    auto secondary = KvmBackend::create_incoming(config);
    secondary->set_console_sink(secondary_console.sink());
    primary->start_dirty_log();
    secondary->start_dirty_log();
    copy_memory(primary->memory(), secondary->memory());
    primary->resume();

    std::vector<std::byte> buffer;
    std::string at_checkpoint;
    std::size_t secondary_mark = 0;
    for (int checkpoint = 0; checkpoint < 6; ++checkpoint) {
        CAPTURE(checkpoint);
        REQUIRE(primary_console.wait_for_lines(primary_console.lines().size() + 1, 10s));
        primary->pause();
        secondary->pause();
        // Pages to send: what the primary wrote, and what the secondary wrote on its own since
        // the last checkpoint (its copy of those pages is no longer the primary's).
        colo::DirtyBitmap dirty(primary->memory().frame_limit());
        primary->harvest_dirty(dirty);
        colo::DirtyBitmap own(secondary->memory().frame_limit());
        secondary->harvest_dirty(own);
        dirty |= own;
        const auto frames = dirty.frames();
        buffer.resize(frames.size() * colo::kPageSize);
        primary->memory().read_pages(frames, buffer);
        secondary->memory().write_pages(frames, buffer);
        secondary->restore_state(primary->save_state());
        // The copy is the pipeline's own writing (write_pages): it must not show up as pages the
        // secondary dirtied, or every checkpoint would flush it again at the next one.
        colo::DirtyBitmap copied(secondary->memory().frame_limit());
        secondary->harvest_dirty(copied);
        std::size_t copied_reported = 0;
        for (const auto pfn : frames) copied_reported += copied.test(pfn) ? 1 : 0;
        CHECK(copied_reported == 0);
        at_checkpoint = primary_console.text();
        secondary_mark = secondary_console.text().size();
        secondary->resume();
        if (checkpoint < 5) {
            primary->resume();
            // Make the secondary diverge before the next checkpoint, as a non-deterministic
            // guest would: scribble over its parameters page, which the primary never writes
            // (the guest rereads it every interval: absurd write counts follow), and log it as
            // a write of the secondary's own (write_pages is the pipeline's and is not logged).
            // Only the secondary's own dirty set brings that page back to the primary's content.
            std::vector<std::byte> junk(colo::kPageSize, std::byte{0x5c});
            const std::array<colo::Pfn, 1> params = {colo::kvm::layout::kBuiltinParams.pfn()};
            secondary->memory().write_pages(params, junk);
            secondary->ram().mark_vmm_dirty(colo::kvm::layout::kBuiltinParams, colo::kPageSize);
        }
    }
    // Failover right after the last checkpoint: the primary is gone, the secondary (running
    // from that checkpoint) must continue the primary's output byte for byte.
    primary.reset();
    const std::size_t have = secondary_console.lines().size();
    const bool ran = secondary_console.wait_for_lines(have + 5, 10s);
    secondary->pause();
    REQUIRE_MESSAGE(ran, secondary->vcpu_failure());
    const std::string survivor = at_checkpoint + secondary_console.text().substr(secondary_mark);
    CHECK(survivor.find("CORRUPT") == std::string::npos);
    auto lines = lines_of(survivor);
    REQUIRE(lines.size() >= 10);
    lines.resize(std::min(lines.size(), reference.size()));
    check_against(lines, reference);
}

TEST_CASE("kvm COLO over a shared RAM cache: the SVM runs on a copy-on-write view of the cache, reverts its own writes, takes over") {
    // As the secondary does with share_cache (toolstack/replication/ram_cache.hpp): the SVM's
    // memory is a private mapping of the cache's memfd; a checkpoint's pages are staged while the
    // SVM runs, enter the file with it paused, and its own writes are dropped, not overwritten.
    auto config = restore_guest();
    config.dirty_rate = 1000;
    const auto reference = reference_lines(config, 60);

    ConsoleCapture primary_console, secondary_console;
    auto primary = KvmBackend::create(config);
    primary->set_console_sink(primary_console.sink());
    auto secondary = KvmBackend::create_incoming(config);
    secondary->set_console_sink(secondary_console.sink());
    colo::RamCache cache(secondary->memory().regions());
    REQUIRE(cache.share_with(secondary->memory()));
    {
        colo::DirtyBitmap all(primary->memory().frame_limit());
        for (const auto& region : primary->memory().regions()) all.set_range(region.first, region.pages);
        const auto frames = all.frames();
        std::vector<std::byte> pages(frames.size() * colo::kPageSize);
        primary->memory().read_pages(frames, pages);
        cache.load(frames, pages);  // the initial migration: into the file, which the SVM reads
    }
    secondary->restore_state(primary->save_state());
    primary->start_dirty_log();
    secondary->start_dirty_log();
    primary->resume();
    secondary->resume();

    const colo::Gpa params = colo::kvm::layout::kBuiltinParams;
    const std::vector<std::byte> junk(colo::kPageSize, std::byte{0x5c});
    std::vector<std::byte> buffer;
    std::string at_checkpoint;
    std::size_t secondary_mark = 0;
    for (int checkpoint = 0; checkpoint < 6; ++checkpoint) {
        CAPTURE(checkpoint);
        REQUIRE(primary_console.wait_for_lines(primary_console.lines().size() + 1, 10s));
        primary->pause();
        colo::DirtyBitmap received(primary->memory().frame_limit());
        primary->harvest_dirty(received);
        const auto frames = received.frames();
        buffer.resize(frames.size() * colo::kPageSize);
        primary->memory().read_pages(frames, buffer);
        cache.receive(frames, buffer);  // staged: the SVM still runs
        const auto state = primary->save_state();
        secondary->pause();
        colo::DirtyBitmap own(secondary->memory().frame_limit());
        secondary->harvest_dirty(own);
        if (checkpoint > 0) CHECK(own.test(params.pfn()));  // the scribble below, as its own write
        cache.commit(secondary->memory(), received, own, 256);
        // The SVM's writes never reached the file: its private copy was dropped, the page reads
        // the primary's again.
        CHECK(std::memcmp(secondary->ram().host(params, colo::kPageSize).data(),
                          cache.committed_page(params.pfn()).data(), colo::kPageSize) == 0);
        secondary->restore_state(state);
        at_checkpoint = primary_console.text();
        secondary_mark = secondary_console.text().size();
        secondary->resume();
        if (checkpoint < 5) {
            primary->resume();
            // Diverge as a non-deterministic guest would (see the COLO pattern test above),
            // through the VMM's view: a private copy the file must never see.
            secondary->ram().write(params, junk);
            CHECK(std::memcmp(cache.committed_page(params.pfn()).data(), junk.data(), colo::kPageSize) != 0);
        }
    }
    primary.reset();
    const std::size_t have = secondary_console.lines().size();
    const bool ran = secondary_console.wait_for_lines(have + 5, 10s);
    secondary->pause();
    REQUIRE_MESSAGE(ran, secondary->vcpu_failure());
    const std::string survivor = at_checkpoint + secondary_console.text().substr(secondary_mark);
    CHECK(survivor.find("CORRUPT") == std::string::npos);
    auto lines = lines_of(survivor);
    REQUIRE(lines.size() >= 10);
    lines.resize(std::min(lines.size(), reference.size()));
    check_against(lines, reference);
}

TEST_CASE("kvm save/restore: a vCPU that failed (triple fault) is revived by restoring a checkpoint") {
    const auto config = restore_guest();
    ConsoleCapture console;
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(console.sink());
    guest->resume();
    REQUIRE(console.wait_for_lines(3, 10s));
    guest->pause();
    const auto checkpoint = guest->save_state();
    const auto lines_at_checkpoint = console.lines().size();
    std::vector<std::byte> idt(colo::kPageSize);
    const std::array<colo::Pfn, 1> idt_frame = {colo::kvm::layout::kIdt.pfn()};
    guest->memory().read_pages(idt_frame, idt);

    // Wipe the IDT: the next guest call (int3) finds no gate, and #NP, #DF escalate to a
    // triple fault, which KVM reports as a shutdown.
    std::vector<std::byte> zeros(colo::kPageSize);
    guest->memory().write_pages(idt_frame, zeros);
    guest->resume();
    for (int i = 0; i < 200 && guest->vcpu_failure().empty(); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(guest->vcpu_failure().find("KVM_EXIT_SHUTDOWN") != std::string::npos);
    CHECK(guest->paused());
    CHECK_THROWS_AS(guest->resume(), colo::Error);

    // The checkpoint brings it back (memory as it was: the IDT page is the only change).
    guest->memory().write_pages(idt_frame, idt);
    guest->restore_state(checkpoint);
    CHECK(guest->vcpu_failure().empty());
    guest->resume();
    REQUIRE(console.wait_for_lines(lines_at_checkpoint + 3, 10s));
    guest->pause();
    CHECK(console.text().find("CORRUPT") == std::string::npos);
}

namespace {
std::atomic<bool> g_kicked{false};
void note_kick(int) { g_kicked.store(true); }
}  // namespace

TEST_CASE("kvm revive: a vCPU that failed while a pause was pending runs again after restore, not pausing itself") {
    const auto config = restore_guest();
    ConsoleCapture console;
    auto guest = KvmBackend::create(config);
    std::atomic<bool> armed{false}, in_sink{false};
    const auto capture = console.sink();
    // The console sink runs on the vCPU thread inside its port-I/O exit. Armed, it waits until a
    // pause has kicked the vCPU and then throws: the vCPU fails with that pause unanswered.
    guest->set_console_sink([&](std::span<const std::byte> bytes) {
        if (armed.load()) {
            in_sink.store(true);
            for (int i = 0; i < 1000 && !g_kicked.load(); ++i) std::this_thread::sleep_for(10ms);
            armed.store(false);
            throw colo::Error("test: the console broke after the kick");
        }
        capture(bytes);
    });
    guest->resume();
    REQUIRE(console.wait_for_lines(3, 10s));
    guest->pause();
    const auto checkpoint = guest->save_state();
    // A checkpoint is memory and state: restoring the vCPUs alone on top of what the guest wrote
    // since would resume it on a stack and variables that are not its own (and whether that
    // happens to work depends on how the guest's code was compiled).
    const auto memory_at_checkpoint = colo::test::snapshot_memory(guest->memory());
    const auto lines_at_checkpoint = console.lines().size();
    guest->resume();

    // Observe the kick: pause() sends it after recording its request (vcpu_thread.cpp kick()).
    const int kick = colo::kvm::VcpuThread::kick_signal();
    struct sigaction noting {}, previous {};
    noting.sa_handler = note_kick;
    sigemptyset(&noting.sa_mask);
    noting.sa_flags = SA_RESTART;
    REQUIRE(sigaction(kick, &noting, &previous) == 0);
    g_kicked.store(false);
    armed.store(true);
    for (int i = 0; i < 1000 && !in_sink.load(); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(in_sink.load());
    guest->pause();  // answered by the failure
    REQUIRE(sigaction(kick, &previous, nullptr) == 0);
    REQUIRE(g_kicked.load());
    REQUIRE(guest->vcpu_failure().find("the console broke") != std::string::npos);

    colo::test::write_memory(guest->memory(), memory_at_checkpoint);
    guest->restore_state(checkpoint);  // revives the vCPU
    REQUIRE(guest->vcpu_failure().empty());
    guest->resume();
    const bool ran = console.wait_for_lines(lines_at_checkpoint + 3, 10s);
    CHECK_MESSAGE(ran, "the revived vCPU printed nothing; it is " << (guest->paused() ? "paused" : "running"));
    CHECK_FALSE(guest->paused());
    guest->pause();
}
