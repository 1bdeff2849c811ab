// A guest's cooperative suspend as a checkpoint device (checkpoint_device.hpp): for a guest whose
// backend offers one (Backend::cooperative_suspend; Xen PV-aware kernels), every checkpoint and
// the initial sync's final pause take the guest suspended by itself, so the image the secondary
// holds is one a resume rebuilds every hypervisor binding from (backends/guest_suspend.hpp).
//
//   presuspend      request the suspend (xenstore control/shutdown = "suspend")
//   ready_to_pause  polled until the guest is suspended (the link is served in between)
//   cancel_...      not in time: the request is withdrawn; the checkpoint is skipped
//   preresume       the checkpoint is captured: resume it as "suspend cancelled", so the PVM
//                   keeps its bindings (xc_domain_resume fast, as xl remus)
//   teardown        protection ends with the guest suspended: the same resume
// It has no records and no secondary half: a takeover resumes the suspended image the last
// checkpoint carried, and the guest's own resume path does the rest.
//
// Threading: hooks on the pipeline thread; stats() from any thread.
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
    std::uint64_t timeouts = 0;   // times it did not in time (checkpoints skipped)
    Micros p50{0}, p99{0}, max{0};  // request → suspended
};

class Primary final : public PrimaryDevice {
public:
    explicit Primary(GuestSuspend& guest);

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
    void poll(const DeviceSend&) override {}
    [[nodiscard]] bool wants_checkpoint() const override { return false; }
    void teardown() noexcept override;

    [[nodiscard]] SuspendStats stats() const;

private:
    GuestSuspend& guest_;
    bool requested_ = false;  // asked, not yet suspended
    bool suspended_ = false;  // suspended by our request, not yet resumed
    std::chrono::steady_clock::time_point requested_at_{};
    mutable std::mutex mutex_;  // guards the two below
    PauseHistory times_;
    std::uint64_t timeouts_ = 0;
};

// A migration's final pause, which has no device layer: asks `guest` to suspend and waits
// (sleeping a millisecond at a time) until it has. Throws colo::Error when it did not within
// `timeout` (the request withdrawn).
void suspend_for_migration(GuestSuspend& guest, std::chrono::milliseconds timeout);

}  // namespace colo::suspend_device
