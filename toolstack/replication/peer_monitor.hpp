// Liveness of the other side: when to send our next Heartbeat, and whether the peer has been
// silent for longer than the peer timeout. Any message from the peer counts as a sign of life,
// not only Heartbeats (a checkpoint in progress is as good as a heartbeat).
#pragma once

#include <chrono>

#include "toolstack/replication/replication_config.hpp"

namespace colo {

class PeerMonitor {
public:
    using Clock = std::chrono::steady_clock;

    PeerMonitor(LinkConfig config, Clock::time_point now);

    void heard(Clock::time_point now) { last_heard_ = now; }
    [[nodiscard]] bool dead(Clock::time_point now) const { return now - last_heard_ >= config_.peer_timeout; }
    [[nodiscard]] Clock::time_point death_deadline() const { return last_heard_ + config_.peer_timeout; }

    [[nodiscard]] bool heartbeat_due(Clock::time_point now) const { return now >= next_heartbeat_; }
    [[nodiscard]] Clock::time_point next_heartbeat() const { return next_heartbeat_; }
    // Records a heartbeat sent at `now`; returns its sequence number.
    std::uint64_t heartbeat_sent(Clock::time_point now);

private:
    LinkConfig config_;
    Clock::time_point last_heard_;
    Clock::time_point next_heartbeat_;
    std::uint64_t sequence_ = 0;
};

}  // namespace colo
