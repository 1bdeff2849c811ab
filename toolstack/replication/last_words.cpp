#include "toolstack/replication/last_words.hpp"

#include <variant>

namespace colo {

std::optional<protocol::Message> last_words(Channel& channel) noexcept {
    try {
        while (auto message = channel.receive(Channel::Clock::now())) {
            if (std::holds_alternative<protocol::Goodbye>(*message) ||
                std::holds_alternative<protocol::Failure>(*message)) {
                return message;
            }
        }
    } catch (...) {
        // The end of what the link delivered.
    }
    return std::nullopt;
}

}  // namespace colo
