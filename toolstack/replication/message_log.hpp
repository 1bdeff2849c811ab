// One debug line per message sent or received, naming it (STYLE §3): "primary → checkpoint-end
// epoch=7 pages=12". The details are the fields an operator needs to follow a transaction.
#pragma once

#include <string>

#include "toolstack/protocol/messages.hpp"
#include "toolstack/replication/replication_config.hpp"

namespace colo {

[[nodiscard]] std::string describe(const protocol::Message& message);

// `who` names this side ("primary", "secondary", "migrate").
void log_sent(const LogFn& log, const char* who, const protocol::Message& message);
void log_received(const LogFn& log, const char* who, const protocol::Message& message);

}  // namespace colo
