#include "toolstack/replication/guest_suspend_device.hpp"

#include <thread>

#include "backends/error.hpp"

namespace colo::suspend_device {

Primary::Primary(GuestSuspend& guest) : guest_(guest) {}

void Primary::presuspend() {
    if (suspended_) return;  // still suspended from a checkpoint that kept it so (handover)
    requested_at_ = std::chrono::steady_clock::now();
    guest_.request();
    requested_ = true;
}

bool Primary::ready_to_pause() {
    if (suspended_) return true;
    if (!requested_ || !guest_.suspended()) return false;
    requested_ = false;
    suspended_ = true;
    const auto took = std::chrono::duration_cast<Micros>(std::chrono::steady_clock::now() - requested_at_);
    std::lock_guard lock(mutex_);
    times_.add(took);
    return true;
}

bool Primary::cancel_presuspend() {
    {
        std::lock_guard lock(mutex_);
        ++timeouts_;
    }
    requested_ = false;
    suspended_ = guest_.withdraw();
    return suspended_;
}

void Primary::preresume() {
    if (!suspended_) return;
    guest_.resume_cancelled();
    suspended_ = false;
}

void Primary::receive(const protocol::Message& message) {
    throw Error(name() + ": unexpected " + protocol::message_name(message) + " from the secondary");
}

void Primary::teardown() noexcept {
    try {
        const bool suspended = suspended_ || (requested_ && guest_.withdraw());
        if (suspended) guest_.resume_cancelled();
    } catch (const std::exception&) {
        // The guest is gone or stopped otherwise; the caller's resume says the rest.
    }
    requested_ = suspended_ = false;
}

SuspendStats Primary::stats() const {
    SuspendStats out;
    out.how = guest_.how();
    std::lock_guard lock(mutex_);
    out.suspends = times_.count();
    out.timeouts = timeouts_;
    out.p50 = times_.percentile(50);
    out.p99 = times_.percentile(99);
    out.max = times_.max();
    return out;
}

void suspend_for_migration(GuestSuspend& guest, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    guest.request();
    while (!guest.suspended()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            if (guest.withdraw()) return;
            throw Error("the guest did not suspend within " + std::to_string(timeout.count()) + " ms when asked through " +
                        guest.how());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

}  // namespace colo::suspend_device
