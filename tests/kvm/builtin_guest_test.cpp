// The built-in test guest on real KVM: it boots, prints its deterministic `seq=` lines, checks
// its own memory, and catches a page we corrupt behind its back.
#include <doctest/doctest.h>

#include <sched.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "backends/error.hpp"
#include "kvm/builtin_guest/builtin_guest_image.hpp"
#include "kvm/builtin_guest/image_header.h"
#include "kvm/builtin_guest_loader.hpp"
#include "kvm/kvm_backend.hpp"
#include "tests/kvm/console_capture.hpp"

using namespace std::chrono_literals;
using colo::GuestConfig;
using colo::kvm::KvmBackend;
using colo::test::ConsoleCapture;

namespace {

GuestConfig small_guest(std::uint64_t seed) {
    GuestConfig config;
    config.name = "builtin-test";
    config.memory_mib = 16;
    config.working_set_mib = 4;
    config.dirty_rate = 4000;
    config.seed = seed;
    config.print_interval_ms = 20;
    return config;
}

std::string expected_prefix(std::size_t seq) { return "seq=" + std::to_string(seq) + " writes="; }

}  // namespace

TEST_CASE("builtin guest: boots, prints consecutive seq lines, memory check passes for a full sweep") {
    ConsoleCapture console;
    auto guest = KvmBackend::create(small_guest(7));
    guest->set_console_sink(console.sink());
    CHECK(guest->paused());
    guest->resume();
    CHECK_FALSE(guest->paused());
    // Verification covers the whole working set every 2 s: 100 intervals of 20 ms, so wait for
    // a little more than that.
    const bool printed = console.wait_for_lines(110, 20s);
    guest->pause();
    INFO("console: " << console.text().substr(0, 2000));
    INFO("vcpu failure: " << guest->vcpu_failure());
    REQUIRE(printed);
    const auto lines = console.lines();
    for (std::size_t i = 0; i < lines.size(); ++i) {
        CAPTURE(lines[i]);
        REQUIRE(lines[i].rfind(expected_prefix(i), 0) == 0);
        // 4000 pages/s * 20 ms = 80 writes per interval.
        CHECK(lines[i].find(" writes=" + std::to_string((i + 1) * 80) + " ") != std::string::npos);
    }
    CHECK(console.text().find("CORRUPT") == std::string::npos);
    CHECK(console.text().find("FAULT") == std::string::npos);
}

namespace {

// The largest gap in TSC ticks the guest's histogram (status guest_stall_histogram) can hold:
// the upper bound of its highest nonempty bucket.
std::uint64_t longest_stall_ticks(const std::vector<std::pair<std::string, std::string>>& report) {
    std::uint64_t top = 0;
    bool any = false;
    for (const auto& [key, value] : report) {
        if (key != "guest_stall_histogram") continue;
        std::size_t at = value.find(' ');
        while (at != std::string::npos) {
            const std::uint64_t bucket = std::stoull(value.substr(at + 1));
            top = std::max(top, bucket);
            any = true;
            at = value.find(' ', at + 1);
        }
    }
    if (!any) return 0;
    return top < 8 ? top + 1 : (5 + top % 4) << (top / 4 - 2);
}

// How many gaps the histogram holds whose bucket lies wholly above `ticks`.
std::uint64_t gaps_above(const std::vector<std::pair<std::string, std::string>>& report, std::uint64_t ticks) {
    std::uint64_t count = 0;
    for (const auto& [key, value] : report) {
        if (key != "guest_stall_histogram") continue;
        std::size_t at = value.find(' ');
        while (at != std::string::npos) {
            const std::size_t colon = value.find(':', at);
            const std::uint64_t bucket = std::stoull(value.substr(at + 1, colon - at - 1));
            const std::uint64_t lower = bucket < 8 ? bucket : (4 + bucket % 4) << (bucket / 4 - 2);
            if (lower >= ticks) count += std::stoull(value.substr(colon + 1));
            at = value.find(' ', at + 1);
        }
    }
    return count;
}

}  // namespace

