#include "toolstack/replication/colo_primary.hpp"

#include <algorithm>
#include <cstring>
#include <variant>

#include "backends/realtime_boost.hpp"
#include "toolstack/protocol/message_codec.hpp"
#include "toolstack/protocol/record_types.hpp"
#include "toolstack/replication/last_words.hpp"
#include "toolstack/replication/message_log.hpp"
#include "toolstack/replication/ownership_arbiter.hpp"
#include "toolstack/replication/stall_watch.hpp"
#include "toolstack/replication/pipeline_clock.hpp"
#include "toolstack/replication/stream_schedule.hpp"
#include "toolstack/replication/page_batches.hpp"

namespace colo {

namespace {

using transaction::PrimaryPhase;
using transaction::Step;

constexpr const char* kWho = "primary";
// Longest time the loop blocks in receive() before it looks at divergence, requests and stop.
constexpr Millis kMaxWait{10};
// While a device waits for the secondary during the initial sync (a disk for its hashes).
constexpr Millis kSyncWait{10};
// How often a guest that was asked to suspend is looked at (messages are handled in between).
constexpr Millis kSuspendPoll{1};
// Checkpoint staging made ready before the first checkpoint: 4 batches of 256 pages (4 MiB), as
// much as a checkpoint at 10k dirty pages/s carries with room to spare; more grow on demand.
constexpr std::size_t kStagingBatches = 4;

const PrimaryConfig& validated(const PrimaryConfig& config) {
    validate(config);
    return config;
}

}  // namespace

Primary::Primary(Backend& pvm, Channel& channel, PrimaryConfig config, OutputSink sink,
                 std::vector<std::unique_ptr<PrimaryDevice>> devices)
    : pvm_(pvm),
      channel_(channel),
      config_(validated(config)),
      monitor_(config_.link, Clock::now()),
      precopy_(pvm, channel, config_.precopy, config_.log, kWho),
      pending_(pvm.memory().frame_limit()) {
    // With a witness this copy must notice its own stalls (stall_watch.hpp); without one a
    // partition can make two live copies anyway, and a stall changes nothing.
    if (config_.arbiter) stall_watch_ = std::make_unique<StallWatch>(config_.link.peer_timeout);
    if (GuestSuspend* guest = pvm_.cooperative_suspend()) {
        // In COLO mode the SVM runs between checkpoints, so each checkpoint would have to restart
        // its PV drivers from the suspended image (a full resume every time, as Xen's COLO does).
        if (config_.mode == ProtectionMode::colo) {
            throw Error("guest " + pvm_.name() + " suspends itself for checkpoints (PV drivers, asked through " +
                        guest->how() + "), which only Remus mode supports: protect it with --remus "
                        "(or checkpoint_style = \"transparent\" in its config, whose replica cannot run on after a takeover)");
        }
        auto suspend = std::make_unique<suspend_device::Primary>(*guest, config_.suspend_timeout);
        suspend_ = suspend.get();
        devices_.push_back(std::move(suspend));
    }
    auto console = std::make_unique<console_device::Primary>(pvm_, std::move(sink), config_.console_offset);
    console_ = console.get();
    devices_.push_back(std::move(console));
    const auto nics = pvm_.nics();
    for (std::uint32_t i = 0; i < nics.size(); ++i) {
        std::unique_ptr<net_device::EgressCompare> compare;
        if (config_.mode == ProtectionMode::colo) {
            compare = config_.make_net_compare ? config_.make_net_compare() : net_device::make_egress_compare(config_.mode);
        }
        auto nic = std::make_unique<net_device::Primary>(*nics[i], i, std::move(compare), [this] { channel_.wake(); });
        nics_.push_back(nic.get());
        devices_.push_back(std::move(nic));
    }
    const auto disks = pvm_.disks();
    for (std::uint32_t i = 0; i < disks.size(); ++i) {
        auto disk = std::make_unique<disk_device::Primary>(*disks[i], i, [this] { channel_.wake(); });
        disks_.push_back(disk.get());
        devices_.push_back(std::move(disk));
    }
    for (auto& device : devices) devices_.push_back(std::move(device));
    device_send_ = [this](const protocol::Message& message) { send(message); };
    precopy_.set_between_batches([this] {
        for (auto& device : devices_) device->drain(device_send_);
    });
    stats_.mode = to_string(config_.mode);
    pvm_.set_realtime_pause(config_.realtime_pause);
}

Primary::~Primary() {
    try {
        pvm_.set_realtime_pause(false);
    } catch (const std::exception&) {
        // The guest is going away with the pipeline: its threads' priority no longer matters.
    }
}

Millis Primary::checkpoint_period() const {
    return config_.mode == ProtectionMode::remus ? config_.checkpoint_interval : config_.max_checkpoint_interval;
}

bool Primary::device_wants_checkpoint() const {
    return std::any_of(devices_.begin(), devices_.end(), [](const auto& d) { return d->wants_checkpoint(); });
}

bool Primary::checkpoint_due(Clock::time_point now) const {
    return device_wants_checkpoint() || now >= last_checkpoint_ + checkpoint_period();
}

void Primary::send(const protocol::Message& message) {
    log_sent(config_.log, kWho, message);
    channel_.send(message);
}

bool Primary::guarded(const std::function<void()>& step) {
    try {
        step();
        return state_.role() == Role::syncing || state_.role() == Role::protecting;
    } catch (const std::exception& e) {
        lose_link(e);
        return false;
    }
}

void Primary::lose_link(const std::exception& error) noexcept {
    if (dynamic_cast<const LinkDown*>(&error)) {
        try {
            if (auto words = last_words(channel_)) {
                handle(*words);  // Failure or Goodbye: loses the secondary with its own reason
                return;
            }
        } catch (const std::exception&) {
            // Nothing readable was left: the link's own error is the reason.
        }
    }
    lose_secondary(error.what());
}

std::string Primary::leave_protection() noexcept {
    std::string trouble;
    if (in_flight_) {
        pending_ |= in_flight_->frames;  // it will never commit: its frames are undelivered
        in_flight_.reset();
    }
    for (auto& device : devices_) device->teardown();
    try {
        pvm_.stop_dirty_log();
    } catch (const std::exception& e) {
        trouble = std::string("stopping dirty logging: ") + e.what();
    }
    try {
        if (pvm_.paused()) pvm_.resume();
    } catch (const std::exception& e) {
        trouble = std::string("the guest could not be resumed: ") + e.what();
    }
    return trouble;
}

void Primary::lose_secondary(const std::string& reason) noexcept {
    {
        // Role and reason change together: status() never shows "unprotected" without why.
        std::lock_guard lock(stats_mutex_);
        if (!state_.transition(Role::protecting, Role::unprotected) &&
            !state_.transition(Role::syncing, Role::unprotected)) {
            return;  // already lost or stopped: someone else made the change
        }
        phase_ = PrimaryPhase::unprotected;
        stats_.protection_lost_reason = reason;
        stats_.protection_lost_at = std::chrono::system_clock::now();
    }
    // Tell a secondary that is still listening not to take over: the PVM is alive.
    try {
        channel_.send(protocol::Failure{"primary dropped the secondary: " + reason});
    } catch (const std::exception&) {
        // The link is gone; there is nobody to tell.
    }
    channel_.close();
    if (config_.arbiter && !win_arbitration()) return;
    const std::string trouble = leave_protection();
    try {
        config_.log(LogLevel::notice, "colo primary: secondary lost (" + reason + "); guest " + pvm_.name() +
                                          " continues UNPROTECTED" + (trouble.empty() ? "" : "; " + trouble));
        if (!trouble.empty()) {
            std::lock_guard lock(stats_mutex_);
            stats_.protection_lost_reason += "; " + trouble;
        }
    } catch (...) {
        // Out of memory for a message: the role and phase already say what happened.
    }
}

void Primary::set_arbitration(const std::string& text) {
    std::lock_guard lock(stats_mutex_);
    stats_.arbitration = text;
    stats_.witness = config_.arbiter->describe();
}

bool Primary::win_arbitration() noexcept {
    arbitrating_ = true;
    std::string lost;
    try {
        // Held output: a paused guest makes none, and what the gate holds stays held until the
        // witness says this copy is the guest (the secondary may be taking over right now).
        pvm_.pause();
        set_arbitration("holding output (guest paused): asking the witness");
        const auto verdict = config_.arbiter->arbitrate(
            [this] { return stop_.stop_requested(); },
            [&](const std::string& why, bool first) {
                set_arbitration("holding output (guest paused): the witness cannot be reached: " + why);
                if (first) {
                    config_.log(LogLevel::notice, "colo primary: secondary lost; guest " + pvm_.name() +
                                                      " paused, its output held, until the witness answers: " + why);
                }
            });
        if (verdict == OwnershipArbiter::Verdict::won) {
            set_arbitration("won: this copy owns the guest (" + config_.arbiter->describe() + ")");
            secondary_released_ = true;  // the witness refuses it a takeover from now on
            arbitrating_ = false;
            return true;
        }
        lost = verdict == OwnershipArbiter::Verdict::lost
                   ? "the witness names " + config_.arbiter->winner() + " as the owner (the secondary took over): this copy is stopped for good"
                   : "stopped while waiting for the witness";
    } catch (const std::exception& e) {
        lost = std::string("arbitration failed: ") + e.what();
    }
    // This copy must never run again: devices dropped without releasing what they hold, the
    // PVM left paused, and the caller ends it.
    if (in_flight_) in_flight_.reset();
    for (auto& device : devices_) device->abort();
    try {
        pvm_.stop_dirty_log();
    } catch (...) {
    }
    {
        std::lock_guard lock(stats_mutex_);
        (void)state_.transition(Role::unprotected, Role::stopped);
        phase_ = PrimaryPhase::stopped;
        stats_.protection_lost_reason += "; " + lost;
        stats_.arbitration = "lost: " + lost;
    }
    arbitrating_ = false;
    try {
        config_.log(LogLevel::notice, "colo primary: guest " + pvm_.name() + ": " + lost);
        if (config_.fenced && !stop_.stop_requested()) config_.fenced(lost);
    } catch (...) {
    }
    return false;
}

PrimaryDevice& Primary::device_for(const protocol::Message& message) {
    for (auto& device : devices_) {
        if (device->owns(message)) return *device;
    }
    throw Error(std::string("primary: no checkpoint device takes ") + protocol::message_name(message));
}

void Primary::handle(const protocol::Message& message) {
    log_received(config_.log, kWho, message);
    const PrimaryPhase phase = phase_;
    switch (transaction::primary_step(phase, protocol::record_type_of(message))) {
        case Step::alive:
            if (const auto* report = std::get_if<protocol::SecondaryReport>(&message)) {
                std::lock_guard lock(stats_mutex_);
                stats_.secondary = *report;
                stats_.secondary_reported_at = std::chrono::steady_clock::now();
            }
            return;
        case Step::device: device_for(message).receive(message); return;
        case Step::acknowledge: {
            const auto& loaded = std::get<protocol::CheckpointLoaded>(message);
            if (!in_flight_ || in_flight_->loaded || loaded.epoch != in_flight_->epoch) {
                throw Error("primary: unexpected checkpoint-loaded for epoch " + std::to_string(loaded.epoch) +
                            (in_flight_ ? " (expected " + std::to_string(in_flight_->epoch) + ")"
                                        : std::string(" (no checkpoint in flight)")));
            }
            in_flight_->loaded = true;
            return;
        }
        case Step::lose_secondary:
            secondary_released_ = true;  // it said so itself: it drops its replica, it does not take over
            if (const auto* failure = std::get_if<protocol::Failure>(&message)) {
                lose_secondary("the secondary failed: " + failure->message);
            } else {
                lose_secondary("the secondary left: " + std::get<protocol::Goodbye>(message).reason);
            }
            return;
        default:
            throw Error(std::string("primary: unexpected ") + protocol::message_name(message) +
                        " from the secondary in phase " + transaction::to_string(phase));
    }
}

void Primary::poll_devices() {
    // Releases go out here, on the pipeline thread only, each followed by its report.
    for (auto& device : devices_) device->poll(device_send_);
}

bool Primary::pump(Clock::time_point until, const std::function<bool()>& done) {
    while (state_.role() == Role::syncing || state_.role() == Role::protecting) {
        if (done && done()) return true;
        auto now = Clock::now();
        std::optional<protocol::Message> message;
        try {
            if (monitor_.heartbeat_due(now)) send(protocol::Heartbeat{monitor_.heartbeat_sent(now), pipeline_now_ns()});
            const auto wait = std::min({until, monitor_.next_heartbeat(), monitor_.death_deadline(), now + kMaxWait});
            message = channel_.receive(wait);
            if (message && stall_watch_) {
                if (const auto stall = stall_watch_->take_stall()) {
                    // Whatever the secondary said before the stall may be stale: it may have taken
                    // over meanwhile. Nothing of it is acted on; the witness decides.
                    lose_secondary("this process stood still for " + std::to_string(stall->count()) +
                                   " ms, longer than the heartbeat timeout (stopped, or its host froze): the secondary may have taken over");
                    return false;
                }
            }
            if (message) {
                monitor_.heard(Clock::now());
                handle(*message);
            }
            // Death is judged only after looking at what arrived: a long send or streaming pass,
            // when nobody listened, must not count the peer's queued heartbeats as silence.
            if (!message && monitor_.dead(Clock::now())) {
                lose_secondary("no message from it for " + std::to_string(config_.link.peer_timeout.count()) + " ms");
                return false;
            }
            if (state_.role() == Role::protecting) poll_devices();
        } catch (const std::exception& e) {
            lose_link(e);
            return false;
        }
        if (!message && Clock::now() >= until) return done ? done() : true;
    }
    return false;
}

void Primary::poll(Clock::time_point until) { pump(until, {}); }

void Primary::send_initial_sync() {
    if (state_.role() != Role::syncing || phase_ != PrimaryPhase::syncing) {
        throw Error("primary: initial sync runs once, before protection");
    }
    guarded([&] {
        sync_devices();
        if (state_.role() != Role::syncing) return;
        // Compression, when asked for, is for the initial sync only: a checkpoint's pages are
        // sent while the guest may be paused, where compressing would lengthen the pause.
        channel_.set_compress_pages(config_.compress_sync);
        precopy_.send_live();
        if (!reach_quiet_point()) {
            if (state_.role() != Role::syncing) return;
            throw Error("guest " + pvm_.name() + " did not suspend within " +
                        std::to_string(config_.suspend_timeout.count()) + " ms when asked through " +
                        suspend_->how() + " (is its kernel frozen or busy?)");
        }
        sync_paused_at_ = Clock::now();
        precopy_.send_final([&] {
            for (auto& device : devices_) device->quiesce();
            for (auto& device : devices_) device->drain(device_send_);
        });
        channel_.set_compress_pages(false);
        // Paused: the PVM is exactly what the secondary has. Entering COLO is checkpoint 0.
        pending_ = precopy_.pending();  // empty unless a send failed
        {
            std::lock_guard lock(stats_mutex_);
            if (config_.compress_sync) {
                const auto compression = channel_.page_compression();
                stats_.sync_page_bytes = compression.bytes_in;
                stats_.sync_compressed_bytes = compression.bytes_out;
            }
            stats_.pages_migrated = precopy_.pages_sent();
            stats_.bytes_sent += precopy_.bytes_sent();
            stats_.migration_rounds = precopy_.passes();
            stats_.sync_throttle_percent = precopy_.throttle_percent();
        }
        in_flight_ = InFlight{0, DirtyBitmap(pending_.size()), false};
        phase_ = PrimaryPhase::entering;
        for (auto& device : devices_) device->setup(config_.mode, device_send_);
        entered_colo_ = true;  // from here the secondary may hold a complete replica
        send(protocol::EnterColo{0});
        for (auto& device : devices_) device->preresume();
        pvm_.resume();
        {
            std::lock_guard lock(stats_mutex_);
            stats_.enter_colo_pause = elapsed_since(sync_paused_at_);
        }
        staging_.prepare(kStagingBatches, config_.precopy.batch_pages);
    });
}

void Primary::sync_devices() {
    for (auto& device : devices_) device->start_sync(device_send_);
    // Until every device is done: a piece each, then whatever the secondary sent (its hashes,
    // heartbeats) without waiting. pump ends protection if the secondary goes silent.
    for (;;) {
        bool done = true, sent = false;
        for (auto& device : devices_) {
            const SyncProgress progress = device->sync_step(device_send_);
            done = done && progress == SyncProgress::done;
            sent = sent || progress == SyncProgress::sent;
        }
        if (done) return;
        // Nothing was sent: the devices wait for the secondary (its hashes), so wait for it too.
        if (!pump(Clock::now() + (sent ? Millis{0} : kSyncWait), {})) return;
    }
}

bool Primary::await_loaded() {
    // We were busy sending, not listening: silence so far says nothing about the peer.
    monitor_.heard(Clock::now());
    const auto loaded = [&] { return in_flight_ && in_flight_->loaded; };
    // The PVM runs on while the secondary loads the checkpoint, so streaming goes on meanwhile:
    // otherwise everything dirtied during a slow acknowledgement would wait for the next paused
    // section. The secondary handles messages in order, so these pages reach its cache after it
    // has flushed the checkpoint, as pages of the next epoch.
    const bool stream = config_.stream && state_.role() == Role::protecting &&
                        checkpoint_period() > config_.stream_period;
    for (;;) {
        const auto until = stream ? last_stream_ + config_.stream_period : Clock::time_point::max();
        if (pump(until, loaded)) break;
        if (state_.role() != Role::protecting) return false;
        stream_pass();
    }
    return guarded([&] {
        const std::uint64_t epoch = in_flight_->epoch;
        in_flight_.reset();
        epoch_ = epoch;
        for (auto& device : devices_) device->commit();
        // Checkpoint 0 (entering protection) starts the clock when it is done; later ones count
        // from their pause, so `-i` is the period between checkpoint starts.
        const auto now = Clock::now();
        last_checkpoint_ = epoch == 0 ? now : checkpoint_paused_;
        if (epoch > 0 && now > last_checkpoint_ + checkpoint_period()) {
            std::lock_guard lock(stats_mutex_);
            ++stats_.checkpoint_overruns;
        }
        if (state_.role() == Role::protecting) phase_ = PrimaryPhase::running;
        poll_devices();
        if (epoch > 0) pvm_.checkpoint_committed(epoch);
    });
}

bool Primary::await_colo_entry() {
    if (!in_flight_ || in_flight_->epoch != 0) return false;
    if (!await_loaded()) return false;
    if (!state_.transition(Role::syncing, Role::protecting)) return false;
    phase_ = PrimaryPhase::running;
    std::string disks;
    if (!disks_.empty()) {
        const PrimaryStats now = status();
        disks = "; disks synced: " + std::to_string(now.disk_sync_blocks_sent) + " of " +
                std::to_string(now.disk_sync_blocks) + " blocks sent (" + std::to_string(now.disk_sync_bytes) +
                " bytes) in " + std::to_string(now.disk_sync_ms) + " ms";
    }
    config_.log(LogLevel::notice, "colo primary: guest " + pvm_.name() + " is protected (" +
                                      to_string(config_.mode) + ")" + disks);
    last_stream_ = Clock::now();
    std::lock_guard lock(stats_mutex_);
    stats_.time_to_enter_colo = elapsed_since(sync_paused_at_);
    return true;
}

bool Primary::protect() {
    send_initial_sync();
    return await_colo_entry();
}

bool Primary::reach_quiet_point() {
    for (auto& device : devices_) device->presuspend();
    const auto ready = [&] {
        return std::all_of(devices_.begin(), devices_.end(), [](const auto& d) { return d->ready_to_pause(); });
    };
    const auto deadline = Clock::now() + config_.suspend_timeout;
    // One look at the devices per poll (the suspend device's is a hypercall under the backend's
    // lock): pump serves the link in between and only says whether protection goes on.
    while (!ready()) {
        const auto now = Clock::now();
        if (now >= deadline) {
            bool all = true;
            for (auto& device : devices_) all = device->cancel_presuspend() && all;
            return all;
        }
        if (!pump(std::min(deadline, now + kSuspendPoll), {})) return false;
    }
    return true;
}

bool Primary::send_checkpoint() {
    if (state_.role() != Role::protecting) throw Error("primary: checkpoint while not protecting");
    if (in_flight_) throw Error("primary: a checkpoint is already in flight");
    // A guest that suspended late wants a checkpoint too, but nothing diverged.
    const bool diverged = std::any_of(devices_.begin(), devices_.end(),
                                      [this](const auto& d) { return d.get() != suspend_ && d->wants_checkpoint(); });
    const std::uint64_t epoch = epoch_ + 1;
    bool quiet = false;
    guarded([&] { quiet = reach_quiet_point(); });
    if (!quiet) {
        if (state_.role() != Role::protecting) return false;
        // Skipped: the guest did not suspend in time. The next attempt is one period later.
        last_checkpoint_ = Clock::now();
        config_.log(LogLevel::notice, "colo primary: checkpoint " + std::to_string(epoch) + " skipped: guest " + pvm_.name() +
                                          " did not suspend within " + std::to_string(config_.suspend_timeout.count()) + " ms");
        return false;
    }
    return guarded([&] {
        // Paused section: copy everything the checkpoint needs into local buffers. Until the
        // copy is complete the harvested frames stay in pending_: a failure here keeps them.
        const auto paused_at = Clock::now();
        checkpoint_paused_ = paused_at;
        phase_ = PrimaryPhase::checkpointing;
        std::optional<RealtimeBoost> boost;
        if (config_.realtime_pause) {
            boost.emplace();
            realtime_refused_ = boost->refused_errno();
        }
        pvm_.pause();
        for (auto& device : devices_) device->quiesce();
        for (auto& device : devices_) device->postsuspend();
        const auto stopped_at = Clock::now();
        pvm_.harvest_dirty(pending_);
        const auto harvested_at = Clock::now();
        in_flight_ = InFlight{epoch, pending_, false};
        staging_.copy(pvm_.memory(), in_flight_->frames, config_.precopy.batch_pages);
        const auto copied_at = Clock::now();
        std::vector<StateRecord> state = pvm_.save_state();
        const auto saved_at = Clock::now();
        pending_.clear_all();  // from here on the frames are in_flight_'s
        Micros pause{0};
        const auto resume = [&] {
            pause = elapsed_since(paused_at);
            if (keep_paused_) return;
            for (auto& device : devices_) device->preresume();
            pvm_.resume();
            boost.reset();  // sending goes at the priority of the rest of the host's work
        };
        if (config_.early_resume) resume();

        std::uint64_t pages = 0, bytes = 0;
        send(protocol::CheckpointBegin{epoch});
        for (std::size_t i = 0; i < staging_.size(); ++i) {
            const auto& batch = std::get<protocol::PageBatch>(staging_[i]);
            pages += batch.frames.size();
            bytes += batch.data.size();
            send(staging_[i]);
        }
        const auto state_records = static_cast<std::uint32_t>(state.size());
        for (auto& record : state) {
            bytes += record.data.size();
            send(protocol::DeviceState{std::move(record)});
        }
        std::uint32_t device_records = 0;
        for (auto& device : devices_) device_records += device->send_checkpoint(device_send_);
        send(protocol::CheckpointEnd{epoch, pages, state_records, device_records});
        if (!config_.early_resume) resume();
        phase_ = PrimaryPhase::awaiting_ack;
        std::lock_guard lock(stats_mutex_);
        pauses_.add(pause);
        pause_stops_.add(micros_between(paused_at, stopped_at));
        pause_harvests_.add(micros_between(stopped_at, harvested_at));
        pause_copies_.add(micros_between(harvested_at, copied_at));
        pause_states_.add(micros_between(copied_at, saved_at));
        stats_.pages_sent_paused += pages;
        stats_.bytes_sent += bytes;
        if (diverged) ++stats_.divergence_checkpoints;
    });
}

bool Primary::await_checkpoint() {
    if (!in_flight_) return false;
    if (!await_loaded()) return false;
    std::lock_guard lock(stats_mutex_);
    ++stats_.checkpoints;
    stats_.last_checkpoint = std::chrono::system_clock::now();
    return true;
}

bool Primary::checkpoint() {
    if (!send_checkpoint()) return state_.role() == Role::protecting;
    return await_checkpoint();
}

std::uint64_t Primary::stream_pass() {
    if (!config_.stream || state_.role() != Role::protecting) return 0;
    last_stream_ = Clock::now();
    std::uint64_t pages = 0, bytes = 0;
    guarded([&] {
        pvm_.harvest_dirty(pending_);
        if (pending_.count() < std::max<std::uint64_t>(config_.stream_min_pages, 1)) return;
        // Pages are read while the PVM runs: a page written during the copy is in the log again
        // and goes out with the next pass or checkpoint. A batch the link took may still be lost
        // with it, so the frames leave pending_ only once the whole pass is sent.
        for_each_page_batch(pvm_.memory(), pending_, config_.precopy.batch_pages, [&](const protocol::Message& message) {
            send(message);
            const auto& batch = std::get<protocol::PageBatch>(message);
            pages += batch.frames.size();
            bytes += batch.data.size();
        });
        pending_.clear_all();
        std::lock_guard lock(stats_mutex_);
        stats_.pages_streamed += pages;
        stats_.bytes_sent += bytes;
    });
    return state_.role() == Role::protecting ? pages : 0;
}

void Primary::run(std::stop_token stop) noexcept {
    stop_ = stop;
    try {
        if (state_.role() == Role::syncing && phase_ == PrimaryPhase::syncing && !protect()) return;
        while (state_.role() == Role::protecting) {
            if (stop.stop_requested()) {
                this->stop("stop requested");
                return;
            }
            if (handover_requested_) {
                if (hand_over()) return;
                continue;
            }
            const auto now = Clock::now();
            if (checkpoint_due(now)) {
                if (!checkpoint()) return;
                continue;
            }
            const auto next_checkpoint = last_checkpoint_ + checkpoint_period();
            if (config_.stream && now >= next_stream_pass(last_stream_, next_checkpoint, config_.stream_period)) {
                stream_pass();
            }
            auto until = next_checkpoint;
            if (config_.stream) until = std::min(until, next_stream_pass(last_stream_, next_checkpoint, config_.stream_period));
            pump(until, [&] { return stop.stop_requested() || handover_requested_ || device_wants_checkpoint(); });
        }
    } catch (const std::exception& e) {
        // A step's own misuse check (a bug, not a failure of the guest or the link): protection
        // still ends the one way it always does.
        lose_secondary(std::string("internal error: ") + e.what());
    }
}

void Primary::stop(const std::string& reason) noexcept {
    const Role was = state_.role();
    if (!state_.transition(was, Role::stopped)) return;
    if (was == Role::syncing || was == Role::protecting) {
        phase_ = PrimaryPhase::stopped;
        try {
            send(protocol::Goodbye{reason});
            secondary_released_ = true;
        } catch (const std::exception&) {
            // Nobody is listening; stopping anyway.
        }
        channel_.close();
        const std::string trouble = leave_protection();
        try {
            config_.log(LogLevel::notice, "colo primary: protection of guest " + pvm_.name() + " stopped (" + reason +
                                              ")" + (trouble.empty() ? "" : "; " + trouble));
        } catch (...) {
            // The role says it.
        }
    }
}

bool Primary::hand_over() noexcept {
    keep_paused_ = true;
    const std::uint64_t before = epoch_;
    bool committed = checkpoint();
    keep_paused_ = false;
    if (committed && epoch_ == before) {
        // The guest would not suspend for the last checkpoint (skipped): nothing changed hands.
        handover_requested_ = false;
        try {
            config_.log(LogLevel::notice, "colo primary: handover of guest " + pvm_.name() +
                                              " given up: it did not suspend for the last checkpoint; protection goes on");
        } catch (...) {
            // The role (still protected) says it.
        }
        return false;
    }
    if (!committed) {
        // Protection was lost on the way (lose_secondary resumed the PVM): nothing was handed over.
        if (pvm_.paused()) {
            try {
                pvm_.resume();
            } catch (const std::exception&) {
                // The role and the reason in status say what happened.
            }
        }
        return true;
    }
    // The secondary acknowledged a checkpoint of the PVM as it stands, paused: it is the guest now.
    // No Goodbye (that would make it drop its replica); the link just ends, as at this host's loss.
    // handed_over_ first: whoever waits for the role to change reads it right after.
    handed_over_ = true;
    if (!state_.transition(Role::protecting, Role::stopped)) {
        handed_over_ = false;
        return true;
    }
    phase_ = PrimaryPhase::stopped;
    channel_.close();
    try {
        config_.log(LogLevel::notice, "colo primary: guest " + pvm_.name() + " handed over to the secondary at checkpoint " +
                                          std::to_string(epoch_.load()));
    } catch (...) {
        // The role says it.
    }
    return true;
}

PrimaryStats Primary::status() const {
    std::lock_guard lock(stats_mutex_);
    PrimaryStats out = stats_;
    const Role role = state_.role();
    out.state = arbitrating_ ? "arbitrating" : handed_over_ ? "handed-over" : role == Role::protecting ? "protected" : to_string(role);
    if (config_.arbiter && out.witness.empty()) out.witness = config_.arbiter->describe();
    out.phase = transaction::to_string(phase_.load());
    out.epoch = epoch_;
    out.checkpoints = stats_.checkpoints;
    out.pause_p50 = pauses_.percentile(50);
    out.pause_p99 = pauses_.percentile(99);
    out.pause_max = pauses_.max();
    out.pause_stop_p99 = pause_stops_.percentile(99);
    out.pause_harvest_p99 = pause_harvests_.percentile(99);
    out.pause_copy_p99 = pause_copies_.percentile(99);
    out.pause_state_p99 = pause_states_.percentile(99);
    out.pause_realtime = !config_.realtime_pause ? "off"
                         : realtime_refused_ == 0 ? "on"
                                                  : "refused: " + std::string(std::strerror(realtime_refused_));
    out.output_released = console_->gate().released();
    const std::uint64_t produced = console_->gate().produced();
    out.output_held = produced > out.output_released ? produced - out.output_released : 0;
    if (role == Role::syncing) {  // progress of the initial sync, live
        out.pages_migrated = precopy_.pages_sent();
        out.migration_rounds = precopy_.passes();
        out.sync_throttle_percent = precopy_.throttle_percent();
        out.bytes_sent = precopy_.bytes_sent();
    }
    if (suspend_) {
        const suspend_device::SuspendStats suspend = suspend_->stats();
        out.suspend_how = suspend.how;
        out.suspends = suspend.suspends;
        out.suspend_timeouts = suspend.timeouts;
        out.suspend_p50 = suspend.p50;
        out.suspend_p99 = suspend.p99;
        out.suspend_max = suspend.max;
    }
    for (const auto* nic : nics_) {
        const net_device::NetStats net = nic->stats();
        out.net_ingress_frames += net.ingress_frames;
        out.net_egress_frames += net.egress_frames;
        out.net_released_frames += net.released_frames;
        out.net_held_frames += net.held_frames;
        out.net_compare_checkpoints += net.compare_checkpoints;
        if (!net.last_compare_reason.empty()) out.net_last_compare_reason = net.last_compare_reason;
    }
    for (const auto* disk : disks_) {
        const disk::MirrorStats d = disk->stats();
        out.disk_sync_blocks += d.sync_blocks;
        out.disk_sync_blocks_done += d.sync_blocks_done;
        out.disk_sync_blocks_sent += d.sync_blocks_sent;
        out.disk_sync_bytes += d.sync_bytes_sent;
        out.disk_sync_ms = std::max(out.disk_sync_ms, d.sync_ms);
        out.disk_writes_mirrored += d.writes;
        out.disk_write_bytes_mirrored += d.write_bytes;
    }
    return out;
}

}  // namespace colo
