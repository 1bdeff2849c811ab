// The receiving side: a plain live migration or the secondary of a protected guest (COLO or
// Remus). It drives the SVM through colo::Backend only. The transaction, as this side runs it:
//
// Roles (FailoverState, changed by compare-and-swap):
//
//   syncing ──Goodbye after MigrationCommit──▶ active            (migrated: the guest runs here)
//   syncing ──EnterColo{0} after MigrationCommit──▶ protecting
//   protecting ──LinkDown / primary silent past the peer timeout / request_failover()──▶
//        failing_over ──▶ active                                  (failover: the SVM is the guest)
//   protecting ──Goodbye / Failure from the primary──▶ stopped    (the primary lives: no takeover)
//   any ──malformed or out-of-order message──▶ stopped: Failure sent, colo::Error thrown
//
// What each message from the primary means in each phase of this side is one table,
// transaction::secondary_step (checkpoint_transaction.hpp); handle() dispatches on it alone.
// Initial migration (phase migrating): PageBatch* → SVM memory and, with cache_backup, the RAM
//   cache too (with share_cache on KVM the SVM's memory is a copy-on-write view of the cache,
//   ram_cache.hpp: the pages go into the cache alone, which the SVM reads). DeviceState* MigrationCommit{pages_total}: counts checked, state restored (SVM
//   paused; phase committed).
//   EnterColo{0}: without cache_backup copy all SVM memory into the cache (SVM paused); start the
//   SVM's dirty log; devices: setup; colo: resume the SVM; → CheckpointLoaded{0} (protecting).
// Between checkpoints: PageBatch* → RAM cache only (remembered as received since the checkpoint;
//   staged apart from the pages a sharing SVM reads until the checkpoint commits).
//   Device records: the console forwards the SVM's bytes to the primary (SecondaryOutput) and
//   remembers ReleasedOutput.
// Checkpoint N (phase checkpoint): CheckpointBegin{N} PageBatch* (→ cache) DeviceState* (staged)
//   device records (staged by their device: the console's CheckpointOutput+, the PVM's held
//   bytes, consecutive, starting no earlier than the last ReleasedOutput)
//   CheckpointEnd{N, pages, state records, device records}. Only when epoch and counts match
//   and every device verifies what it staged: pause SVM; harvest its dirty log; flush cache → SVM
//   for (received since the last checkpoint ∪ SVM-dirtied) (sharing: the received pages into the
//   cache, the SVM's private copies of both dropped); restore state; devices: commit (the
//   console keeps the PVM's held bytes and continues at their end); colo: resume SVM;
//   → CheckpointLoaded{N}. Until then nothing touches the SVM, so a partial or failed checkpoint
//   leaves it at the last committed one (colo: running on from it).
// Failover: discard the partial checkpoint; remus: the SVM is exactly the last committed
//   checkpoint and resumes; colo: it runs on. Devices take over: the console releases from the
//   primary's last ReleasedOutput: the PVM bytes the last applied checkpoint carried, then the
//   SVM's own.
//   Before taking over on a broken link, the messages that already arrived are read (also when
//   our own send found the link broken): a primary that said Goodbye or Failure is alive, and
//   this side stops instead; a ReleasedOutput among them moves the point the release starts from.
// Failures: a bad or out-of-order message, or a backend call that fails while a checkpoint is
//   applied, leave the SVM unfit to take over: this side sends Failure (the primary runs on
//   unprotected), stops (phase failed, the reason in status) and throws. A takeover whose
//   resume fails ends in phase failed too.
// Limits (as in every COLO/Remus without an external arbiter): a network partition makes both
//   sides see the other as dead, the primary continues unprotected and this side takes over.
//   Output: nothing is lost in either mode; a primary killed between writing a release and
//   sending its ReleasedOutput has that one release repeated (colo_primary.hpp, "exactly once").
//
// Threading: one pipeline thread calls everything except request_failover(), status() and role().
// The Secondary must outlive the console sink it installs in the backend (the destructor removes it).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "toolstack/replication/channel.hpp"
#include "toolstack/replication/checkpoint_device.hpp"
#include "toolstack/replication/checkpoint_transaction.hpp"
#include "toolstack/replication/console_device.hpp"
#include "toolstack/replication/disk_device.hpp"
#include "toolstack/replication/net_device.hpp"
#include "toolstack/replication/failover_state.hpp"
#include "toolstack/replication/peer_monitor.hpp"
#include "toolstack/replication/ram_cache.hpp"
#include "toolstack/replication/replication_config.hpp"
#include "toolstack/replication/replication_stats.hpp"

namespace colo {

class Secondary {
public:
    using Clock = std::chrono::steady_clock;

    enum class Outcome {
        running,      // nothing final yet (process() only)
        migrated,     // plain migration done: the guest runs here
        failed_over,  // the primary died: the guest runs here, unprotected
        stopped,      // the primary ended protection; the SVM should be destroyed
    };

