#include "toolstack/replication/peer_monitor.hpp"

#include <string>

#include "backends/error.hpp"

namespace colo {

PeerMonitor::PeerMonitor(LinkConfig config, Clock::time_point now)
    : config_(config), last_heard_(now), next_heartbeat_(now) {
    validate(config_);
}

std::uint64_t PeerMonitor::heartbeat_sent(Clock::time_point now) {
    next_heartbeat_ = now + config_.heartbeat_period;
    return ++sequence_;
}

}  // namespace colo
