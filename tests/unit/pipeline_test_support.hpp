// Shared pieces of the pipeline unit tests: a primary and a secondary over FakeBackends and an
// in-memory link, driven step by step from one thread, and helpers to compare guest memory and
// collect released console output.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "backends/fake_backend.hpp"
#include "toolstack/replication/memory_channel.hpp"
#include "toolstack/replication/replication.hpp"

namespace pipeline_test {

using namespace colo;

inline std::byte pattern(std::uint64_t pfn, unsigned generation) {
    return static_cast<std::byte>((pfn * 7 + generation * 31) % 251 + 1);
}

// Gives every page a distinct, known content.
inline void fill(FakeBackend& guest, unsigned generation = 0) {
    const bool was_paused = guest.paused();
    guest.resume();
    for (std::uint64_t p = 0; p < guest.memory().frame_limit(); ++p) guest.guest_write(Pfn{p}, pattern(p, generation));
    if (was_paused) guest.pause();
}

// Frames whose contents differ.
inline std::vector<std::uint64_t> differing(const FakeBackend& a, const FakeBackend& b, std::uint64_t pages) {
    std::vector<std::uint64_t> out;
    for (std::uint64_t p = 0; p < pages; ++p) {
        if (std::memcmp(a.page(Pfn{p}).data(), b.page(Pfn{p}).data(), kPageSize) != 0) out.push_back(p);
    }
    return out;
}

inline std::vector<std::byte> snapshot(const FakeBackend& guest, std::uint64_t pages) {
    std::vector<std::byte> all;
    for (std::uint64_t p = 0; p < pages; ++p) {
        const auto page = guest.page(Pfn{p});
        all.insert(all.end(), page.begin(), page.end());
    }
    return all;
}

inline std::vector<std::byte> bytes_of(const std::string& text) {
    const auto span = std::as_bytes(std::span(text.data(), text.size()));
    return {span.begin(), span.end()};
}

// Released console output from one or more sinks, checked for gaps and repeats as it arrives.
struct Released {
    std::mutex mutex;
    std::string text;
    std::uint64_t next = 0;
    std::vector<std::string> problems;

    OutputSink sink() {
        return [this](std::uint64_t offset, std::span<const std::byte> bytes) {
            std::lock_guard lock(mutex);
            if (offset != next) {
                problems.push_back("release at " + std::to_string(offset) + ", expected " + std::to_string(next));
            }
            text.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            next = offset + bytes.size();
        };
    }
    std::string get() {
        std::lock_guard lock(mutex);
        return text;
    }
};

// Notices and debug lines, kept for assertions instead of going to stderr.
struct Log {
    std::mutex mutex;
    std::vector<std::string> notices;
    LogFn fn() {
        return [this](LogLevel level, std::string_view line) {
            if (level != LogLevel::notice) return;
            std::lock_guard lock(mutex);
            notices.emplace_back(line);
        };
    }
    bool has(const std::string& needle) {
        std::lock_guard lock(mutex);
        for (const auto& n : notices) {
            if (n.find(needle) != std::string::npos) return true;
        }
        return false;
    }
};

inline constexpr std::uint64_t kPages = 256;

// Defaults for step-driven tests: nothing times out while a test looks at state, and no heartbeat
// falls due between two steps (on a slow run, e.g. under ThreadSanitizer, a heartbeat sent into a
// link the test dropped would end the link before the secondary read what had arrived).
inline PrimaryConfig primary_config(ProtectionMode mode) {
    PrimaryConfig c;
    c.mode = mode;
    c.link.peer_timeout = Millis{20000};
    c.link.heartbeat_period = Millis{10000};
    c.precopy.batch_pages = 16;
    // Step-driven tests decide when the guest runs; a throttle thread pausing it would not.
    c.precopy.auto_converge = false;
    return c;
}

inline SecondaryConfig secondary_config(ProtectionMode mode) {
    SecondaryConfig c;
    c.mode = mode;
    c.link.peer_timeout = Millis{20000};
    c.link.heartbeat_period = Millis{10000};
    return c;
}

struct Pair {
    FakeBackend pvm{"guest", kPages};
    FakeBackend svm{"guest", kPages};
    std::unique_ptr<MemoryChannel> to_secondary, to_primary;  // the primary's and the secondary's ends
    Log log;
    Released primary_out, secondary_out;
    std::unique_ptr<Primary> primary;
    std::unique_ptr<Secondary> secondary;

    // `nics`: vifs of the guest, made before the sides (which take them over when made): the
    // PVM's attached to a host network, the SVM's not yet (an incoming guest's).
    // `disk_bytes`: one disk per entry, that big on the PVM, empty on the SVM (an incoming guest's
    // new copy, sized by the initial sync).
    Pair(PrimaryConfig pc, SecondaryConfig sc, unsigned nics = 0, std::vector<std::uint64_t> disk_bytes = {}) {
        for (unsigned i = 0; i < nics; ++i) {
            pvm.add_nic({}, true);
            svm.add_nic({}, false);
        }
        for (const std::uint64_t bytes : disk_bytes) {
            pvm.add_disk(bytes);
            svm.add_disk(0);
        }
        auto ends = MemoryChannel::make_pair();
        to_secondary = std::move(ends.first);
        to_primary = std::move(ends.second);
        fill(pvm);
        pvm.set_vcpu_state(bytes_of("vcpu@sync"));
        svm.pause();  // an incoming guest is created paused
        pc.log = log.fn();
        sc.log = log.fn();
        primary = std::make_unique<Primary>(pvm, *to_secondary, pc, primary_out.sink());
        secondary = std::make_unique<Secondary>(svm, *to_primary, sc, secondary_out.sink());
    }

    // Lets the secondary handle everything sent so far.
    Secondary::Outcome settle() { return secondary->process(Secondary::Clock::now()); }

    void protect() {
        if (pvm.disks().empty()) {
            primary->send_initial_sync();
        } else {
            // A disk's initial sync is a conversation (the secondary's hashes come back before
            // blocks go): the secondary answers on its own thread, as in the real tool.
            std::atomic<bool> synced{false};
            std::thread secondary_side([&] {
                while (!synced) (void)secondary->process(Secondary::Clock::now() + std::chrono::milliseconds(5));
            });
            primary->send_initial_sync();
            synced = true;
            secondary_side.join();
        }
        REQUIRE(settle() == Secondary::Outcome::running);
        REQUIRE(primary->await_colo_entry());
    }

    bool checkpoint() {
        primary->send_checkpoint();
        settle();
        return primary->await_checkpoint();
    }
};

}  // namespace pipeline_test
