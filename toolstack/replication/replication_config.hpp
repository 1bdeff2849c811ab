// Every knob of the replication pipeline, in one place, with the defaults the CLI uses. Each
// optimization has a switch so its effect can be measured (and its absence tested).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace colo {

namespace net_device {
class EgressCompare;
}
class OwnershipArbiter;
class PrecopySender;

using Millis = std::chrono::milliseconds;

enum class LogLevel { debug, notice };
// debug: one line per message sent or received, by name. notice: state changes an operator must
// see (protection lost, failover). The default logger prints notices to stderr and drops debug.
using LogFn = std::function<void(LogLevel, std::string_view)>;
[[nodiscard]] LogFn default_log();

enum class ProtectionMode {
    colo,   // both VMs run; output is released where PVM and SVM agree; checkpoint on divergence
    remus,  // the SVM stays paused; periodic checkpoints; output is released once acknowledged
};
[[nodiscard]] const char* to_string(ProtectionMode mode);

struct LinkConfig {
    Millis heartbeat_period{100};
    Millis peer_timeout{800};  // a peer silent this long is dead
};

// Live migration (pre-copy): a full pass, then dirty rounds until few pages remain.
struct PrecopyConfig {
    std::uint64_t batch_pages = 256;           // pages per PageBatch message
    std::uint64_t stop_threshold_pages = 64;   // pause when a round would send at most this many
    unsigned max_rounds = 30;                  // dirty rounds after the full pass
    // Auto-converge: a dirty round that carried fewer than twice the pages the guest dirtied
    // meanwhile is "slow"; after two slow rounds in a row the guest is throttled (paused for
    // part of every 20 ms, GuestThrottle), starting at throttle_initial percent and rising by
    // throttle_step after each further pair, up to throttle_max. Off: rounds go on at whatever
    // rate the guest dirties, until max_rounds, and the final pause carries what is left.
    bool auto_converge = true;
    unsigned throttle_initial = 20;
    unsigned throttle_step = 20;
    unsigned throttle_max = 95;
};

struct MigrateConfig {
    PrecopyConfig precopy;
    bool compress = false;  // LZ4-compress the page batches (migrate --compress)
    // A guest that suspends itself (Backend::cooperative_suspend) gets this long to do so.
    Millis suspend_timeout{10000};
    LinkConfig link;
    LogFn log = default_log();
    // Where the guest's console stream stands, asked once the guest is paused for the last pass
    // and sent as ReleasedOutput, so the destination's released output continues at that offset
    // (not at 0). Unset: nothing is sent, and the destination's offsets start at 0.
    std::function<std::uint64_t()> console_offset;
    // Called with the pre-copy's sender once it exists and with nullptr before it goes away, so
    // `status` can show the migration's progress (its counters are atomic) from another thread.
    std::function<void(const PrecopySender*)> watch;
};

struct PrimaryConfig {
    ProtectionMode mode = ProtectionMode::colo;
    PrecopyConfig precopy;
    LinkConfig link;
    Millis checkpoint_interval{100};        // remus: the checkpoint period
    Millis max_checkpoint_interval{2000};   // colo: a checkpoint at least this often
    // Between-checkpoint streaming of dirty pages into the secondary's cache.
    bool stream = true;
    Millis stream_period{20};
    std::uint64_t stream_min_pages = 1;     // a pass with fewer dirty pages keeps them for later
    // Resume the PVM as soon as the checkpoint is copied to a local buffer, before sending it.
    bool early_resume = true;
    // The threads a checkpoint's pause waits on run at real-time priority for its length
    // (backends/realtime_boost.hpp), where the host allows it.
    bool realtime_pause = true;
    // Sent to the secondary in ReplicationSetup (SecondaryConfig::cache_backup says what it does).
    bool cache_backup = true;
    // A guest that suspends itself for checkpoints (Backend::cooperative_suspend) gets this long to
    // do so; a checkpoint it misses is skipped and counted, a missed initial sync fails protect.
    Millis suspend_timeout{10000};
    // LZ4-compress the initial sync's page batches (protect --compress).
    bool compress_sync = false;
    // Where the guest's console stream stands: 0 for a new guest; for a guest that took over by
    // failover, Secondary::console_offset(), so released output keeps its offsets.
    std::uint64_t console_offset = 0;
    // COLO: makes each NIC's frame compare; empty: the one of toolstack/network (tests give
    // their own to drive the network device's bookkeeping frame by frame).
    std::function<std::unique_ptr<net_device::EgressCompare>()> make_net_compare;
    // The witness that decides who goes live once the secondary is lost (ownership_arbiter.hpp);
    // null: none (the primary goes on unprotected at once, as before). `fenced(why)` is called
    // when this copy lost: the caller ends the guest for good.
    std::shared_ptr<OwnershipArbiter> arbiter;
    std::function<void(const std::string&)> fenced;
    LogFn log = default_log();
};

// Throw colo::Error naming the bad value. Checked before anything is connected, sent or paused
// (PrimarySide::protect), and again by the constructors that take them.
void validate(const LinkConfig& config);
void validate(const PrimaryConfig& config);

struct SecondaryConfig {
    ProtectionMode mode = ProtectionMode::colo;  // must match the primary's
    LinkConfig link;
    // Write every page received during the initial migration into the RAM cache too, so entering
    // COLO copies nothing while paused. Off: entering COLO copies all of memory into the cache.
    bool cache_backup = true;
    // Make the SVM's memory a copy-on-write view of the RAM cache where the backend can
    // (ram_cache.hpp; KVM): the secondary then holds about one copy of the guest, not two. Off, or
    // on a backend that cannot (Xen), the cache is a copy of its own. The pipeline's tests run both.
    bool share_cache = true;
    Millis console_poll{5};  // how often SVM console bytes are forwarded to the primary
    // The witness a takeover must win first (ownership_arbiter.hpp); null: none.
    std::shared_ptr<OwnershipArbiter> arbiter;
    // A lost primary is not taken over at once: the replica stands still (state primary-lost)
    // until request_failover() (`colo-replicate failover`, a cluster manager's promote).
    bool manual_takeover = false;
    LogFn log = default_log();
};

}  // namespace colo
