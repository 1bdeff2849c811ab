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
// Initial sync (send_initial_sync, await_colo_entry): the pre-copy of PrecopySender, except that
// the PVM keeps running afterwards:
//   PageBatch* (full pass, dirty rounds)  [pause PVM]  PageBatch* DeviceState* MigrationCommit
//   ReleasedOutput{console offset}  EnterColo{0}  [resume PVM]        ← CheckpointLoaded{0}
//   Output produced before that pause was released unprotected; from it on the gate holds it.
//
// Checkpoint N (send_checkpoint, await_checkpoint):
//   [pause PVM] harvest dirty ∪ pending; copy those pages and save_state into a local buffer;
//   copy the console bytes held (produced, not released: [released, console offset))
//   [resume PVM at once, unless early_resume is off]
//   CheckpointBegin{N} PageBatch* DeviceState* CheckpointOutput{offset, bytes}+
//   CheckpointEnd{N, pages, records, console offset}
//   [resume PVM here when early_resume is off]
//   ← CheckpointLoaded{N}: release output up to the console offset; ReleasedOutput{released}
//
// Between checkpoints (stream_pass): harvest; PageBatch* into the secondary's RAM cache, every
// stream period, also while a checkpoint is being loaded; none in the last half period before a
// checkpoint (stream_schedule.hpp).
// Any time: Heartbeat both ways; ← SecondaryOutput (colo: compared with the PVM's output; a
// difference forces a checkpoint at once).
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
//     So whatever message the survivor saw last, it knows exactly how far the primary released.
//   The one window left is between the release (the write to the console log) and the send of
//   its ReleasedOutput, a few system calls on one thread: a primary killed exactly there has its
//   last release repeated by the survivor, never lost. Closing it would need the release and the
//   report to be one atomic act, i.e. storage both hosts share; telling the secondary first
//   ("intent", then release) only turns the same window into a gap, which is worse for a console
//   log (and for a client that retries, a repeat is harmless). The survivor cannot read the
//   primary's log, so at-least-once with this window is the guarantee.
//
// Never lose a dirty page (STYLE §4): harvested pages live in pending() until a send of them
// succeeded; a failed send ORs them back. The secondary is lost on LinkDown, a bad message, a
// Failure or Goodbye from it, or silence past the peer timeout: the PVM runs on unprotected, held
// output is released, and one notice line says so.
//
// Threading: one pipeline thread calls everything except request_checkpoint(), status() and
// role(), which any thread may call. The Primary must outlive the console sink it installs in
// the backend (the destructor removes it).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include "backends/backend.hpp"
#include "toolstack/replication/channel.hpp"
#include "toolstack/replication/page_batches.hpp"
#include "toolstack/replication/failover_state.hpp"
#include "toolstack/replication/output_gate.hpp"
#include "toolstack/replication/peer_monitor.hpp"
#include "toolstack/replication/precopy_sender.hpp"
#include "toolstack/replication/replication_config.hpp"
#include "toolstack/replication/replication_stats.hpp"

namespace colo {

class Primary {
public:
    using Clock = std::chrono::steady_clock;

    Primary(Backend& pvm, Channel& channel, PrimaryConfig config, OutputSink sink);
    ~Primary();
    Primary(const Primary&) = delete;
    Primary& operator=(const Primary&) = delete;

    // --- the whole thing
    // Initial sync and COLO entry; false when the secondary was lost (the PVM runs unprotected).
    [[nodiscard]] bool protect();
    // Checkpoints, streaming and heartbeats until `stop` is requested (then stop()) or the
    // secondary is lost. Calls protect() first when that has not happened yet.
    void run(std::stop_token stop);
    // One checkpoint now; false when the secondary was lost.
    [[nodiscard]] bool checkpoint();
    // Ends protection on purpose: Goodbye to the secondary, output released, role stopped.
    void stop(const std::string& reason);

    // --- the same in steps (tests drive both sides from one thread with these)
    void send_initial_sync();
    [[nodiscard]] bool await_colo_entry();
    void send_checkpoint();
    [[nodiscard]] bool await_checkpoint();
    // One streaming pass; returns the pages sent (0 when too few were dirty or the link failed).
    std::uint64_t stream_pass();
    // Heartbeats and incoming messages until `until`.
    void poll(Clock::time_point until);

    // --- any thread
    void request_checkpoint() { checkpoint_requested_ = true; }
    [[nodiscard]] Role role() const { return state_.role(); }
    [[nodiscard]] PrimaryStats status() const;

    // Harvested pages not yet delivered (tests: nothing is lost when a send fails).
    [[nodiscard]] const DirtyBitmap& pending() const { return pending_; }
    [[nodiscard]] const OutputGate& gate() const { return gate_; }

private:
    struct InFlight {
        std::uint64_t epoch = 0;
        std::uint64_t console_offset = 0;
        bool loaded = false;
    };

    void send(const protocol::Message& message);
    // Sends, or loses the secondary (returns false) when the link refuses.
    [[nodiscard]] bool try_send(const protocol::Message& message);
    void handle(const protocol::Message& message);
    // Heartbeats and messages until done() or `until`; false when the secondary was lost.
    bool pump(Clock::time_point until, const std::function<bool()>& done);
    bool await_loaded();
    // Tells the secondary how far output was released, when that moved.
    bool report_released();
    void lose_secondary(const std::string& reason);
    // The link failed with `error`: lose the secondary, for the reason it gave if it gave one.
    void lose_link(const Error& error);
    [[nodiscard]] Millis checkpoint_period() const;
    [[nodiscard]] bool checkpoint_due(Clock::time_point now) const;

    Backend& pvm_;
    Channel& channel_;
    PrimaryConfig config_;
    OutputGate gate_;
    FailoverState state_{Role::syncing};
    PeerMonitor monitor_;
    PrecopySender precopy_;
    DirtyBitmap pending_;
    PageStaging staging_;  // the checkpoint being sent, copied out while the PVM was paused
    std::optional<InFlight> in_flight_;
    std::atomic<std::uint64_t> epoch_{0};  // last committed
    std::uint64_t released_reported_ = 0;
    std::atomic<bool> checkpoint_requested_{false};
    Clock::time_point sync_paused_at_{};
    Clock::time_point last_checkpoint_{};
    Clock::time_point last_stream_{};

    mutable std::mutex stats_mutex_;
    PrimaryStats stats_;
    PauseHistory pauses_;
};

}  // namespace colo
