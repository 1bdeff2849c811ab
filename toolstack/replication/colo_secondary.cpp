#include "toolstack/replication/colo_secondary.hpp"

#include <algorithm>
#include <variant>

#include "toolstack/replication/message_log.hpp"
#include "toolstack/replication/pipeline_clock.hpp"
#include "toolstack/replication/page_batches.hpp"

namespace colo {

namespace {

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

Secondary::Secondary(Backend& svm, Channel& channel, SecondaryConfig config, OutputSink sink)
    : svm_(svm),
      channel_(channel),
      config_(std::move(config)),
      sink_(std::move(sink)),
      monitor_(config_.link, Clock::now()),
      received_(svm.memory().frame_limit()) {
    if (config_.console_poll.count() <= 0) throw Error("secondary: the console poll period must be positive");
    if (config_.cache_backup) cache_.emplace(svm_.memory().regions());
    stats_.mode = to_string(config_.mode);
    svm_.set_console_sink([this](std::span<const std::byte> bytes) { console_.svm_output(bytes); });
}

Secondary::~Secondary() {
    try {
        svm_.set_console_sink({});
    } catch (...) {
        // A destructor never throws.
    }
}

const RamCache& Secondary::cache() const {
    if (!cache_) throw Error("secondary: no RAM cache yet (cache backup is off and COLO was not entered)");
    return *cache_;
}

void Secondary::send(const protocol::Message& message) {
    log_sent(config_.log, kWho, message);
    channel_.send(message);
}

void Secondary::forward_console() {
    if (state_.role() != Role::protecting || config_.mode != ProtectionMode::colo) return;
    while (auto out = console_.take_unforwarded()) send(std::move(*out));
}

Secondary::Outcome Secondary::run(std::stop_token stop) {
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
            forward_console();
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
                throw LinkDown(std::string("secondary: lost the primary before the guest was complete here: ") +
                               e.what());
            }
            throw;
        } catch (const Error& e) {
            // A bad stream: the primary may be alive, so this side must not take over. Say why,
            // end the link and stop.
            (void)state_.transition(Role::protecting, Role::stopped);
            (void)state_.transition(Role::syncing, Role::stopped);
            try {
                channel_.send(protocol::Failure{e.what()});
            } catch (const Error&) {
                // Nobody left to tell.
            }
            channel_.close();
            config_.log(LogLevel::notice, std::string("colo secondary: stopped: ") + e.what());
            throw;
        }
        if (!message && Clock::now() >= until) return Outcome::running;
    }
}

Secondary::Outcome Secondary::handle(const protocol::Message& message) {
    log_received(config_.log, kWho, message);
    if (std::holds_alternative<protocol::Heartbeat>(message)) return Outcome::running;
    if (const auto* released = std::get_if<protocol::ReleasedOutput>(&message)) {
        console_.primary_released(released->offset);
        return Outcome::running;
    }
    if (state_.role() == Role::syncing) return handle_migration(message);
    return handle_protection(message);
}