TEST_CASE("builtin guest: a pause of the VM shows in the guest's own stall statistics, idling does not") {
    GuestConfig config = small_guest(3);
    config.dirty_rate = 40000;  // busy most of each 20 ms interval: a pause lands in its loop
    ConsoleCapture console;
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(console.sink());
    guest->resume();
    REQUIRE(console.wait_for_lines(20, 20s));
    const std::uint64_t khz = guest->tsc_khz();
    const auto before = guest->guest_report();
    REQUIRE(before.size() == 2);
    CHECK(before[0].first == "guest_stall_max_us");
    const std::uint64_t max_before_us = std::stoull(before[0].second);
    // A stand-still of 300 ms, as a very long checkpoint would be.
    guest->pause();
    std::this_thread::sleep_for(300ms);
    guest->resume();
    REQUIRE(console.wait_for_lines(console.lines().size() + 5, 20s));
    const auto after = guest->guest_report();
    REQUIRE(after.size() == 2);
    const std::uint64_t max_after_us = std::stoull(after[0].second);
    INFO("before: " << before[1].second << "; after: " << after[1].second);
    // All of it, less what the guest would have idled anyway (at most one 20 ms interval).
    CHECK(max_after_us >= 270'000);
    CHECK(max_after_us > max_before_us);
    CHECK(longest_stall_ticks(after) >= 270 * khz);
    // One stall, counted once: catching up on the intervals it missed is no further stall.
    CHECK(gaps_above(after, 100 * khz) - gaps_above(before, 100 * khz) == 1);
    guest->pause();
}

TEST_CASE("builtin guest: the same seed prints the same bytes; another seed does not") {
    std::array<std::vector<std::string>, 3> runs;
    const std::array<std::uint64_t, 3> seeds = {42, 42, 43};
    for (std::size_t r = 0; r < runs.size(); ++r) {
        ConsoleCapture console;
        auto guest = KvmBackend::create(small_guest(seeds[r]));
        guest->set_console_sink(console.sink());
        guest->resume();
        REQUIRE(console.wait_for_lines(10, 10s));
        guest->pause();
        runs[r] = console.lines();
        runs[r].resize(10);
    }
    CHECK(runs[0] == runs[1]);
    CHECK(runs[0] != runs[2]);
}

TEST_CASE("builtin guest: a page changed behind its back is reported CORRUPT") {
    ConsoleCapture console;
    auto config = small_guest(9);
    // No writes of its own, so the guest cannot overwrite the damage before its sweep sees it.
    config.dirty_rate = 0;
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(console.sink());
    guest->resume();
    REQUIRE(console.wait_for_lines(3, 10s));
    guest->pause();

    // Scribble over working-set page 5 (which the guest checks within the next sweep).
    const auto params = colo::kvm::builtin_guest_params(config, config.memory_mib << 20, guest->tsc_khz());
    const colo::Pfn victim = colo::Gpa{params.working_set_gpa}.pfn() + 5;
    std::vector<std::byte> junk(colo::kPageSize, std::byte{0xa5});
    const std::array<colo::Pfn, 1> frames = {victim};
    guest->memory().write_pages(frames, junk);

    guest->resume();
    const bool caught = console.wait_for("CORRUPT page=5 gen=0\n", 10s);
    guest->pause();
    INFO("console tail: " << console.text().substr(console.text().size() > 400 ? console.text().size() - 400 : 0));
    CHECK(caught);
}

TEST_CASE("builtin guest: a working set that does not fit is a clear error") {
    auto config = small_guest(1);
    config.memory_mib = 8;
    config.working_set_mib = 7;
    CHECK_THROWS_WITH_AS(KvmBackend::create(config),
                         "built-in guest: working_set = 7 MiB needs guest RAM up to 10 MiB (below 3 GiB), the guest "
                         "has 8 MiB there",
                         colo::Error);
}

TEST_CASE("kvm backend: a Linux guest goes through the kvm/linux loader (a missing kernel is a clear error)") {
    GuestConfig config;
    config.name = "linux-test";
    config.memory_mib = 64;
    config.guest = colo::GuestKind::linux_kernel;
    config.kernel = "/nonexistent/vmlinux";
    try {
        (void)KvmBackend::create(config);
        FAIL("a missing kernel was accepted");
    } catch (const colo::Error& e) {
        const std::string message = e.what();
        CHECK(message.find("/nonexistent/vmlinux") != std::string::npos);
        CHECK(message.find('\n') == std::string::npos);
    }
}

TEST_CASE("builtin guest: an exception is reported by the ring-0 handler, and the halted vCPU still pauses") {
    ConsoleCapture console;
    auto guest = KvmBackend::create(small_guest(3));
    guest->set_console_sink(console.sink());

    // Replace the first instruction at the entry point with ud2 (#UD, vector 6).
    colo_builtin_image_header header{};
    std::memcpy(&header, colo::kvm::builtin_guest_image().data(), sizeof header);
    const colo::Gpa entry{header.entry};
    const std::array<colo::Pfn, 1> frame = {entry.pfn()};
    std::vector<std::byte> page(colo::kPageSize);
    guest->memory().read_pages(frame, page);
    page[entry.page_offset()] = std::byte{0x0f};
    page[entry.page_offset() + 1] = std::byte{0x0b};
    guest->memory().write_pages(frame, page);

    guest->resume();
    char expected[64];
    std::snprintf(expected, sizeof expected, "FAULT vector=6 rip=%016llx\n", static_cast<unsigned long long>(entry.value));
    const bool reported = console.wait_for(expected, 10s);
    guest->pause();  // the vCPU sits in hlt with interrupts off: only the kick gets it out
    INFO("console: " << console.text());
    CHECK(reported);
    CHECK(guest->paused());
    CHECK(console.text().find("seq=") == std::string::npos);
}

namespace {
// A field of /proc/meminfo in MiB (0 when absent).
std::uint64_t meminfo_mib(const std::string& key) {
    std::FILE* f = std::fopen("/proc/meminfo", "r");
    if (f == nullptr) return 0;
    char name[64];
    unsigned long long kib = 0;
    std::uint64_t found = 0;
    while (std::fscanf(f, "%63s %llu%*[^\n]", name, &kib) == 2) {
        if (key == name) found = kib >> 10;
    }
    std::fclose(f);
    return found;
}
}  // namespace

TEST_CASE("kvm backend: an arriving guest larger than the host's available memory is refused before its RAM exists") {
    const std::uint64_t total = meminfo_mib("MemTotal:");
    const std::uint64_t available = meminfo_mib("MemAvailable:");
    // Between what is available and all there is: a new guest may have it (its RAM is mapped
    // without reservation and touched as it runs), an arriving one, whose pages all get written, may not.
    const std::uint64_t memory = available + (total - available) / 2;
    if (available == 0 || total - available < 256 || memory > colo::kMaxMemoryMib) {
        MESSAGE("skipped: MemAvailable " << available << " MiB of " << total << " MiB leaves no room for the case");
        return;
    }
    auto config = small_guest(1);
    config.memory_mib = memory;
    CHECK_THROWS_WITH_AS(KvmBackend::create_incoming(config),
                         doctest::Contains("MiB of memory, more than this host has available ("), colo::Error);
    CHECK_NOTHROW((void)KvmBackend::create(config));
}

namespace {

// The threads of this process running SCHED_FIFO now.
int realtime_threads() {
    int count = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        const auto id = static_cast<pid_t>(std::stol(task.path().filename().string()));
        if ((::sched_getscheduler(id) & ~SCHED_RESET_ON_FORK) == SCHED_FIFO) ++count;
    }
    return count;
}

}  // namespace

