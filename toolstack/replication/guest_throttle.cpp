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
        lock.unlock();
        try {
            if (stopped_for.count() > 0) {
                backend_.pause();
                std::this_thread::sleep_for(stopped_for);
                backend_.resume();
            }
        } catch (const Error& e) {
            lock.lock();
            failure_ = e.what();
            try {
                backend_.resume();
            } catch (const Error&) {
                // Already reported: the first failure is the one stop() throws.
            }
            return;
        }
        lock.lock();
        changed_.wait_until(lock, period_end, [&] { return stopping_; });
    }
}

}  // namespace colo