Secondary::Outcome Secondary::handle_migration(const protocol::Message& message) {
    if (const auto* batch = std::get_if<protocol::PageBatch>(&message)) {
        if (migration_committed_) throw Error("secondary: page-batch after migration-commit");
        check_page_batch(*batch, svm_.memory().regions());
        svm_.memory().write_pages(batch->frames, batch->data);
        if (cache_) cache_->store(batch->frames, batch->data);
        std::lock_guard lock(stats_mutex_);
        stats_.pages_received_migration += batch->frames.size();
        return Outcome::running;
    }
    if (const auto* state = std::get_if<protocol::DeviceState>(&message)) {
        if (migration_committed_) throw Error("secondary: device-state after migration-commit");
        migration_state_.push_back(state->state);
        return Outcome::running;
    }
    if (const auto* commit = std::get_if<protocol::MigrationCommit>(&message)) {
        if (migration_committed_) throw Error("secondary: a second migration-commit");
        std::uint64_t received = 0;
        {
            std::lock_guard lock(stats_mutex_);
            received = stats_.pages_received_migration;
        }
        if (commit->pages_total != received) {
            throw Error("secondary: migration-commit says " + std::to_string(commit->pages_total) +
                        " pages were sent, " + std::to_string(received) + " arrived");
        }
        svm_.restore_state(migration_state_);
        migration_state_.clear();
        migration_committed_ = true;
        return Outcome::running;
    }
    if (const auto* goodbye = std::get_if<protocol::Goodbye>(&message)) {
        if (!migration_committed_) {
            throw Error("secondary: the sender ended the migration before migration-commit (" + goodbye->reason + ")");
        }
        if (!state_.transition(Role::syncing, Role::active)) return Outcome::stopped;
        // The console is ours before the guest runs: a byte it prints at once must reach the
        // sink, not a buffer the rebase would clear (that lost the head of the first line).
        console_.rebase(console_.primary_released());
        console_.take_over(sink_);
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
    if (const auto* enter = std::get_if<protocol::EnterColo>(&message)) {
        if (!migration_committed_) throw Error("secondary: enter-colo before migration-commit");
        if (enter->epoch != 0) throw Error("secondary: enter-colo with epoch " + std::to_string(enter->epoch) + ", expected 0");
        enter_colo(enter->epoch);
        return Outcome::running;
    }
    if (const auto* failure = std::get_if<protocol::Failure>(&message)) {
        throw Error("secondary: the sender failed during migration: " + failure->message);
    }
    throw Error(std::string("secondary: unexpected ") + protocol::message_name(message) + " during migration");
}

void Secondary::enter_colo(std::uint64_t epoch) {
    const auto paused_at = Clock::now();
    std::uint64_t copied = 0;
    if (!cache_) {
        // No cache backup: the cache is filled now, all of it, while the SVM cannot run.
        cache_.emplace(svm_.memory().regions());
        copied = cache_->fill_from(svm_.memory(), kFlushBatchPages);
    }
    // The SVM's own writes matter only from here on: they are what a checkpoint must revert.
    svm_.start_dirty_log();
    received_.clear_all();
    console_.rebase(console_.primary_released());
    epoch_ = epoch;
    if (!state_.transition(Role::syncing, Role::protecting)) return;
    if (config_.mode == ProtectionMode::colo) svm_.resume();
    {
        std::lock_guard lock(stats_mutex_);
        stats_.pages_copied_entering_colo = copied;
        stats_.enter_colo_pause = elapsed_since(paused_at);
    }
    send(protocol::CheckpointLoaded{epoch});
}

Secondary::Outcome Secondary::handle_protection(const protocol::Message& message) {
    if (const auto* batch = std::get_if<protocol::PageBatch>(&message)) {
        check_page_batch(*batch, cache_->regions());
        cache_->store(batch->frames, batch->data);
        mark_frames(*batch, received_);
        std::lock_guard lock(stats_mutex_);
        if (staged_) {
            staged_->pages += batch->frames.size();
            stats_.pages_received_checkpoint += batch->frames.size();
        } else {
            stats_.pages_received_streamed += batch->frames.size();
        }
        return Outcome::running;
    }
    if (const auto* begin = std::get_if<protocol::CheckpointBegin>(&message)) {
        if (staged_) throw Error("secondary: checkpoint-begin inside checkpoint " + std::to_string(staged_->epoch));
        if (begin->epoch != epoch_ + 1) {
            throw Error("secondary: checkpoint-begin for epoch " + std::to_string(begin->epoch) + ", expected " +
                        std::to_string(epoch_ + 1));
        }
        staged_ = Staged{begin->epoch, 0, {}, std::nullopt, {}};
        return Outcome::running;
    }
    if (const auto* state = std::get_if<protocol::DeviceState>(&message)) {
        if (!staged_) throw Error("secondary: device-state outside a checkpoint");
        staged_->state.push_back(state->state);
        return Outcome::running;
    }
    if (const auto* output = std::get_if<protocol::CheckpointOutput>(&message)) {
        if (!staged_) throw Error("secondary: checkpoint-output outside a checkpoint");
        if (!staged_->output_offset) {
            // The primary released nothing while the checkpoint was taken, so its first byte is
            // where the primary's release stood: never before what it reported released.
            if (output->offset < console_.primary_released()) {
                throw Error("secondary: checkpoint-output starts at console offset " + std::to_string(output->offset) +
                            ", before " + std::to_string(console_.primary_released()) +
                            " which the primary reported released");
            }
            staged_->output_offset = output->offset;
        } else if (output->offset != *staged_->output_offset + staged_->output.size()) {
            throw Error("secondary: checkpoint-output at console offset " + std::to_string(output->offset) +
                        " does not continue the previous piece (expected " +
                        std::to_string(*staged_->output_offset + staged_->output.size()) + ")");
        }
        staged_->output.insert(staged_->output.end(), output->bytes.begin(), output->bytes.end());
        return Outcome::running;
    }
    if (const auto* end = std::get_if<protocol::CheckpointEnd>(&message)) {
        if (!staged_) throw Error("secondary: checkpoint-end without checkpoint-begin");
        if (!staged_->output_offset) {
            throw Error("secondary: checkpoint-end for epoch " + std::to_string(end->epoch) +
                        " without checkpoint-output (the PVM's held console bytes)");
        }
        if (const std::uint64_t output_end = *staged_->output_offset + staged_->output.size();
            output_end != end->console_offset) {
            throw Error("secondary: checkpoint-output ends at console offset " + std::to_string(output_end) +
                        ", checkpoint-end says " + std::to_string(end->console_offset));
        }
        if (end->epoch != staged_->epoch || end->pages != staged_->pages ||
            end->state_records != staged_->state.size()) {
            throw Error("secondary: checkpoint-end for epoch " + std::to_string(end->epoch) + " claims " +
                        std::to_string(end->pages) + " pages and " + std::to_string(end->state_records) +
                        " state records; epoch " + std::to_string(staged_->epoch) + " brought " +
                        std::to_string(staged_->pages) + " and " + std::to_string(staged_->state.size()));
        }
        apply_checkpoint(*end);
        return Outcome::running;
    }
    if (const auto* goodbye = std::get_if<protocol::Goodbye>(&message)) {
        return stop_protection("the primary ended protection: " + goodbye->reason);
    }
    if (const auto* failure = std::get_if<protocol::Failure>(&message)) {
        return stop_protection("the primary gave up on this secondary: " + failure->message);
    }
    throw Error(std::string("secondary: unexpected ") + protocol::message_name(message) + " while protecting");
}

void Secondary::apply_checkpoint(const protocol::CheckpointEnd& end) {
    const auto paused_at = Clock::now();
    svm_.pause();
    DirtyBitmap svm_dirty(received_.size());
    svm_.harvest_dirty(svm_dirty);
    const std::uint64_t reverted = svm_dirty.count();
    DirtyBitmap flush = received_;
    flush |= svm_dirty;
    const std::uint64_t flushed = cache_->flush_to(svm_.memory(), flush, kFlushBatchPages);
    svm_.restore_state(staged_->state);
    // The SVM runs from the PVM's state now, so its console continues where the PVM's was; the
    // PVM's bytes before that are kept until the primary reports them released.
    console_.checkpoint_applied(*staged_->output_offset, staged_->output);
    received_.clear_all();
    epoch_ = end.epoch;
    staged_.reset();
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
            if (const auto* released = std::get_if<protocol::ReleasedOutput>(&*message)) {
                console_.primary_released(released->offset);
            } else if (std::holds_alternative<protocol::Goodbye>(*message) ||
                       std::holds_alternative<protocol::Failure>(*message)) {
                // A primary that said goodbye (or gave up on us) and closed is alive: no takeover.
                return handle_protection(*message);
            }
        }
    } catch (...) {
        // The end of what the link delivered.
    }
    return std::nullopt;
}

