// The HVM params record (xen/hvm_params.hpp): its codec against good and hostile bodies, and the
// Xen backend carrying it: saved with the context, checked and set on the receiving domain before
// the context (the dom0 services' pages must already agree, the rest are set where they differ),
// the older context-only state still accepted. Also what a restored incoming domain needs: frames
// the image did not carry read as zero, and a saved domain is destroyed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "tests/unit/error_of.hpp"
#include "tests/unit/xen_fake_domain.hpp"
#include "xen/hvm_context.hpp"
#include "xen/hvm_params.hpp"
#include "xen/xen_backend.hpp"

using colo::Pfn;
using colo::StateRecord;
using colo::test::error_of;
using colo::xen::FakeDomain;
using colo::xen::HvmParam;
using colo::xen::XenBackend;

namespace {

constexpr std::uint32_t kStorePfn = 1, kViridian = 9, kIdentPt = 12, kConsolePfn = 17, kX87FipWidth = 36;

struct Guest {
    explicit Guest(colo::xen::DomainId id = 7) {
        auto owned = std::make_unique<FakeDomain>(id, 64);
        domain = owned.get();
        domain->hvm_context = colo::xen::make_hvm_context(static_cast<std::uint8_t>(id));
        // What libxl gives every PVH domain built from the same configuration.
        domain->params[kStorePfn] = 0xfeffc;
        domain->params[kConsolePfn] = 0xfefff;
        calls = std::move(owned);
    }
    XenBackend& attach() {
        backend = std::make_unique<XenBackend>(std::move(calls), domain->info.id, "guest");
        backend->pause();
        return *backend;
    }
    XenBackend& incoming() {
        backend = std::make_unique<XenBackend>(std::move(calls), colo::xen::IncomingGuest{"guest", "{}", {}});
        return *backend;
    }
    FakeDomain* domain = nullptr;
    std::unique_ptr<colo::xen::XenCalls> calls;
    std::unique_ptr<XenBackend> backend;
};

std::vector<std::byte> bytes(std::initializer_list<std::uint64_t> words32) {
    // Little-endian u32 words, for hand-made bodies.
    std::vector<std::byte> out;
    for (const std::uint64_t w : words32) {
        const auto v = static_cast<std::uint32_t>(w);
        const auto* p = reinterpret_cast<const std::byte*>(&v);
        out.insert(out.end(), p, p + 4);
    }
    return out;
}

std::ptrdiff_t index_of(const std::vector<std::string>& log, const std::string& op) {
    const auto it = std::find(log.begin(), log.end(), op);
    return it == log.end() ? -1 : it - log.begin();
}

}  // namespace

TEST_CASE("xen hvm params: the record round-trips and names every param Xen's stream carries") {
    CHECK(std::size(colo::xen::kCarriedHvmParams) == 16);
    const std::vector<HvmParam> params{{kStorePfn, 0xfeffc}, {kViridian, 0x1f}, {kX87FipWidth, 8}};
    const auto body = colo::xen::encode_hvm_params(params);
    CHECK(body.size() == 8 + 3 * 16);
    CHECK(colo::xen::decode_hvm_params(body) == params);
    CHECK(colo::xen::decode_hvm_params(colo::xen::encode_hvm_params({})).empty());
    REQUIRE(colo::xen::carried_hvm_param(kConsolePfn) != nullptr);
    CHECK(std::string(colo::xen::carried_hvm_param(kConsolePfn)->name) == "CONSOLE_PFN");
    CHECK(colo::xen::carried_hvm_param(0) == nullptr);  // CALLBACK_IRQ: the guest's own, not carried
}

