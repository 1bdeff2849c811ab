// Notices that this process stood still (SIGSTOP, a frozen host, a starved scheduler) for longer
// than the heartbeat timeout. Silence detection cannot: a wait that began before the stop ends
// after it with the peer's bytes already there, and bytes that sat in the socket while we stood
// still read as fresh. After such a stall the peer may have taken over, so what it said before
// it (a checkpoint acknowledgement in the socket buffer) must not release output now.
//
// A thread ticks every 10 ms and keeps the longest gap between two ticks; take_stall() is a tick
// too (under the same lock), so it sees a stall whichever of the two runs first after one, and
// reports each stall once.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

namespace colo {

class StallWatch {
public:
    explicit StallWatch(std::chrono::milliseconds threshold);
    ~StallWatch();
    StallWatch(const StallWatch&) = delete;
    StallWatch& operator=(const StallWatch&) = delete;

    // The longest stall since the last call, when it was longer than the threshold.
    [[nodiscard]] std::optional<std::chrono::milliseconds> take_stall();

private:
    using Clock = std::chrono::steady_clock;
    void tick();  // under mutex_

    std::chrono::milliseconds threshold_;
    std::mutex mutex_;
    Clock::time_point last_tick_;
    Clock::duration worst_gap_{0};
    std::jthread ticker_;
};

}  // namespace colo
