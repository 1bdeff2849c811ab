#include "toolstack/replication/peer_monitor.hpp"

#include <string>

#include "backends/error.hpp"

namespace colo {

PeerMonitor::PeerMonitor(LinkConfig config, Clock::time_point now)
    : config_(config), last_heard_(now), next_heartbeat_(now) {
    if (config_.heartbeat_period.count() <= 0) throw Error("replication: heartbeat period must be positive");
    if (config_.peer_timeout <= config_.heartbeat_period) {
        throw Error("replication: peer timeout (" + std::to_string(config_.peer_timeout.count()) +
                    " ms) must be longer than the heartbeat period (" +
                    std::to_string(config_.heartbeat_period.count()) + " ms)");
    }
}

std::uint64_t PeerMonitor::heartbeat_sent(Clock::time_point now) {
    next_heartbeat_ = now + config_.heartbeat_period;
    return ++sequence_;
}

}  // namespace colo
