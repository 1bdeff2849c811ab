// The primary side of a protected guest (COLO, or Remus with `mode = remus`). It drives the PVM
// through colo::Backend only and talks to the secondary in the named messages of
// toolstack/protocol/messages.hpp. The transaction, as this side runs it:
//
// Roles (FailoverState, changed by compare-and-swap):
//
//   syncing ──CheckpointLoaded{0}──▶ protecting ──secondary lost──▶ unprotected
//      └────────── secondary lost ──────────────────────────────────────▲
//   syncing/protecting ──stop()──▶ stopped (Goodbye sent; the secondary stops, no failover)
//
// Initial sync (send_initial_sync, await_colo_entry): the devices' own state first (a disk:
// DiskSyncBegin ← DiskHashes*, DiskWrite* of the blocks that differ; disk_device.hpp), then the
// pre-copy of PrecopySender (with the guest's disk writes between page batches), except that the
// PVM keeps running afterwards:
//   PageBatch* (full pass, dirty rounds)  [pause PVM]  PageBatch* DeviceState* MigrationCommit
//   devices: setup (the console: ReleasedOutput{console offset})  EnterColo{0}  [resume PVM]
//   ← CheckpointLoaded{0}: devices commit, as for a checkpoint.
//   Output produced before that pause was released unprotected; from it on the gate holds it.
//
// Checkpoint N (send_checkpoint, await_checkpoint); the phases and what each message from the
// secondary means in each are in checkpoint_transaction.hpp:
//   [pause PVM] devices: postsuspend (the console captures the bytes it holds)
//   harvest dirty ∪ pending; copy those pages and save_state into a local buffer
//   [devices: preresume; resume PVM at once, unless early_resume is off]
//   CheckpointBegin{N} PageBatch* DeviceState* <device records: CheckpointOutput{offset, bytes}+>
//   CheckpointEnd{N, pages, state records, device records}
//   [resume PVM here when early_resume is off]
//   ← CheckpointLoaded{N}: devices commit (the console releases up to the captured offset and
//   reports ReleasedOutput{released})
//
// Between checkpoints (stream_pass): harvest; PageBatch* into the secondary's RAM cache, every
// stream period, also while a checkpoint is being loaded; none in the last half period before a
// checkpoint (stream_schedule.hpp).
// Any time: Heartbeat both ways; device records from the secondary (SecondaryOutput: colo
// compares it with the PVM's output; a difference makes the console ask for a checkpoint now).
//
// Checkpoint devices (checkpoint_device.hpp): the console is always the first; more (a NIC, a
// disk) are passed to the constructor. Their hooks run at the points named above; teardown runs
// whenever protection ends, however it ends.
//
// Released output exactly once (what the primary released, then what the survivor releases, is
// the guest's console stream with nothing missing and nothing repeated):
//   - No gap: the secondary holds every byte the primary may release. COLO releases between
//     checkpoints only bytes the SVM produced too (it forwarded them and keeps them until they are
//     reported released); a committed checkpoint releases up to its console offset, and those
//     bytes came with the checkpoint (CheckpointOutput), which the secondary applied before it
//     said CheckpointLoaded. The survivor releases from the last ReleasedOutput it got: first the
//     PVM's held bytes, then the SVM's own (secondary_console.hpp).
//   - No repeat: every release is followed at once by ReleasedOutput, on the pipeline thread,
//     before any other message (the gate releases only on this thread: OutputGate::Matching).
//     So whatever message the survivor saw last, it knows exactly how far the primary released,
//     unless the primary died between a release and the arrival of its report (a silent death:
//     the link went first). Then the survivor releases those bytes again, at the same console
//     offsets: every released byte carries its offset (OutputSink), so a consumer that keeps
//     each offset once (the --console-log file, written at the offset) sees each byte once.
//
// Failure handling that always finishes: every public step catches what it throws. A lost or
// broken link, a bad message, or a failing backend call all end the same way (lose_secondary):
// role unprotected with the reason in status, Failure sent to the secondary where the link still
// takes it (so it stands down instead of taking over: this PVM lives), the devices torn down
// (held output released: the PVM runs alone), dirty logging stopped and the PVM resumed.
// Harvested frames are never dropped: they stay in pending() until a checkpoint or stream pass
// that carries them has been sent (STYLE §4).
//
// Threading: one pipeline thread calls everything except status() and role(), which any thread
// may call. The Primary must outlive the console sink it installs in the backend (the destructor
// removes it).
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
#include "toolstack/replication/guest_suspend_device.hpp"
#include "toolstack/replication/net_device.hpp"
#include "toolstack/replication/page_batches.hpp"
#include "toolstack/replication/failover_state.hpp"
#include "toolstack/replication/peer_monitor.hpp"
#include "toolstack/replication/precopy_sender.hpp"
#include "toolstack/replication/replication_config.hpp"
#include "toolstack/replication/replication_stats.hpp"

