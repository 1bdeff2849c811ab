// The checkpoint pipeline over the Xen backend, with each libxc call of a checkpoint failing in
// turn behind the XenCalls seam (FakeDomain::fail_next), on the primary's domain and on the
// secondary's: whatever fails, protection ends where it says, the PVM's domain runs unpaused and
// the secondary never takes over.
#include <doctest/doctest.h>

#include <cerrno>
#include <memory>
#include <set>
#include <string>

#include "tests/unit/xen_fake_domain.hpp"
#include "toolstack/replication/memory_channel.hpp"
#include "toolstack/replication/replication.hpp"
#include "xen/hvm_context.hpp"
#include "xen/xen_backend.hpp"

using namespace colo;
using colo::xen::FakeDomain;
using colo::xen::XenBackend;

namespace {

constexpr std::uint64_t kFrames = 128;

struct XenPair {
    FakeDomain* pvm_domain = nullptr;
    FakeDomain* svm_domain = nullptr;
    std::unique_ptr<XenBackend> pvm, svm;
    std::unique_ptr<MemoryChannel> to_secondary, to_primary;
    std::unique_ptr<Primary> primary;
    std::unique_ptr<Secondary> secondary;

    XenPair() {
        auto a = std::make_unique<FakeDomain>(3, kFrames);
        auto b = std::make_unique<FakeDomain>(4, kFrames);
        pvm_domain = a.get();
        svm_domain = b.get();
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
        pc.link.peer_timeout = Millis{20000};
        pc.precopy.auto_converge = false;
        pc.log = [](LogLevel, std::string_view) {};
        SecondaryConfig sc;
        sc.link.peer_timeout = Millis{20000};
        sc.log = pc.log;
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

// The seam operations a checkpoint makes on one domain, by name.
std::set<std::string> checkpoint_ops(bool on_primary) {
    XenPair pair;
    pair.protect();
    FakeDomain* domain = on_primary ? pair.pvm_domain : pair.svm_domain;
    const std::size_t from = domain->log.size();
    pair.checkpoint();
    REQUIRE(pair.primary->role() == Role::protecting);
    REQUIRE(pair.primary->status().checkpoints == 1);
    return {domain->log.begin() + static_cast<std::ptrdiff_t>(from), domain->log.end()};
}

}  // namespace

TEST_CASE("xen pipeline failure: each libxc call of a checkpoint on the PVM's domain fails in turn") {
    const auto ops = checkpoint_ops(true);
    for (const char* op : {"pause", "unpause", "logdirty_clean", "hvm_get_context"}) CHECK(ops.count(op) == 1);
    for (const std::string& op : ops) {
        CAPTURE(op);
        XenPair pair;
        pair.protect();
        pair.pvm_domain->fail_next(op, EIO);
        pair.checkpoint();
        CHECK(pair.primary->role() == Role::unprotected);
        CHECK(pair.primary->status().protection_lost_reason.find("Input/output error") != std::string::npos);
        CHECK_FALSE(pair.pvm->paused());
        CHECK(pair.secondary->role() == Role::stopped);
    }
}

TEST_CASE("xen pipeline failure: each libxc call of a checkpoint on the SVM's domain fails in turn") {
    const auto ops = checkpoint_ops(false);
    for (const char* op : {"pause", "logdirty_clean", "hvm_set_context", "unpause"}) CHECK(ops.count(op) == 1);
    for (const std::string& op : ops) {
        CAPTURE(op);
        XenPair pair;
        pair.protect();
        pair.svm_domain->fail_next(op, EIO);
        pair.checkpoint();
        CHECK(pair.secondary->role() == Role::stopped);
        CHECK(pair.secondary->phase() == transaction::SecondaryPhase::failed);
        CHECK(pair.secondary->status().stopped_reason.find("Input/output error") != std::string::npos);
        CHECK(pair.primary->role() == Role::unprotected);
        CHECK(pair.primary->status().protection_lost_reason.find("the secondary failed: ") == 0);
        CHECK_FALSE(pair.pvm->paused());
    }
}
