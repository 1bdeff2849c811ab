// Two Xen backends over fake domains (xen_fake_domain.hpp), a PVM's (domain 3) and an SVM's
// (domain 4), with a Primary and a Secondary between them on an in-memory link, driven step by
// step from one thread: the checkpoint pipeline over the Xen backend without Xen.
#pragma once

#include <doctest/doctest.h>

#include <functional>
#include <memory>

#include "tests/unit/xen_fake_domain.hpp"
#include "toolstack/replication/memory_channel.hpp"
#include "toolstack/replication/replication.hpp"
#include "xen/hvm_context.hpp"
#include "xen/xen_backend.hpp"

namespace colo::xen {

constexpr std::uint64_t kFrames = 128;

struct XenPair {
    FakeDomain* pvm_domain = nullptr;
    FakeDomain* svm_domain = nullptr;
    std::unique_ptr<XenBackend> pvm, svm;
    std::unique_ptr<MemoryChannel> to_secondary, to_primary;
    std::unique_ptr<Primary> primary;
    std::unique_ptr<Secondary> secondary;

    // `prepare_pvm` runs on the PVM's fake domain before the backend attaches to it (to make it
    // a cooperative guest); `adjust` on the primary's config before the Primary is made.
    explicit XenPair(ProtectionMode mode = ProtectionMode::colo, const std::function<void(FakeDomain&)>& prepare_pvm = {},
                     const std::function<void(PrimaryConfig&)>& adjust = {}) {
        auto a = std::make_unique<FakeDomain>(3, kFrames);
        auto b = std::make_unique<FakeDomain>(4, kFrames);
        pvm_domain = a.get();
        svm_domain = b.get();
        if (prepare_pvm) prepare_pvm(*pvm_domain);
        pvm_domain->hvm_context = xen::make_hvm_context(1);
        svm_domain->hvm_context = xen::make_hvm_context(1);
        for (std::uint64_t p = 0; p < kFrames; ++p) pvm_domain->guest_write(Pfn{p}, std::byte{1});
        pvm = std::make_unique<XenBackend>(std::move(a), 3, "guest");
        svm = std::make_unique<XenBackend>(std::move(b), 4, "guest");
        svm->pause();  // an incoming guest is built paused
        auto ends = MemoryChannel::make_pair();
        to_secondary = std::move(ends.first);
        to_primary = std::move(ends.second);
        PrimaryConfig pc;
        pc.mode = mode;
        pc.link.peer_timeout = Millis{20000};
        pc.precopy.auto_converge = false;
        pc.log = [](LogLevel, std::string_view) {};
        SecondaryConfig sc;
        sc.link.peer_timeout = Millis{20000};
        sc.log = pc.log;
        if (adjust) adjust(pc);
        primary = std::make_unique<Primary>(*pvm, *to_secondary, pc, OutputSink{});
        secondary = std::make_unique<Secondary>(*svm, *to_primary, sc, OutputSink{});
    }

    void settle() {
        try {
            (void)secondary->process(Secondary::Clock::now());
        } catch (const Error&) {
            // The secondary failed and told the primary.
        }
    }

    void protect() {
        primary->send_initial_sync();
        settle();
        REQUIRE(primary->await_colo_entry());
    }

    // One checkpoint with dirty pages; afterwards each side has heard what the other said.
    void checkpoint() {
        for (std::uint64_t p = 0; p < 10; ++p) pvm_domain->guest_write(Pfn{p}, std::byte{2});
        primary->send_checkpoint();
        settle();
        (void)primary->await_checkpoint();
        settle();
        primary->poll(Primary::Clock::now());
        settle();
    }
};

}  // namespace colo::xen