namespace colo {

class StallWatch;

class Primary {
public:
    using Clock = std::chrono::steady_clock;

    // Throws colo::Error for a bad config (validate()) before it touches the PVM. `devices` take
    // part in every checkpoint after the console.
    Primary(Backend& pvm, Channel& channel, PrimaryConfig config, OutputSink sink,
            std::vector<std::unique_ptr<PrimaryDevice>> devices = {});
    ~Primary();
    Primary(const Primary&) = delete;
    Primary& operator=(const Primary&) = delete;

    // --- the whole thing (never throws: failures end protection, see above)
    // Initial sync and COLO entry; false when protection ended instead.
    [[nodiscard]] bool protect();
    // Checkpoints, streaming and heartbeats until `stop` is requested (then stop()) or protection
    // ends. Calls protect() first when that has not happened yet.
    void run(std::stop_token stop) noexcept;
    // One checkpoint now; false when protection ended instead.
    [[nodiscard]] bool checkpoint();
    // Ends protection on purpose: Goodbye to the secondary, output released, role stopped.
    void stop(const std::string& reason) noexcept;
    // Any thread: ask run() to hand the guest over (`colo-replicate handover`): one last
    // checkpoint with the PVM paused and kept paused, then the link closes without a Goodbye, so
    // the secondary holds exactly the PVM's final state and takes over as after this host's loss
    // (at once, or on `failover` with takeover = manual). Role handed_over then; the caller ends
    // the PVM. If that checkpoint fails, protection is lost the usual way and the PVM runs on.
    void request_handover() { handover_requested_ = true; }
    [[nodiscard]] bool handed_over() const { return handed_over_; }
    // Whether the secondary may be running (or may yet run) the guest: it held a complete
    // replica and nothing since says it dropped it (its Goodbye or Failure, our Goodbye delivered,
    // the witness won). A guest process that ends while this holds leaves its marker behind.
    [[nodiscard]] bool secondary_may_run() const { return handed_over_ || (entered_colo_ && !secondary_released_); }

    // --- the same in steps (tests drive both sides from one thread with these); each ends
    // protection instead of throwing when something fails
    void send_initial_sync();
    [[nodiscard]] bool await_colo_entry();
    // False when no checkpoint went: the guest did not suspend in time (skipped, counted in
    // status; the next is one period later) or protection ended.
    bool send_checkpoint();
    [[nodiscard]] bool await_checkpoint();
    // One streaming pass; returns the pages sent (0 when too few were dirty or the link failed).
    std::uint64_t stream_pass();
    // Heartbeats and incoming messages until `until`.
    void poll(Clock::time_point until);
    // Whether the next checkpoint is due: a device asks for one, or the interval (remus) or the
    // maximum interval (colo) has passed since the last checkpoint STARTED (its pause), so `-i`
    // is the period between checkpoint starts; a checkpoint that took longer than that (an
    // overrun, counted in status) is followed by the next at once.
    [[nodiscard]] bool checkpoint_due(Clock::time_point now) const;

    // --- any thread
    [[nodiscard]] Role role() const { return state_.role(); }
    [[nodiscard]] transaction::PrimaryPhase phase() const { return phase_.load(); }
    [[nodiscard]] PrimaryStats status() const;
    // Waiting for the witness after the secondary was lost (the PVM paused, output held).
    [[nodiscard]] bool arbitrating() const { return arbitrating_; }

