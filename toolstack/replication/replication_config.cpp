#include "toolstack/replication/replication_config.hpp"

#include <iostream>
#include <string>

#include "backends/error.hpp"

namespace colo {

LogFn default_log() {
    return [](LogLevel level, std::string_view line) {
        if (level == LogLevel::notice) std::cerr << line << '\n';
    };
}

const char* to_string(ProtectionMode mode) {
    switch (mode) {
        case ProtectionMode::colo: return "colo";
        case ProtectionMode::remus: return "remus";
    }
    return "unknown";
}

void validate(const LinkConfig& config) {
    if (config.heartbeat_period.count() <= 0) throw Error("replication: heartbeat period must be positive");
    if (config.peer_timeout <= config.heartbeat_period) {
        throw Error("replication: peer timeout (" + std::to_string(config.peer_timeout.count()) +
                    " ms) must be longer than the heartbeat period (" +
                    std::to_string(config.heartbeat_period.count()) + " ms)");
    }
}

void validate(const PrimaryConfig& config) {
    validate(config.link);
    if (config.checkpoint_interval.count() <= 0 || config.max_checkpoint_interval.count() <= 0) {
        throw Error("primary: checkpoint intervals must be positive");
    }
    if (config.stream && config.stream_period.count() <= 0) {
        throw Error("primary: the stream period must be positive");
    }
    if (config.precopy.batch_pages == 0) throw Error("primary: a page batch must hold at least one page");
    if (config.suspend_timeout.count() <= 0) throw Error("primary: the suspend timeout must be positive");
}

}  // namespace colo
