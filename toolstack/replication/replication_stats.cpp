#include "toolstack/replication/replication_stats.hpp"

#include <algorithm>
#include <cmath>

namespace colo {

void PauseHistory::add(Micros pause) {
    if (samples_.size() < kCapacity) {
        samples_.push_back(pause);
    } else {
        samples_[next_] = pause;
        next_ = (next_ + 1) % kCapacity;
    }
    ++total_;
    max_ = std::max(max_, pause);
}

Micros PauseHistory::percentile(double p) const {
    if (samples_.empty()) return Micros{0};
    std::vector<Micros> sorted = samples_;
    std::sort(sorted.begin(), sorted.end());
    const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace colo
