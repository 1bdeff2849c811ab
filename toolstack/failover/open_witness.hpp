// The witness a --witness URL names, for the CLI and the guest's process.
#pragma once

#include <memory>
#include <string>

#include "toolstack/failover/witness.hpp"

namespace colo {

// "etcd://HOST:PORT[/PREFIX]" (parse_witness_url). Throws colo::Error for a URL it does not take
// or a host that does not resolve; asks the witness nothing yet.
[[nodiscard]] std::shared_ptr<Witness> open_witness(const std::string& url);

}  // namespace colo