    // Harvested pages not yet delivered (tests: nothing is lost when a send fails).
    [[nodiscard]] const DirtyBitmap& pending() const { return pending_; }
    [[nodiscard]] const OutputGate& gate() const { return console_->gate(); }

private:
    struct InFlight {
        std::uint64_t epoch = 0;
        DirtyBitmap frames;  // what it carried: back into pending() if it never commits
        bool loaded = false;
    };

    void send(const protocol::Message& message);
    void handle(const protocol::Message& message);
    // Runs `step`; whatever it throws ends protection (lose_link), and false is returned.
    bool guarded(const std::function<void()>& step);
    // The last checkpoint of a handover, then the link closed without a Goodbye. False when
    // protection goes on (the guest would not suspend for it: the handover is given up).
    bool hand_over() noexcept;
    // Every device's presuspend, then messages handled until all are ready_to_pause or the
    // suspend timeout passed (then cancel_presuspend). False: not ready, or protection ended.
    bool reach_quiet_point();
    // Heartbeats and messages until done() or `until`; false when protection ended.
    bool pump(Clock::time_point until, const std::function<bool()>& done);
    bool await_loaded();
    void poll_devices();
    [[nodiscard]] bool device_wants_checkpoint() const;
    PrimaryDevice& device_for(const protocol::Message& message);
    // Ends protection because of `reason` (the secondary is lost, or this side failed). Never throws.
    void lose_secondary(const std::string& reason) noexcept;
    // `error` ended the step: lose the secondary, for the reason it gave if it said one.
    void lose_link(const std::exception& error) noexcept;
    // Devices torn down, dirty logging stopped, the PVM resumed; what failed is returned.
    std::string leave_protection() noexcept;
    // With a witness, after the secondary is lost: the PVM paused (output held) until this copy
    // won the guest; false when it lost (this copy is stopped for good) or was stopped waiting.
    bool win_arbitration() noexcept;
    void set_arbitration(const std::string& text);
    [[nodiscard]] Millis checkpoint_period() const;
    // The devices' own initial sync (a disk's image), before the pre-copy of memory.
    void sync_devices();

    Backend& pvm_;
    Channel& channel_;
    PrimaryConfig config_;
    // Views of devices that devices_ owns.
    console_device::Primary* console_ = nullptr;
    std::vector<net_device::Primary*> nics_;      // one per vif
    std::vector<disk_device::Primary*> disks_;    // one per disk
    suspend_device::Primary* suspend_ = nullptr;  // when the guest suspends itself
    std::vector<std::unique_ptr<PrimaryDevice>> devices_;
    DeviceSend device_send_;
    FailoverState state_{Role::syncing};
    std::stop_token stop_;                 // run()'s: a stop ends a wait for the witness
    std::unique_ptr<StallWatch> stall_watch_;  // with a witness: this process's own stalls
    std::atomic<bool> arbitrating_{false};
    std::atomic<bool> handover_requested_{false};
    std::atomic<bool> handed_over_{false};
    std::atomic<bool> entered_colo_{false};
    std::atomic<bool> secondary_released_{false};
    bool keep_paused_ = false;  // a handover's checkpoint: the PVM does not resume after it
    std::atomic<transaction::PrimaryPhase> phase_{transaction::PrimaryPhase::syncing};
    PeerMonitor monitor_;
    PrecopySender precopy_;
    DirtyBitmap pending_;
    PageStaging staging_;  // the checkpoint being sent, copied out while the PVM was paused
    std::optional<InFlight> in_flight_;
    std::atomic<std::uint64_t> epoch_{0};  // last committed
    Clock::time_point sync_paused_at_{};
    Clock::time_point last_checkpoint_{};   // when the last committed checkpoint's pause began
    Clock::time_point checkpoint_paused_{};  // when the one in flight paused the PVM
    Clock::time_point last_stream_{};

    mutable std::mutex stats_mutex_;
    PrimaryStats stats_;
    PauseHistory pauses_;
    // The pause's steps (PrimaryStats::pause_stop_p99 and on).
    PauseHistory pause_stops_, pause_harvests_, pause_copies_, pause_states_;
    std::atomic<int> realtime_refused_{0};  // the last checkpoint's RealtimeBoost::refused_errno
};

}  // namespace colo