Secondary::Outcome Secondary::fail_over(const std::string& reason) {
    if (!state_.transition(Role::protecting, Role::failing_over)) {
        return state_.role() == Role::active ? Outcome::failed_over : Outcome::stopped;
    }
    config_.log(LogLevel::notice, "colo secondary: primary lost (" + reason + "); guest " + svm_.name() +
                                      " takes over from checkpoint " + std::to_string(epoch_.load()));
    channel_.close();
    // A partial checkpoint only ever reached the cache; the SVM is the last committed checkpoint
    // (remus) or runs on from it (colo).
    staged_.reset();
    svm_.stop_dirty_log();
    console_.take_over(sink_);
    svm_.resume();
    (void)state_.transition(Role::failing_over, Role::active);
    return Outcome::failed_over;
}

Secondary::Outcome Secondary::stop_protection(const std::string& reason) {
    const Role was = state_.role();
    if (was != Role::syncing && was != Role::protecting) return Outcome::stopped;
    if (!state_.transition(was, Role::stopped)) return Outcome::stopped;
    try {
        if (was == Role::protecting) send(protocol::Goodbye{reason});
    } catch (const Error&) {
        // The link is gone already.
    }
    channel_.close();
    svm_.pause();
    config_.log(LogLevel::notice, "colo secondary: stopped (" + reason + "); the SVM of " + svm_.name() +
                                      " is no longer needed");
    return Outcome::stopped;
}

SecondaryStats Secondary::status() const {
    std::lock_guard lock(stats_mutex_);
    SecondaryStats out = stats_;
    const Role role = state_.role();
    out.state = role == Role::protecting ? "protecting" : to_string(role);
    out.epoch = epoch_;
    out.pause_p50 = pauses_.percentile(50);
    out.pause_p99 = pauses_.percentile(99);
    out.pause_max = pauses_.max();
    out.primary_released = console_.primary_released();
    return out;
}

}  // namespace colo
