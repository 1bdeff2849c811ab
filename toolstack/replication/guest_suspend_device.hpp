// A guest's cooperative suspend as a checkpoint device (checkpoint_device.hpp): for a guest whose
// backend offers one (Backend::cooperative_suspend; Xen PV-aware kernels), every checkpoint and
// the initial sync's final pause take the guest suspended by itself, so the image the secondary
// holds is one a resume rebuilds every hypervisor binding from (backends/guest_suspend.hpp).
//
//   presuspend      request the suspend (the guest's suspend event channel when it offers one,
//                   else xenstore control/shutdown = "suspend"); a guest found suspended already
//                   (it took an earlier request late) is not asked again: that suspension serves
//   ready_to_pause  polled until the guest is suspended (the link is served in between)
//   cancel_...      not in time: the request is withdrawn and the checkpoint skipped, unless
//                   the guest suspended meanwhile. A request it had taken already is watched
//                   (poll) for as long again: when it suspends, the device wants a checkpoint
//                   at once, which uses that suspension
//   preresume       the checkpoint is captured: resume it as "suspend cancelled", so the PVM
//                   keeps its bindings (xc_domain_resume fast, as xl remus)
//   teardown        protection ends: a request still out is withdrawn (one taken is waited
//                   for), and a guest that is suspended gets the same resume
// It has no records and no secondary half: a takeover resumes the suspended image the last
// checkpoint carried, and the guest's own resume path does the rest.
//
// A save or a migration's final pause, which have no device layer, hold a SuspendedGuest
// instead: the same request, wait, withdraw and resume.
//
// Threading: hooks on the pipeline thread; stats() and how() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "backends/guest_suspend.hpp"
#include "toolstack/replication/checkpoint_device.hpp"
#include "toolstack/replication/replication_stats.hpp"

namespace colo::suspend_device {

struct SuspendStats {
    std::string how;              // how the guest is asked (GuestSuspend::how)
    std::uint64_t suspends = 0;   // times it suspended when asked
    std::uint64_t timeouts = 0;   // checkpoints skipped because it did not suspend in time
    Micros p50{0}, p99{0}, max{0};  // request → suspended
};

class Primary final : public PrimaryDevice {
public:
    // `timeout`: how long the guest gets to suspend when asked, and again to end in a
    // suspension a request it took once that time had passed.
    Primary(GuestSuspend& guest, Millis timeout);

    [[nodiscard]] std::string name() const override { return "suspend"; }
    [[nodiscard]] bool owns(const protocol::Message&) const override { return false; }
    void presuspend() override;
    [[nodiscard]] bool ready_to_pause() override;
    [[nodiscard]] bool cancel_presuspend() override;
    void setup(ProtectionMode, const DeviceSend&) override {}
    void postsuspend() override {}
    std::uint32_t send_checkpoint(const DeviceSend&) override { return 0; }
    void preresume() override;
    void commit() override {}
    void abort() noexcept override {}
    void receive(const protocol::Message& message) override;
    void poll(const DeviceSend&) override;
    // The guest suspended late, for a checkpoint that was skipped: take one now.
    [[nodiscard]] bool wants_checkpoint() const override { return late_; }
    void teardown() noexcept override;

    [[nodiscard]] const std::string& how() const { return how_; }
    [[nodiscard]] SuspendStats stats() const;

private:
    using Clock = std::chrono::steady_clock;
    // The guest is suspended (for the request out, if any): the checkpoint may pause it.
    void found_suspended();

    GuestSuspend& guest_;
    const std::string how_;  // the guest's, kept: status asks without taking the backend's lock
    const Millis timeout_;
    enum class Request { none, asked, taken } request_ = Request::none;
    bool suspended_ = false;  // suspended, not yet resumed by us
    bool late_ = false;       // suspended after its checkpoint was skipped
    Clock::time_point requested_at_{};
    Clock::time_point taken_until_{};  // Request::taken: watched until then
    mutable std::mutex mutex_;  // guards the two below
    PauseHistory times_;
    std::uint64_t timeouts_ = 0;
};

// A guest suspended for a save or a migration's final pause, from the request until it is
// resumed (resume(), or the destructor) or its suspension ends otherwise (release()).
class SuspendedGuest {
public:
    // Asks `guest` to suspend and waits, sleeping a millisecond at a time, until it has. Throws
    // colo::Error when it did not within `timeout`: the request is withdrawn; a guest that had
    // taken it already gets as long again to suspend and is then resumed as cancelled, so it
    // runs on as before (it is not left suspended with nobody to resume it).
    SuspendedGuest(GuestSuspend& guest, Millis timeout);
    ~SuspendedGuest();
    SuspendedGuest(const SuspendedGuest&) = delete;
    SuspendedGuest& operator=(const SuspendedGuest&) = delete;

    // GuestSuspend::resume_cancelled, once.
    void resume();
    // Its suspension ends some other way: the domain was destroyed after a save, or runs
    // elsewhere after a migration.
    void release() noexcept { guest_ = nullptr; }

private:
    GuestSuspend* guest_;
};

}  // namespace colo::suspend_device
