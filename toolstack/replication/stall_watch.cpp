#include "toolstack/replication/stall_watch.hpp"

#include <algorithm>

namespace colo {

namespace {
constexpr auto kTick = std::chrono::milliseconds(10);
}  // namespace

StallWatch::StallWatch(std::chrono::milliseconds threshold) : threshold_(threshold), last_tick_(Clock::now()) {
    ticker_ = std::jthread([this](std::stop_token stop) {
        while (!stop.stop_requested()) {
            std::this_thread::sleep_for(kTick);
            std::lock_guard lock(mutex_);
            tick();
        }
    });
}

StallWatch::~StallWatch() {
    ticker_.request_stop();
    ticker_.join();
}

void StallWatch::tick() {
    const auto now = Clock::now();
    worst_gap_ = std::max(worst_gap_, now - last_tick_);
    last_tick_ = now;
}

std::optional<std::chrono::milliseconds> StallWatch::take_stall() {
    std::lock_guard lock(mutex_);
    tick();
    const auto stall = std::chrono::duration_cast<std::chrono::milliseconds>(worst_gap_);
    worst_gap_ = Clock::duration::zero();
    if (stall <= threshold_) return std::nullopt;
    return stall;
}

}  // namespace colo
