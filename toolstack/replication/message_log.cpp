#include "toolstack/replication/message_log.hpp"

#include <type_traits>

namespace colo {

std::string describe(const protocol::Message& message) {
    std::string text = protocol::message_name(message);
    std::visit(
        [&](const auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, protocol::PageBatch>) {
                text += " frames=" + std::to_string(m.frames.size());
            } else if constexpr (std::is_same_v<T, protocol::DeviceState>) {
                text += " tag=" + std::to_string(m.state.tag) + " bytes=" + std::to_string(m.state.data.size());
            } else if constexpr (std::is_same_v<T, protocol::MigrationCommit>) {
                text += " pages_total=" + std::to_string(m.pages_total);
            } else if constexpr (std::is_same_v<T, protocol::EnterColo> ||
                                 std::is_same_v<T, protocol::CheckpointBegin> ||
                                 std::is_same_v<T, protocol::CheckpointLoaded>) {
                text += " epoch=" + std::to_string(m.epoch);
            } else if constexpr (std::is_same_v<T, protocol::CheckpointEnd>) {
                text += " epoch=" + std::to_string(m.epoch) + " pages=" + std::to_string(m.pages) +
                        " state_records=" + std::to_string(m.state_records) +
                        " device_records=" + std::to_string(m.device_records);
            } else if constexpr (std::is_same_v<T, protocol::Heartbeat>) {
                text += " seq=" + std::to_string(m.sequence);
            } else if constexpr (std::is_same_v<T, protocol::SecondaryOutput>) {
                text += " offset=" + std::to_string(m.offset) + " bytes=" + std::to_string(m.bytes.size());
            } else if constexpr (std::is_same_v<T, protocol::CheckpointOutput>) {
                text += " offset=" + std::to_string(m.offset) + " bytes=" + std::to_string(m.bytes.size()) +
                        " end=" + std::to_string(m.end);
            } else if constexpr (std::is_same_v<T, protocol::ReleasedOutput>) {
                text += " offset=" + std::to_string(m.offset);
            } else if constexpr (std::is_same_v<T, protocol::Goodbye>) {
                text += " reason=\"" + m.reason + "\"";
            } else if constexpr (std::is_same_v<T, protocol::Failure>) {
                text += " message=\"" + m.message + "\"";
            }
        },
        message);
    return text;
}

void log_sent(const LogFn& log, const char* who, const protocol::Message& message) {
    if (log) log(LogLevel::debug, std::string(who) + " -> " + describe(message));
}

void log_received(const LogFn& log, const char* who, const protocol::Message& message) {
    if (log) log(LogLevel::debug, std::string(who) + " <- " + describe(message));
}

}  // namespace colo
