// A replication side's status as ordered (key, value) pairs: what `status` prints, as text or as
// JSON. Values that are numbers stay numbers in JSON.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "toolstack/replication/replication_stats.hpp"

namespace colo {

using StatusFields = std::vector<std::pair<std::string, std::string>>;

[[nodiscard]] StatusFields status_fields(const PrimaryStats& stats);
[[nodiscard]] StatusFields status_fields(const SecondaryStats& stats);

[[nodiscard]] std::string to_json(const StatusFields& fields);
[[nodiscard]] std::string to_text(const StatusFields& fields);

}  // namespace colo