TEST_CASE("xen hvm params: a hostile body is refused with one line") {
    const auto good = colo::xen::encode_hvm_params(std::vector<HvmParam>{{kStorePfn, 5}, {kIdentPt, 6}});
    CHECK(error_of([] { (void)colo::xen::decode_hvm_params(bytes({1})); }) ==
          "HVM params: 4 bytes is too short for the header");
    auto reserved = good;
    reserved[4] = std::byte{1};
    CHECK(error_of([&] { (void)colo::xen::decode_hvm_params(reserved); }) == "HVM params: the reserved field is not 0");
    auto short_body = good;
    short_body.resize(good.size() - 16);
    CHECK(error_of([&] { (void)colo::xen::decode_hvm_params(short_body); }) ==
          "HVM params: the header counts 2 params but the record holds 16 bytes of them");
    auto ragged = good;
    ragged.push_back(std::byte{0});
    CHECK(error_of([&] { (void)colo::xen::decode_hvm_params(ragged); }).find("counts 2 params") != std::string::npos);
    // A huge count with no entries is refused before anything is allocated for it.
    CHECK(error_of([] { (void)colo::xen::decode_hvm_params(bytes({0xffffffff, 0})); }).find("counts 4294967295") !=
          std::string::npos);
    auto unknown = good;
    unknown[8] = std::byte{0};  // the first index: CALLBACK_IRQ
    CHECK(error_of([&] { (void)colo::xen::decode_hvm_params(unknown); }) ==
          "HVM params: param 0 is not one the record carries");
    auto twice = good;
    std::memcpy(twice.data() + 24, twice.data() + 8, 8);
    CHECK(error_of([&] { (void)colo::xen::decode_hvm_params(twice); }) == "HVM params: param 1 appears twice");
    CHECK(error_of([] { (void)colo::xen::encode_hvm_params(std::vector<HvmParam>{{99, 1}}); }) ==
          "HVM params: param 99 is not one the record carries");
}

TEST_CASE("xen hvm params: saved with the context; the receiver sets the differing ones before the context") {
    Guest sender;
    sender.domain->params[kViridian] = 0x1f;
    sender.domain->params[kX87FipWidth] = 8;
    sender.domain->params[0] = 0x0200000000000000ull | 0xf3;  // the upcall: the guest's own, not carried
    const auto state = sender.attach().save_state();
    REQUIRE(state.size() == 2);
    CHECK(state[0].tag == colo::xen::kHvmContextTag);
    CHECK(state[1].tag == colo::xen::kHvmParamsTag);
    CHECK(state[1].version == colo::xen::kHvmParamsVersion);
    // Only the params that are not 0, in Xen's order.
    CHECK(colo::xen::decode_hvm_params(state[1].data) ==
          std::vector<HvmParam>{{kStorePfn, 0xfeffc}, {kConsolePfn, 0xfefff}, {kViridian, 0x1f}, {kX87FipWidth, 8}});

    Guest receiver(9);
    receiver.domain->params[kX87FipWidth] = 8;  // already the same: not set again
    XenBackend& r = receiver.attach();
    receiver.domain->log.clear();
    r.restore_state(state);
    CHECK(receiver.domain->params[kViridian] == 0x1f);
    CHECK(receiver.domain->counters.param_sets == 1);
    CHECK(receiver.domain->hvm_context == sender.domain->hvm_context);
    const auto& log = receiver.domain->log;
    CHECK(index_of(log, "hvm_param_set") >= 0);
    CHECK(index_of(log, "hvm_param_set") < index_of(log, "hvm_set_context"));
    // The store and console pages are the receiver's own already: never set.
    CHECK(receiver.domain->params[kStorePfn] == 0xfeffc);
}

TEST_CASE("xen hvm params: a store or console page that differs is refused by name, and nothing is set") {
    Guest sender;
    sender.domain->params[kViridian] = 0x1f;
    const auto state = sender.attach().save_state();
    Guest receiver(9);
    receiver.domain->params[kConsolePfn] = 0xfeffe;
    XenBackend& r = receiver.attach();
    const std::string why = error_of([&] { r.restore_state(state); });
    CHECK(why.find("HVM param CONSOLE_PFN is 1044479 in the sent state but 1044478 here") != std::string::npos);
    CHECK(why.find('\n') == std::string::npos);
    CHECK(receiver.domain->counters.param_sets == 0);  // VIRIDIAN was not set either
    CHECK(receiver.domain->counters.set_contexts == 0);
    CHECK(receiver.domain->params[kConsolePfn] == 0xfeffe);
}

