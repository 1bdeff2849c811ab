// The checkpoint pipeline over the Xen backend, with each libxc call of a checkpoint failing in
// turn behind the XenCalls seam (FakeDomain::fail_next), on the primary's domain and on the
// secondary's: whatever fails, protection ends where it says, the PVM's domain runs unpaused and
// the secondary never takes over.
#include <doctest/doctest.h>

#include <cerrno>
#include <memory>
#include <set>
#include <string>

#include "tests/unit/xen_pipeline_pair.hpp"

using namespace colo;
using colo::xen::FakeDomain;
using colo::xen::XenPair;

namespace {

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