    // `svm` is a paused guest whose memory layout matches the primary's. `sink` receives released
    // console output once this side runs the guest (after failover or migration). `devices` take
    // part in every checkpoint after the console, in the primary's order.
    Secondary(Backend& svm, Channel& channel, SecondaryConfig config, OutputSink sink,
              std::vector<std::unique_ptr<SecondaryDevice>> devices = {});
    ~Secondary();
    Secondary(const Secondary&) = delete;
    Secondary& operator=(const Secondary&) = delete;

    // Until an outcome. A stop request is treated as "stop replicating" (Outcome::stopped).
    // Throws colo::Error (after sending Failure) on a bad stream or a failed checkpoint, LinkDown
    // when the link is lost before the guest is complete here.
    Outcome run(std::stop_token stop = {});
    // Handles every message that arrives until `until` (at least those already waiting).
    Outcome process(Clock::time_point until);

    // --- any thread
    void request_failover() { failover_requested_ = true; }
    // With manual_takeover: the primary is lost and the replica waits for request_failover().
    [[nodiscard]] bool awaiting_takeover() const { return awaiting_takeover_; }
    [[nodiscard]] Role role() const { return state_.role(); }
    [[nodiscard]] transaction::SecondaryPhase phase() const { return phase_.load(); }
    [[nodiscard]] SecondaryStats status() const;
    // The console offset of the guest's next byte (PrimaryConfig::console_offset after a takeover).
    [[nodiscard]] std::uint64_t console_offset() const { return console_->next_offset(); }

    // The RAM cache (absent before EnterColo without cache_backup).
    [[nodiscard]] const RamCache& cache() const;

private:
    struct Staged {  // the checkpoint being received
        std::uint64_t epoch = 0;
        std::uint64_t pages = 0;
        std::uint32_t device_records = 0;
        std::vector<StateRecord> state;
    };

    void send(const protocol::Message& message);
    Outcome handle(const protocol::Message& message);
    void store_migration_pages(const protocol::PageBatch& batch);
    void commit_migration(const protocol::MigrationCommit& commit);
    Outcome finish_migration();
    void store_cache_pages(const protocol::PageBatch& batch);
    void begin_checkpoint(const protocol::CheckpointBegin& begin);
    void check_checkpoint_end(const protocol::CheckpointEnd& end);
    void enter_colo(std::uint64_t epoch);
    void apply_checkpoint(const protocol::CheckpointEnd& end);
    SecondaryDevice& device_for(const protocol::Message& message);
    // After LinkDown: what already arrived. An outcome when the primary turns out to be alive.
    std::optional<Outcome> read_last_messages();
    Outcome fail_over(const std::string& reason);
    // With a witness, before taking over: the SVM paused until this copy won the guest; false
    // (role stopped, the replica to be dropped) when the primary kept it or a stop came first.
    bool win_arbitration();
    // manual_takeover: the SVM paused until request_failover(); false when stopped instead.
    bool await_takeover_order(const std::string& reason);
    void set_arbitration(const std::string& text);
    Outcome stop_protection(const std::string& reason);
    // A bad stream or a failed checkpoint: Failure to the primary, phase failed. Never throws.
    void fail(const std::string& reason) noexcept;
    void set_stopped_reason(const std::string& reason);
    // Runs work on a thread of its own while this one sends heartbeats: an fdatasync that takes
    // seconds on a busy host must not look like a dead secondary.
    void while_heartbeating(const std::function<void()>& work);
    // The devices' make_durable, while_heartbeating, when any is due.
    void make_devices_durable();

    Backend& svm_;
    Channel& channel_;
    SecondaryConfig config_;
    console_device::Secondary* console_ = nullptr;  // devices_[0]
    std::vector<net_device::Secondary*> nics_;      // devices_[1..], one per vif
    std::vector<disk_device::Secondary*> disks_;    // after the NICs, one per disk
    std::vector<std::unique_ptr<SecondaryDevice>> devices_;
    DeviceSend device_send_;
    FailoverState state_{Role::syncing};
    std::atomic<transaction::SecondaryPhase> phase_{transaction::SecondaryPhase::migrating};
    PeerMonitor monitor_;
    std::optional<RamCache> cache_;
    DirtyBitmap received_;  // pages put in the cache since the last applied checkpoint
    std::vector<StateRecord> migration_state_;
    std::optional<Staged> staged_;
    std::atomic<std::uint64_t> epoch_{0};  // last applied
    std::atomic<bool> failover_requested_{false};
    std::atomic<bool> awaiting_takeover_{false};
    // The optional secondary-report record (the primary's status shows this side through it).
    static constexpr std::chrono::seconds kReportPeriod{1};
    Clock::time_point next_report_{};
    std::stop_token stop_;  // run()'s: a stop ends a wait for the witness

    mutable std::mutex stats_mutex_;
    SecondaryStats stats_;
    PauseHistory pauses_;
};

[[nodiscard]] const char* to_string(Secondary::Outcome outcome);

}  // namespace colo
