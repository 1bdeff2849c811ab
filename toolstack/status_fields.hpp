// A replication side's status as ordered (key, value) pairs: what `status` prints, as text or as
// JSON. Values that are numbers stay numbers in JSON.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "backends/backend.hpp"
#include "toolstack/replication/replication_stats.hpp"

namespace colo {

using StatusFields = std::vector<std::pair<std::string, std::string>>;

[[nodiscard]] StatusFields status_fields(const PrimaryStats& stats);
[[nodiscard]] StatusFields status_fields(const SecondaryStats& stats);

// The guest's disks as their devices saw them, all disks summed (none: nothing added):
// disk_guest_writes, disk_guest_write_bytes, disk_guest_flushes, disk_guest_flush_p50_us and
// disk_guest_flush_p99_us (of the last flushes; the largest of the disks'), disk_guest_errors.
void add_disk_fields(Backend& backend, StatusFields& fields);

[[nodiscard]] std::string to_json(const StatusFields& fields);
[[nodiscard]] std::string to_text(const StatusFields& fields);

}  // namespace colo