TEST_CASE("kvm backend: with realtime pause the vCPU thread runs SCHED_FIFO only while paused") {
    ConsoleCapture console;
    auto config = small_guest(11);
    config.vcpus = 2;
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(console.sink());
    guest->resume();
    REQUIRE(console.wait_for_lines(3, 20s));
    CHECK(realtime_threads() == 0);
    guest->pause();  // off by default: a pause changes nobody's priority
    CHECK(realtime_threads() == 0);
    guest->resume();

    guest->set_realtime_pause(true);
    for (int round = 0; round < 3; ++round) {
        guest->pause();
        sched_param probe{};
        probe.sched_priority = ::sched_get_priority_min(SCHED_FIFO);
        if (::sched_setscheduler(0, SCHED_FIFO, &probe) != 0) {
            MESSAGE("real-time scheduling is not allowed here: nothing to check");
            return;
        }
        sched_param other{};
        REQUIRE(::sched_setscheduler(0, SCHED_OTHER, &other) == 0);
        CHECK(realtime_threads() == 2);  // both vCPUs, and only while paused
        // State is read on the vCPU threads: they answer at that priority too.
        CHECK_FALSE(guest->save_state().empty());
        guest->resume();
        CHECK(realtime_threads() == 0);
    }
    guest->set_realtime_pause(false);
    guest->pause();
    CHECK(realtime_threads() == 0);
    const auto before = console.lines().size();
    guest->resume();
    CHECK(console.wait_for_lines(before + 2, 20s));  // still runs after all that
    guest->pause();
}