TEST_CASE("xen hvm params: a state of the context alone (older senders, images) still restores") {
    Guest sender;
    const auto context = sender.attach().save_state().at(0);
    Guest receiver(9);
    XenBackend& r = receiver.attach();
    receiver.domain->log.clear();
    r.restore_state(std::vector<StateRecord>{context});
    CHECK(receiver.domain->hvm_context == sender.domain->hvm_context);
    CHECK(receiver.domain->counters.param_sets == 0);
    CHECK(index_of(receiver.domain->log, "hvm_param") == -1);  // nothing asked either
}

TEST_CASE("xen hvm params: a bad params record, a second record of a kind, a failing set") {
    Guest sender;
    sender.domain->params[kIdentPt] = 0xfeffd000;
    auto state = sender.attach().save_state();
    Guest receiver(9);
    XenBackend& r = receiver.attach();

    auto versioned = state;
    versioned[1].version = 2;
    CHECK(error_of([&] { r.restore_state(versioned); }) ==
          "xen domain 9 (guest): HVM params record version 2 is not supported (have 1)");
    auto twice = state;
    twice.push_back(state[1]);
    CHECK(error_of([&] { r.restore_state(twice); }) == "xen domain 9 (guest): two state records with tag 2");
    auto damaged = state;
    damaged[1].data.resize(12);
    CHECK(error_of([&] { r.restore_state(damaged); }).find("HVM params: the header counts") == 0);
    CHECK(receiver.domain->counters.set_contexts == 0);

    receiver.domain->fail_next("hvm_param_set", EPERM);
    try {
        r.restore_state(state);
        FAIL("no error");
    } catch (const colo::SystemError& e) {
        CHECK(std::string(e.operation()) == "xc_hvm_param_set(12)");
        CHECK(e.error_number() == EPERM);
    }
    CHECK(receiver.domain->counters.set_contexts == 0);
}

TEST_CASE("xen incoming: frames nothing wrote before the first restore read as zero; later writes stay") {
    Guest sender;
    const auto state = sender.attach().save_state();
    Guest receiver(12);
    // What libxl loaded when it built the domain: a kernel where the sender's page is zero.
    std::memset(receiver.domain->frame(Pfn{3}), 0x4c, colo::kPageSize);
    std::memset(receiver.domain->frame(Pfn{4}), 0x4c, colo::kPageSize);
    XenBackend& r = receiver.incoming();
    std::vector<std::byte> page(colo::kPageSize, std::byte{0x77});
    const Pfn sent{4};
    r.memory().write_pages(std::span(&sent, 1), page);
    r.restore_state(state);
    CHECK(receiver.domain->frame(Pfn{3})[0] == std::byte{0});
    CHECK(receiver.domain->frame(Pfn{3})[colo::kPageSize - 1] == std::byte{0});
    CHECK(receiver.domain->frame(Pfn{4})[0] == std::byte{0x77});
    // Only once: what the guest (or a later checkpoint) writes afterwards is not undone.
    receiver.domain->guest_write(Pfn{5}, std::byte{0x11});
    r.restore_state(state);
    CHECK(receiver.domain->frame(Pfn{5})[0] == std::byte{0x11});
}

TEST_CASE("xen backend: a domain saved for good is destroyed, and then left alone") {
    Guest g;
    XenBackend& b = g.attach();
    b.start_dirty_log();
    auto journal = g.domain->journal;
    b.destroy_after_save();
    CHECK(g.domain->destroyed);
    g.backend.reset();
    CHECK(std::count(journal->begin(), journal->end(), "logdirty_off") == 0);
}
