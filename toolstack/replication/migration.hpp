// `migrate`: live-migrate a running guest to a receiver (a Secondary, which handles both plain
// migration and COLO). The transaction, sender's view:
//
//   DiskSyncBegin ← DiskHashes*, DiskWrite* (each disk's differing blocks, then the guest's writes
//   as they happen, until the final pause)                                disk_mirror.hpp
//   PageBatch* (full pass) PageBatch* (dirty rounds, guest running)       PrecopySender::send_live
//   [pause] PageBatch* DeviceState* MigrationCommit                        PrecopySender::send_final
//   Goodbye{"migration complete"}      the receiver restores, resumes the guest and answers
//   ← CheckpointLoaded{0}              only then is the guest here safe to destroy
//
// On any failure before the acknowledgement the guest resumes here and the error is rethrown:
// it was never running in two places.
#pragma once

#include <chrono>
#include <cstdint>

#include "backends/backend.hpp"
#include "toolstack/replication/channel.hpp"
#include "toolstack/replication/replication_config.hpp"
#include "toolstack/replication/replication_stats.hpp"

namespace colo {

struct MigrationResult {
    unsigned passes = 0;             // over memory: the full pass and the final one included
    std::uint64_t pages_sent = 0;
    std::uint64_t pages_final = 0;   // sent while paused
    std::uint64_t bytes_sent = 0;    // page and state payload
    // --compress: the page bytes (zero pages aside) and what they took compressed.
    std::uint64_t page_bytes = 0, compressed_bytes = 0;
    unsigned throttle_percent = 0;   // the highest auto-converge throttle (0: none was needed)
    // Disks: data bytes of the blocks the receiver's copies lacked, the time to send them, and
    // the data bytes the guest wrote meanwhile and until the final pause.
    std::uint64_t disk_sync_bytes = 0, disk_sync_ms = 0, disk_write_bytes = 0;
    Micros downtime{0};              // pause → the receiver acknowledged it runs the guest
    Micros total{0};
};

// Returns once the receiver runs the guest; the guest here is left paused (the caller destroys
// it). Throws colo::Error (LinkDown for a lost link) with the guest resumed here.
[[nodiscard]] MigrationResult migrate(Backend& backend, Channel& channel, const MigrateConfig& config);

}  // namespace colo
