// What `status` shows about a replication side, and the pause-time distribution behind it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "toolstack/protocol/messages.hpp"

namespace colo {

using Micros = std::chrono::microseconds;

// The last kCapacity pause times, for p50/p99/max without unbounded growth.
class PauseHistory {
public:
    static constexpr std::size_t kCapacity = 4096;

    void add(Micros pause);
    [[nodiscard]] std::uint64_t count() const { return total_; }
    // Nearest-rank percentile (0 < p <= 100) of the retained samples; zero when there are none.
    [[nodiscard]] Micros percentile(double p) const;
    [[nodiscard]] Micros max() const { return max_; }

private:
    std::vector<Micros> samples_;
    std::size_t next_ = 0;
    std::uint64_t total_ = 0;
    Micros max_{0};
};

struct PrimaryStats {
    std::string state;           // "syncing", "protected", "unprotected", "stopped"
    std::string mode;            // "colo" / "remus"
    std::uint64_t epoch = 0;     // last committed checkpoint
    std::uint64_t checkpoints = 0;
    std::uint64_t divergence_checkpoints = 0;  // colo: checkpoints forced by differing output
    std::uint64_t checkpoint_overruns = 0;     // checkpoints that ended after the next was due
    std::optional<std::chrono::system_clock::time_point> last_checkpoint;
    Micros pause_p50{0}, pause_p99{0}, pause_max{0};
    // Where a checkpoint's pause goes, p99 of each step: stopping the vCPUs (and the devices'
    // quiesce), harvesting the dirty log, copying the dirty pages, saving vCPU and device state.
    Micros pause_stop_p99{0}, pause_harvest_p99{0}, pause_copy_p99{0}, pause_state_p99{0};
    // Whether the pause runs at real-time priority: "on", "off" (protect --no-realtime-pause) or
    // "refused: REASON" (the host does not allow it).
    std::string pause_realtime;
    std::uint64_t pages_migrated = 0;      // initial sync, all passes
    std::uint64_t pages_sent_paused = 0;   // in checkpoints (copied while the PVM was paused)
    std::uint64_t pages_streamed = 0;      // between checkpoints
    std::uint64_t bytes_sent = 0;          // page and state payload bytes, all phases
    unsigned migration_rounds = 0;
    unsigned sync_throttle_percent = 0;    // the highest auto-converge throttle of the initial sync
    Micros time_to_enter_colo{0};          // final pause of the initial sync → secondary ready
    // protect --compress: the initial sync's page bytes (zero pages aside) and what they took compressed.
    std::uint64_t sync_page_bytes = 0, sync_compressed_bytes = 0;
    Micros enter_colo_pause{0};            // the PVM's final pause of the initial sync → resumed
    std::uint64_t output_released = 0;     // console bytes released to the sink
    std::uint64_t output_held = 0;         // console bytes the guest wrote that the gate still holds
    // The secondary's own view (its optional secondary-report records), when it sent one.
    std::optional<protocol::SecondaryReport> secondary;
    std::chrono::steady_clock::time_point secondary_reported_at{};
    // All NICs: frames given to / transmitted by the PVM while protected, released, held now;
    // colo: checkpoints the frame compare asked for (and its last reason).
    std::uint64_t net_ingress_frames = 0, net_egress_frames = 0, net_released_frames = 0, net_held_frames = 0;
    std::uint64_t net_compare_checkpoints = 0;
    std::string net_last_compare_reason;
    // All disks: the initial sync (blocks of the images, those sent because the secondary's copy
    // differed, their data bytes, its time), and the guest's writes mirrored since (bytes).
    std::uint64_t disk_sync_blocks = 0, disk_sync_blocks_done = 0, disk_sync_blocks_sent = 0, disk_sync_bytes = 0;
    std::uint64_t disk_sync_ms = 0;
    std::uint64_t disk_writes_mirrored = 0, disk_write_bytes_mirrored = 0;
    // Cooperative checkpoints (guest_suspend_device.hpp): how the guest is asked (empty: it is
    // paused from outside), how often it suspended and how long that took, checkpoints skipped.
    std::string suspend_how;
    std::uint64_t suspends = 0, suspend_timeouts = 0;
    Micros suspend_p50{0}, suspend_p99{0}, suspend_max{0};
    std::string protection_lost_reason;    // why, once unprotected
    std::optional<std::chrono::system_clock::time_point> protection_lost_at;  // when
    std::string witness;                   // the witness and the owner it names (none: empty)
    std::string arbitration;               // after the secondary was lost: held, won or lost, and why
    std::string phase;                     // of the checkpoint transaction (checkpoint_transaction.hpp)
};

struct SecondaryStats {
    std::string state;  // "migrating", "protecting", "failed-over", "migrated", "stopped"
    std::string mode;
    std::uint64_t epoch = 0;                  // last applied checkpoint
    std::uint64_t checkpoints_applied = 0;
    std::uint64_t pages_received_migration = 0;
    std::uint64_t pages_received_streamed = 0;
    std::uint64_t pages_received_checkpoint = 0;
    std::uint64_t pages_flushed = 0;          // cache → SVM memory at checkpoints
    std::uint64_t svm_dirty_reverted = 0;     // of those, pages the SVM had dirtied itself
    std::uint64_t pages_copied_entering_colo = 0;  // memory → cache while paused (no cache backup)
    Micros enter_colo_pause{0};
    Micros pause_p50{0}, pause_p99{0}, pause_max{0};
    std::uint64_t primary_released = 0;       // how far the primary released output
    // At takeover, all NICs: frames sent for the dead primary (held by its last checkpoint and
    // not released; colo: the SVM's own nobody released) and ingress given to the guest again.
    std::uint64_t net_takeover_held_sent = 0, net_takeover_svm_sent = 0, net_takeover_ingress_replayed = 0;
    std::uint64_t net_takeover_tcp_translated = 0;
    // All disks (disk_device.hpp): blocks hashed in the initial sync; writes into the copy; writes
    // kept for a checkpoint not committed yet; fdatasyncs of epochs that flushed; colo: bytes of
    // the SVM's own writes the commits replaced; at takeover, bytes of the SVM's own writes kept
    // and writes of no committed checkpoint dropped.
    std::uint64_t disk_sync_hashed_blocks = 0, disk_writes_applied = 0, disk_bytes_applied = 0;
    std::uint64_t disk_writes_pending = 0, disk_flushes = 0, disk_overlay_bytes_dropped = 0;
    std::uint64_t disk_takeover_overlay_bytes = 0, disk_takeover_dropped_writes = 0;
    std::string phase;                        // of the checkpoint transaction
    std::string stopped_reason;               // why, once stopped or failed
    std::string witness;                      // the witness and the owner it names (none: empty)
    std::string arbitration;                  // after the primary was lost: waiting, won or lost
};

}  // namespace colo
