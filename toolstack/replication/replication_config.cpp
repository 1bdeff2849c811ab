#include "toolstack/replication/replication_config.hpp"

#include <iostream>

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

}  // namespace colo
