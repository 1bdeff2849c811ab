#include "toolstack/replication/guest_throttle.hpp"

#include <algorithm>

#include "backends/error.hpp"

namespace colo {

GuestThrottle::GuestThrottle(Backend& backend, std::chrono::milliseconds period)
    : backend_(backend), period_(period) {}

GuestThrottle::~GuestThrottle() {
    try {
        stop();
    } catch (const Error&) {
        // A destructor does not throw; whoever needed to know called stop() and heard it there.
    }
}

void GuestThrottle::set_percent(unsigned percent) {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    percent_ = std::min(percent, 99u);
    if (percent_ > 0 && !thread_.joinable()) thread_ = std::thread([this] { run(); });
    changed_.notify_all();
}

unsigned GuestThrottle::percent() const {
    std::lock_guard lock(mutex_);
    return percent_;
}

void GuestThrottle::pause_guest() {
    std::lock_guard lock(mutex_);
    backend_.pause();  // during a spell already paused: idempotent, and now held past the spell
    held_ = true;
}

void GuestThrottle::resume_guest() {
    std::lock_guard lock(mutex_);
    held_ = false;
    if (!in_spell_) backend_.resume();  // during a spell: the spell's end resumes it
}

void GuestThrottle::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        changed_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mutex_);
    if (!failure_.empty()) {
        std::string why = std::move(failure_);
        failure_.clear();
        throw Error("throttling the guest: " + why);
    }
}

void GuestThrottle::run() {
    using Clock = std::chrono::steady_clock;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        const auto stopped_for = std::chrono::microseconds(period_) * percent_ / 100;
        const auto period_end = Clock::now() + period_;
        try {
            // Decided and done under mutex_, so the pipeline's pause_guest/resume_guest come
            // before or after, never in between.
            if (stopped_for.count() > 0 && !held_) {
                backend_.pause();
                in_spell_ = true;
                changed_.wait_until(lock, Clock::now() + stopped_for, [&] { return stopping_; });
                in_spell_ = false;
                if (!held_) backend_.resume();
            }
        } catch (const Error& e) {
            in_spell_ = false;
            failure_ = e.what();
            try {
                if (!held_) backend_.resume();
            } catch (const Error&) {
                // Already reported: the first failure is the one stop() throws.
            }
            return;
        }
        changed_.wait_until(lock, period_end, [&] { return stopping_; });
    }
}

}  // namespace colo
