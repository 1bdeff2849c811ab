#include "toolstack/replication/colo_secondary.hpp"

#include <algorithm>
#include <future>
#include <thread>
#include <variant>

#include "toolstack/protocol/message_codec.hpp"
#include "toolstack/replication/message_log.hpp"
#include "toolstack/replication/ownership_arbiter.hpp"
#include "toolstack/replication/pipeline_clock.hpp"
#include "toolstack/replication/page_batches.hpp"

namespace colo {

namespace {

using transaction::SecondaryPhase;
using transaction::Step;

constexpr const char* kWho = "secondary";
constexpr std::uint64_t kFlushBatchPages = 256;

}  // namespace

const char* to_string(Secondary::Outcome outcome) {
    switch (outcome) {
        case Secondary::Outcome::running: return "running";
        case Secondary::Outcome::migrated: return "migrated";
        case Secondary::Outcome::failed_over: return "failed-over";
        case Secondary::Outcome::stopped: return "stopped";
    }
    return "unknown";
}

Secondary::Secondary(Backend& svm, Channel& channel, SecondaryConfig config, OutputSink sink,
                     std::vector<std::unique_ptr<SecondaryDevice>> devices)
    : svm_(svm),
      channel_(channel),
      config_(std::move(config)),
      monitor_(config_.link, Clock::now()),
      received_(svm.memory().frame_limit()) {
    if (config_.console_poll.count() <= 0) throw Error("secondary: the console poll period must be positive");
    if (config_.cache_backup) {
        cache_.emplace(svm_.memory().regions());
        // Before the first page arrives: the SVM's memory is replaced by the (empty) cache's.
        if (config_.share_cache) (void)cache_->share_with(svm_.memory());
    }
    auto console = std::make_unique<console_device::Secondary>(svm_, config_.mode, std::move(sink));
    console_ = console.get();
    devices_.push_back(std::move(console));
    const auto nics = svm_.nics();
    for (std::uint32_t i = 0; i < nics.size(); ++i) {
        auto nic = std::make_unique<net_device::Secondary>(*nics[i], i, config_.mode, [this] { channel_.wake(); });
        nics_.push_back(nic.get());
        devices_.push_back(std::move(nic));
    }
    const auto disks = svm_.disks();
    for (std::uint32_t i = 0; i < disks.size(); ++i) {
        auto disk = std::make_unique<disk_device::Secondary>(*disks[i], i, config_.mode, [this] { channel_.wake(); });
        disks_.push_back(disk.get());
        devices_.push_back(std::move(disk));
    }
    for (auto& device : devices) devices_.push_back(std::move(device));
    device_send_ = [this](const protocol::Message& message) { send(message); };
    stats_.mode = to_string(config_.mode);
}

Secondary::~Secondary() = default;

const RamCache& Secondary::cache() const {
    if (!cache_) throw Error("secondary: no RAM cache yet (cache backup is off and COLO was not entered)");
    return *cache_;
}

void Secondary::send(const protocol::Message& message) {
    log_sent(config_.log, kWho, message);
    channel_.send(message);
}

void Secondary::while_heartbeating(const std::function<void()>& work) {
    auto done = std::async(std::launch::async, work);
    while (done.wait_until(monitor_.next_heartbeat()) != std::future_status::ready) {
        const auto now = Clock::now();
        if (monitor_.heartbeat_due(now)) send(protocol::Heartbeat{monitor_.heartbeat_sent(now), pipeline_now_ns()});
    }
    done.get();
}

void Secondary::make_devices_durable() {
    if (std::none_of(devices_.begin(), devices_.end(), [](const auto& d) { return d->durable_due(); })) return;
    while_heartbeating([this] {
        for (auto& device : devices_) device->make_durable();
    });
}

void Secondary::set_stopped_reason(const std::string& reason) {
    std::lock_guard lock(stats_mutex_);
    if (stats_.stopped_reason.empty()) stats_.stopped_reason = reason;
}

Secondary::Outcome Secondary::run(std::stop_token stop) {
    stop_ = stop;
    for (;;) {
        if (stop.stop_requested()) {
            const Role role = state_.role();
            if (role == Role::active) return Outcome::migrated;
            return stop_protection("stop requested");
        }
        const Outcome outcome = process(Clock::now() + Millis{50});
        if (outcome != Outcome::running) return outcome;
    }
}

void Secondary::fail(const std::string& reason) noexcept {
    // The primary may well be alive, so this side must not take over. Say why, end the link.
    (void)state_.transition(Role::protecting, Role::stopped);
    (void)state_.transition(Role::syncing, Role::stopped);
    phase_ = SecondaryPhase::failed;
    staged_.reset();
    for (auto& device : devices_) device->abort();
    try {
        channel_.send(protocol::Failure{reason});
    } catch (const std::exception&) {
        // Nobody left to tell.
    }
    channel_.close();
    try {
        set_stopped_reason(reason);
        config_.log(LogLevel::notice, "colo secondary: stopped: " + reason);
    } catch (...) {
        // The phase says it.
    }
}

Secondary::Outcome Secondary::process(Clock::time_point until) {
    for (;;) {
        const Role role = state_.role();
        if (role != Role::syncing && role != Role::protecting) {
            return role == Role::active ? Outcome::failed_over : Outcome::stopped;
        }
        if (failover_requested_ && role == Role::protecting) return fail_over("failover requested");
        if (failover_requested_ && role == Role::syncing) {
            failover_requested_ = false;
            config_.log(LogLevel::notice, "colo secondary: failover refused: the guest is not complete here yet");
        }
        const auto now = Clock::now();
        std::optional<protocol::Message> message;
        try {
            if (monitor_.heartbeat_due(now)) send(protocol::Heartbeat{monitor_.heartbeat_sent(now), pipeline_now_ns()});
            if (role == Role::protecting && now >= next_report_) {
                next_report_ = now + kReportPeriod;
                const SecondaryStats s = status();
                send(protocol::SecondaryReport{s.epoch, s.checkpoints_applied, static_cast<std::uint64_t>(s.pause_p50.count()),
                                               static_cast<std::uint64_t>(s.pause_p99.count()),
                                               static_cast<std::uint64_t>(s.pause_max.count()),
                                               s.pages_received_migration + s.pages_received_streamed + s.pages_received_checkpoint});
            }
            for (auto& device : devices_) device->poll(device_send_);
            const auto wait = std::min({until, monitor_.next_heartbeat(), monitor_.death_deadline(),
                                        now + config_.console_poll});
            message = channel_.receive(wait);
            if (message) {
                monitor_.heard(Clock::now());
                const Outcome outcome = handle(*message);
                if (outcome != Outcome::running) return outcome;
            } else if (state_.role() == Role::protecting && monitor_.dead(Clock::now())) {
                // Judged only when nothing is waiting: a long apply must not count as silence.
                return fail_over("no message from the primary for " +
                                 std::to_string(config_.link.peer_timeout.count()) + " ms");
            }
        } catch (const LinkDown& e) {
            if (state_.role() == Role::protecting) {
                if (auto outcome = read_last_messages()) return *outcome;
                return fail_over(e.what());
            }
            if (state_.role() == Role::syncing) {
                (void)state_.transition(Role::syncing, Role::stopped);
                phase_ = SecondaryPhase::failed;
                const std::string reason =
                    std::string("secondary: lost the primary before the guest was complete here: ") + e.what();
                set_stopped_reason(reason);
                throw LinkDown(reason);
            }
            throw;
        } catch (const std::exception& e) {
            fail(e.what());
            throw Error(e.what());
        }
        if (!message && Clock::now() >= until) return Outcome::running;
    }
}

SecondaryDevice& Secondary::device_for(const protocol::Message& message) {
    for (auto& device : devices_) {
        if (device->owns(message)) return *device;
    }
    throw Error(std::string("secondary: no checkpoint device takes ") + protocol::message_name(message));
}

Secondary::Outcome Secondary::handle(const protocol::Message& message) {
    log_received(config_.log, kWho, message);
    const SecondaryPhase phase = phase_;
    switch (transaction::secondary_step(phase, protocol::record_type_of(message))) {
        case Step::alive: return Outcome::running;
        case Step::device: device_for(message).receive(message); return Outcome::running;
        case Step::memory: store_migration_pages(std::get<protocol::PageBatch>(message)); return Outcome::running;
        case Step::migration_state:
            migration_state_.push_back(std::get<protocol::DeviceState>(message).state);
            return Outcome::running;
        case Step::commit_migration: commit_migration(std::get<protocol::MigrationCommit>(message)); return Outcome::running;
        case Step::enter_colo: {
            const auto& enter = std::get<protocol::EnterColo>(message);
            if (enter.epoch != 0) throw Error("secondary: enter-colo with epoch " + std::to_string(enter.epoch) + ", expected 0");
            enter_colo(enter.epoch);
            return Outcome::running;
        }
        case Step::migrated: return finish_migration();
        case Step::abandon:
            if (const auto* failure = std::get_if<protocol::Failure>(&message)) {
                throw Error("secondary: the sender failed during migration: " + failure->message);
            }
            throw Error("secondary: the sender ended the migration before migration-commit (" +
                        std::get<protocol::Goodbye>(message).reason + ")");
        case Step::cache: store_cache_pages(std::get<protocol::PageBatch>(message)); return Outcome::running;
        case Step::begin: begin_checkpoint(std::get<protocol::CheckpointBegin>(message)); return Outcome::running;
        case Step::stage_state:
            staged_->state.push_back(std::get<protocol::DeviceState>(message).state);
            return Outcome::running;
        case Step::stage_device:
            device_for(message).stage(message);
            ++staged_->device_records;
            return Outcome::running;
        case Step::apply: {
            const auto& end = std::get<protocol::CheckpointEnd>(message);
            check_checkpoint_end(end);
            apply_checkpoint(end);
            return Outcome::running;
        }
        case Step::stop:
            if (const auto* failure = std::get_if<protocol::Failure>(&message)) {
                return stop_protection("the primary gave up on this secondary: " + failure->message);
            }
            return stop_protection("the primary ended protection: " + std::get<protocol::Goodbye>(message).reason);
        default:
            throw Error(std::string("secondary: unexpected ") + protocol::message_name(message) + " in phase " +
                        transaction::to_string(phase));
    }
}

void Secondary::store_migration_pages(const protocol::PageBatch& batch) {
    check_page_batch(batch, svm_.memory().regions());
    // A sharing SVM reads the cache: one copy. It has not run yet, so it sees the pages at once.
    if (!cache_ || !cache_->shared()) svm_.memory().write_pages(batch.frames, batch.data);
    if (cache_) cache_->load(batch.frames, batch.data);
    std::lock_guard lock(stats_mutex_);
    stats_.pages_received_migration += batch.frames.size();
}

void Secondary::commit_migration(const protocol::MigrationCommit& commit) {
    std::uint64_t received = 0;
    {
        std::lock_guard lock(stats_mutex_);
        received = stats_.pages_received_migration;
    }
    if (commit.pages_total != received) {
        throw Error("secondary: migration-commit says " + std::to_string(commit.pages_total) +
                    " pages were sent, " + std::to_string(received) + " arrived");
    }
    svm_.restore_state(migration_state_);
    migration_state_.clear();
    phase_ = SecondaryPhase::committed;
}

Secondary::Outcome Secondary::finish_migration() {
    if (!state_.transition(Role::syncing, Role::active)) return Outcome::stopped;
    phase_ = SecondaryPhase::active;
    // The console is ours before the guest runs: a byte it prints at once must reach the sink,
    // not a buffer the rebase would clear (that lost the head of the first line).
    // A disk's take_over writes its copy back and syncs it: seconds on a busy host, during which
    // the sender, waiting for this acknowledgement, must still hear from us.
    while_heartbeating([this] {
        for (auto& device : devices_) {
            device->setup();
            device->take_over();
        }
        for (auto& device : devices_) device->make_durable();
    });
    svm_.resume();
    try {
        send(protocol::CheckpointLoaded{0});
    } catch (const Error& e) {
        // The guest runs here already; the sender learns it from the closed link or not at all.
        config_.log(LogLevel::notice, std::string("colo secondary: migrated, but could not acknowledge: ") + e.what());
    }
    config_.log(LogLevel::notice, "colo secondary: migration complete; guest " + svm_.name() + " runs here");
    return Outcome::migrated;
}

void Secondary::enter_colo(std::uint64_t epoch) {
    const auto paused_at = Clock::now();
    std::uint64_t copied = 0;
    if (!cache_) {
        // No cache backup: the cache is filled now, all of it, while the SVM cannot run.
        cache_.emplace(svm_.memory().regions());
        copied = cache_->fill_from(svm_.memory(), kFlushBatchPages);
        // The SVM's memory, copied, is replaced by the cache's: one copy from here on.
        if (config_.share_cache) (void)cache_->share_with(svm_.memory());
    }
    // The SVM's own writes matter only from here on: they are what a checkpoint must revert.
    svm_.start_dirty_log();
    received_.clear_all();
    for (auto& device : devices_) device->setup();
    make_devices_durable();
    epoch_ = epoch;
    if (!state_.transition(Role::syncing, Role::protecting)) return;
    phase_ = SecondaryPhase::protecting;
    if (config_.mode == ProtectionMode::colo) svm_.resume();
    {
        std::lock_guard lock(stats_mutex_);
        stats_.pages_copied_entering_colo = copied;
        stats_.enter_colo_pause = elapsed_since(paused_at);
    }
    send(protocol::CheckpointLoaded{epoch});
}

void Secondary::store_cache_pages(const protocol::PageBatch& batch) {
    check_page_batch(batch, cache_->regions());
    cache_->receive(batch.frames, batch.data);
    mark_frames(batch, received_);
    std::lock_guard lock(stats_mutex_);
    if (staged_) {
        staged_->pages += batch.frames.size();
        stats_.pages_received_checkpoint += batch.frames.size();
    } else {
        stats_.pages_received_streamed += batch.frames.size();
    }
}

void Secondary::begin_checkpoint(const protocol::CheckpointBegin& begin) {
    if (begin.epoch != epoch_ + 1) {
        throw Error("secondary: checkpoint-begin for epoch " + std::to_string(begin.epoch) + ", expected " +
                    std::to_string(epoch_ + 1));
    }
    staged_ = Staged{begin.epoch, 0, 0, {}};
    for (auto& device : devices_) device->begin();
    phase_ = SecondaryPhase::checkpoint;
}

void Secondary::check_checkpoint_end(const protocol::CheckpointEnd& end) {
    if (end.epoch != staged_->epoch || end.pages != staged_->pages || end.state_records != staged_->state.size() ||
        end.device_records != staged_->device_records) {
        throw Error("secondary: checkpoint-end for epoch " + std::to_string(end.epoch) + " claims " +
                    std::to_string(end.pages) + " pages, " + std::to_string(end.state_records) + " state and " +
                    std::to_string(end.device_records) + " device records; epoch " + std::to_string(staged_->epoch) +
                    " brought " + std::to_string(staged_->pages) + ", " + std::to_string(staged_->state.size()) +
                    " and " + std::to_string(staged_->device_records));
    }
    for (auto& device : devices_) device->verify();
}

void Secondary::apply_checkpoint(const protocol::CheckpointEnd& end) {
    const auto paused_at = Clock::now();
    svm_.pause();
    DirtyBitmap svm_dirty(received_.size());
    svm_.harvest_dirty(svm_dirty);
    const std::uint64_t reverted = svm_dirty.count();
    const std::uint64_t flushed = cache_->commit(svm_.memory(), received_, svm_dirty, kFlushBatchPages);
    svm_.restore_state(staged_->state);
    // The SVM runs from the PVM's state now; its devices continue from the checkpoint too.
    for (auto& device : devices_) device->commit();
    make_devices_durable();
    received_.clear_all();
    epoch_ = end.epoch;
    staged_.reset();
    phase_ = SecondaryPhase::protecting;
    if (config_.mode == ProtectionMode::colo) svm_.resume();
    const Micros pause = elapsed_since(paused_at);
    {
        std::lock_guard lock(stats_mutex_);
        ++stats_.checkpoints_applied;
        stats_.pages_flushed += flushed;
        stats_.svm_dirty_reverted += reverted;
        pauses_.add(pause);
    }
    send(protocol::CheckpointLoaded{end.epoch});
    svm_.checkpoint_committed(end.epoch);
}

std::optional<Secondary::Outcome> Secondary::read_last_messages() {
    // The link can fail on our own send (a heartbeat, a checkpoint-loaded) while messages the
    // primary sent before it died still wait to be read: the last ReleasedOutput among them is
    // where the takeover must start releasing, or the primary's output would be repeated. A
    // partial or unacknowledged checkpoint among them is dropped: the primary released nothing
    // of it.
    try {
        while (auto message = channel_.receive(Clock::now())) {
            log_received(config_.log, kWho, *message);
            switch (transaction::secondary_step(phase_, protocol::record_type_of(*message))) {
                case Step::device: device_for(*message).receive(*message); break;
                case Step::stop: return handle(*message);  // a primary that said so is alive: no takeover
                default: break;
            }
        }
    } catch (...) {
        // The end of what the link delivered.
    }
    return std::nullopt;
}

void Secondary::set_arbitration(const std::string& text) {
    std::lock_guard lock(stats_mutex_);
    stats_.arbitration = text;
    stats_.witness = config_.arbiter->describe();
}

bool Secondary::win_arbitration() {
    // A COLO SVM stands still while the witness decides: it may yet be dropped.
    svm_.pause();
    set_arbitration("asking the witness before taking over");
    const auto verdict = config_.arbiter->arbitrate(
        [this] { return stop_.stop_requested(); },
        [&](const std::string& why, bool first) {
            set_arbitration("not taking over until the witness answers: " + why);
            if (first) {
                config_.log(LogLevel::notice, "colo secondary: primary lost; guest " + svm_.name() +
                                                  " takes over only once the witness answers: " + why);
            }
        });
    if (verdict == OwnershipArbiter::Verdict::won) {
        set_arbitration("won: this copy owns the guest (" + config_.arbiter->describe() + ")");
        return true;
    }
    const std::string why = verdict == OwnershipArbiter::Verdict::lost
                                ? "the witness names " + config_.arbiter->winner() +
                                      " as the owner (the primary is alive): this replica is dropped"
                                : "stopped while waiting for the witness";
    (void)state_.transition(Role::failing_over, Role::stopped);
    phase_ = SecondaryPhase::stopped;
    staged_.reset();
    for (auto& device : devices_) device->abort();
    set_stopped_reason(why);
    set_arbitration("lost: " + why);
    config_.log(LogLevel::notice, "colo secondary: guest " + svm_.name() + ": " + why);
    return false;
}

bool Secondary::await_takeover_order(const std::string& reason) {
    // A COLO SVM stands still: it runs only once it is the guest.
    svm_.pause();
    awaiting_takeover_ = true;
    config_.log(LogLevel::notice, "colo secondary: primary lost (" + reason + "); guest " + svm_.name() +
                                      " holds checkpoint " + std::to_string(epoch_.load()) +
                                      " and takes over only on `colo-replicate failover " + svm_.name() + "` (takeover manual)");
    while (!failover_requested_ && !stop_.stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    awaiting_takeover_ = false;
    if (failover_requested_) return true;
    const std::string why = "stopped while waiting for a takeover order";
    (void)state_.transition(Role::failing_over, Role::stopped);
    phase_ = SecondaryPhase::stopped;
    staged_.reset();
    for (auto& device : devices_) device->abort();
    set_stopped_reason(why);
    config_.log(LogLevel::notice, "colo secondary: guest " + svm_.name() + ": " + why);
    return false;
}

Secondary::Outcome Secondary::fail_over(const std::string& reason) {
    if (!state_.transition(Role::protecting, Role::failing_over)) {
        return state_.role() == Role::active ? Outcome::failed_over : Outcome::stopped;
    }
    config_.log(LogLevel::notice, "colo secondary: primary lost (" + reason + "); guest " + svm_.name() +
                                      " takes over from checkpoint " + std::to_string(epoch_.load()));
    channel_.close();
    if (config_.manual_takeover && !failover_requested_ && !await_takeover_order(reason)) return Outcome::stopped;
    if (config_.arbiter && !win_arbitration()) return Outcome::stopped;
    // A partial checkpoint only ever reached the cache; the SVM is the last committed checkpoint
    // (remus) or runs on from it (colo).
    staged_.reset();
    try {
        // A COLO SVM runs: it is paused while its devices change hands, or a disk write it made
        // while its overlay went into the copy would land in the overlay after it was written back
        // (and be lost) or in the copy before older overlay data (and be overwritten).
        svm_.pause();
        for (auto& device : devices_) {
            device->abort();
            device->take_over();
        }
        svm_.stop_dirty_log();
        svm_.resume();
    } catch (const std::exception& e) {
        (void)state_.transition(Role::failing_over, Role::stopped);
        phase_ = SecondaryPhase::failed;
        const std::string why = std::string("takeover failed: ") + e.what();
        set_stopped_reason(why);
        config_.log(LogLevel::notice, "colo secondary: " + why);
        throw Error("secondary: " + why);
    }
    phase_ = SecondaryPhase::active;
    (void)state_.transition(Role::failing_over, Role::active);
    return Outcome::failed_over;
}

Secondary::Outcome Secondary::stop_protection(const std::string& reason) {
    const Role was = state_.role();
    if (was != Role::syncing && was != Role::protecting) return Outcome::stopped;
    if (!state_.transition(was, Role::stopped)) return Outcome::stopped;
    phase_ = SecondaryPhase::stopped;
    set_stopped_reason(reason);
    staged_.reset();
    for (auto& device : devices_) device->abort();
    try {
        if (was == Role::protecting) send(protocol::Goodbye{reason});
    } catch (const Error&) {
        // The link is gone already.
    }
    channel_.close();
    try {
        svm_.pause();
    } catch (const std::exception& e) {
        config_.log(LogLevel::notice, std::string("colo secondary: pausing the unneeded SVM: ") + e.what());
    }
    config_.log(LogLevel::notice, "colo secondary: stopped (" + reason + "); the SVM of " + svm_.name() +
                                      " is no longer needed");
    return Outcome::stopped;
}

SecondaryStats Secondary::status() const {
    std::lock_guard lock(stats_mutex_);
    SecondaryStats out = stats_;
    const Role role = state_.role();
    out.state = awaiting_takeover_ ? "primary-lost" : role == Role::protecting ? "protecting" : to_string(role);
    if (config_.arbiter && out.witness.empty()) out.witness = config_.arbiter->describe();
    out.phase = transaction::to_string(phase_.load());
    out.epoch = epoch_;
    out.pause_p50 = pauses_.percentile(50);
    out.pause_p99 = pauses_.percentile(99);
    out.pause_max = pauses_.max();
    out.primary_released = console_->primary_released();
    for (const auto* nic : nics_) {
        const auto report = nic->takeover_report();
        out.net_takeover_held_sent += report.held_sent;
        out.net_takeover_svm_sent += report.svm_sent;
        out.net_takeover_ingress_replayed += report.ingress_replayed;
        out.net_takeover_tcp_translated += report.tcp_translated;
    }
    for (const auto* disk : disks_) {
        const disk_device::SecondaryDiskStats d = disk->stats();
        out.disk_sync_hashed_blocks += d.sync_hashed_blocks;
        out.disk_writes_applied += d.writes_applied;
        out.disk_bytes_applied += d.bytes_applied;
        out.disk_writes_pending += d.writes_pending;
        out.disk_flushes += d.flushes;
        out.disk_overlay_bytes_dropped += d.overlay_bytes_dropped;
        out.disk_takeover_overlay_bytes += d.takeover_overlay_bytes;
        out.disk_takeover_dropped_writes += d.takeover_dropped_writes;
    }
    return out;
}

}  // namespace colo
