// The pipeline's one clock (steady: pause times and heartbeats must not jump with the wall clock)
// and the two readings every part of it takes.
#pragma once

#include <chrono>
#include <cstdint>

namespace colo {

using PipelineClock = std::chrono::steady_clock;

// Microseconds from `since` to now: pause times, downtimes.
[[nodiscard]] inline std::chrono::microseconds elapsed_since(PipelineClock::time_point since) {
    return std::chrono::duration_cast<std::chrono::microseconds>(PipelineClock::now() - since);
}

// Microseconds from one reading to a later one: the steps of a pause.
[[nodiscard]] inline std::chrono::microseconds micros_between(PipelineClock::time_point from,
                                                              PipelineClock::time_point to) {
    return std::chrono::duration_cast<std::chrono::microseconds>(to - from);
}

// Now in nanoseconds, as a heartbeat carries it.
[[nodiscard]] inline std::uint64_t pipeline_now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(PipelineClock::now().time_since_epoch()).count());
}

}  // namespace colo
