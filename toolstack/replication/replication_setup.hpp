// The ReplicationSetup message (sent by the CLI right after GuestConfigText) is how the sender
// configures the receiver: plain migration or protection, COLO or Remus, cache backup or not.
// These turn the sender's config into that message and the message into the receiver's config,
// so the two sides cannot disagree on the mode.
#pragma once

#include "toolstack/protocol/messages.hpp"
#include "toolstack/replication/replication_config.hpp"

namespace colo {

[[nodiscard]] protocol::ReplicationSetup setup_for_protection(const PrimaryConfig& config);
[[nodiscard]] protocol::ReplicationSetup setup_for_migration();

// `base` supplies what the sender does not decide (link timing, log). A plain migration gets no
// cache (it would be a full copy of guest memory for nothing).
[[nodiscard]] SecondaryConfig secondary_config_for(const protocol::ReplicationSetup& setup,
                                                   SecondaryConfig base = {});

}  // namespace colo
