// After a send failed or the link dropped: did the peer say why before it went? A peer that sends
// Goodbye or Failure and then closes the link must not be mistaken for a dead one: the
// secondary would take over a primary that is alive (split brain), the primary would report
// "link down" instead of the secondary's own error. Only messages that already arrived count.
#pragma once

#include <optional>

#include "toolstack/protocol/messages.hpp"
#include "toolstack/replication/channel.hpp"

namespace colo {

// The first Goodbye or Failure among the messages already delivered; the others are dropped
// (the link is finished). Never throws.
[[nodiscard]] std::optional<protocol::Message> last_words(Channel& channel) noexcept;

}  // namespace colo
