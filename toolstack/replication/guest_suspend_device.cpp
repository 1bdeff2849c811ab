#include "toolstack/replication/guest_suspend_device.hpp"

#include <thread>

#include "backends/error.hpp"

namespace colo::suspend_device {

namespace {

using Clock = std::chrono::steady_clock;
using Withdrawal = GuestSuspend::Withdrawal;

// Whether `guest` is suspended by `until`, looking every millisecond.
bool wait_suspended(GuestSuspend& guest, Clock::time_point until) {
    for (;;) {
        if (guest.suspended()) return true;
        if (Clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

// Withdraws the request out; one the guest took already is waited for until `until`. Whether
// the guest is suspended (then it is the caller's to resume).
bool withdraw_or_wait(GuestSuspend& guest, Clock::time_point until) {
    switch (guest.withdraw()) {
        case Withdrawal::withdrawn: return false;
        case Withdrawal::suspended: return true;
        case Withdrawal::taken: return wait_suspended(guest, until);
    }
    return false;
}

}  // namespace

// A request the guest took when its time was up gets the same time again to end in a
// suspension. Not a shorter fixed grace: the timeout is the operator's measure of how long a
// suspend takes on this host, and a guest that took the request is part-way through that same
// path (Linux freezes tasks, then devices), slow for the same reasons. A checkpoint waits for it
// between checkpoints with the link served (poll); teardown and a save or migration wait
// without, as they waited for the request itself.
Primary::Primary(GuestSuspend& guest, Millis timeout) : guest_(guest), how_(guest.how()), timeout_(timeout) {}

void Primary::found_suspended() {
    if (request_ != Request::none) {
        const auto took = std::chrono::duration_cast<Micros>(Clock::now() - requested_at_);
        std::lock_guard lock(mutex_);
        times_.add(took);
    }
    request_ = Request::none;
    suspended_ = true;
}

void Primary::presuspend() {
    late_ = false;
    if (suspended_) return;  // still suspended from a checkpoint that kept it so (handover), or late
    // Suspended already (it acted on an earlier request after we gave up on it): asking again
    // would make it suspend a second time, after this checkpoint's resume, with nobody waiting.
    if (guest_.suspended()) {
        found_suspended();
        return;
    }
    // It took the last request and is on its way: the same reason not to ask again.
    if (request_ == Request::taken && Clock::now() < taken_until_) return;
    requested_at_ = Clock::now();
    guest_.request();
    request_ = Request::asked;
}

bool Primary::ready_to_pause() {
    if (suspended_) return true;
    if (request_ == Request::none || !guest_.suspended()) return false;
    found_suspended();
    return true;
}

bool Primary::cancel_presuspend() {
    if (suspended_) return true;
    switch (guest_.withdraw()) {
        case GuestSuspend::Withdrawal::suspended:
            found_suspended();  // in time after all: the checkpoint goes on
            return true;
        case GuestSuspend::Withdrawal::taken:
            // Watched from the first time it was found taken, not again from every skip.
            if (request_ != Request::taken) taken_until_ = Clock::now() + timeout_;
            request_ = Request::taken;
            break;
        case GuestSuspend::Withdrawal::withdrawn:
            request_ = Request::none;
            break;
    }
    std::lock_guard lock(mutex_);
    ++timeouts_;
    return false;
}

void Primary::poll(const DeviceSend&) {
    if (request_ != Request::taken || suspended_) return;
    if (guest_.suspended()) {
        found_suspended();
        late_ = true;
    } else if (Clock::now() >= taken_until_) {
        // Its own suspend failed (Linux runs on when a freeze fails): the next checkpoint asks anew.
        request_ = Request::none;
    }
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
        // The guest is asked, not only our flags: it may have acted on a request we gave up on.
        if (request_ != Request::none && !suspended_) {
            const auto until = request_ == Request::taken ? taken_until_ : Clock::now() + timeout_;
            (void)withdraw_or_wait(guest_, until);
        }
        if (guest_.suspended()) guest_.resume_cancelled();
    } catch (const std::exception&) {
        // The guest is gone or stopped otherwise; the caller's resume says the rest.
    }
    request_ = Request::none;
    suspended_ = late_ = false;
}

SuspendStats Primary::stats() const {
    SuspendStats out;
    out.how = how_;
    std::lock_guard lock(mutex_);
    out.suspends = times_.count();
    out.timeouts = timeouts_;
    out.p50 = times_.percentile(50);
    out.p99 = times_.percentile(99);
    out.max = times_.max();
    return out;
}

SuspendedGuest::SuspendedGuest(GuestSuspend& guest, Millis timeout) : guest_(&guest) {
    // Suspended already (an earlier request taken late): that suspension serves.
    if (guest.suspended()) return;
    guest.request();
    if (wait_suspended(guest, Clock::now() + timeout)) return;
    if (withdraw_or_wait(guest, Clock::now() + timeout)) guest.resume_cancelled();
    throw Error("the guest did not suspend within " + std::to_string(timeout.count()) + " ms when asked through " +
                guest.how());
}

SuspendedGuest::~SuspendedGuest() {
    if (guest_ == nullptr) return;
    try {
        resume();
    } catch (const std::exception&) {
        // Only on the way out of a failure, which says what happened; the guest stays suspended.
    }
}

void SuspendedGuest::resume() {
    if (GuestSuspend* guest = std::exchange(guest_, nullptr)) guest->resume_cancelled();
}

}  // namespace colo::suspend_device
