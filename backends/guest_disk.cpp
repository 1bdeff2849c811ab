#include "backends/guest_disk.hpp"

#include <algorithm>

namespace colo {

void recent_flush_percentiles(std::span<const std::uint32_t> times_us, DiskStats& into) {
    if (times_us.empty()) return;
    std::vector<std::uint32_t> sorted(times_us.begin(), times_us.end());
    std::sort(sorted.begin(), sorted.end());
    const auto at = [&](std::size_t percent) { return sorted[(sorted.size() - 1) * percent / 100]; };
    into.recent_flush_p50_us = at(50);
    into.recent_flush_p99_us = at(99);
}

}  // namespace colo
