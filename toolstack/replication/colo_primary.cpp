#include "toolstack/replication/colo_primary.hpp"

#include <algorithm>
#include <variant>

#include "toolstack/protocol/record_types.hpp"
#include "toolstack/replication/last_words.hpp"
#include "toolstack/replication/message_log.hpp"
#include "toolstack/replication/pipeline_clock.hpp"
#include "toolstack/replication/stream_schedule.hpp"
#include "toolstack/replication/page_batches.hpp"

namespace colo {

namespace {

constexpr const char* kWho = "primary";
// Longest time the loop blocks in receive() before it looks at divergence, requests and stop.
constexpr Millis kMaxWait{10};
// Checkpoint staging made ready before the first checkpoint: 4 batches of 256 pages (4 MiB), as
// much as a checkpoint at 10k dirty pages/s carries with room to spare; more grow on demand.
constexpr std::size_t kStagingBatches = 4;

}  // namespace

Primary::Primary(Backend& pvm, Channel& channel, PrimaryConfig config, OutputSink sink)
    : pvm_(pvm),
      channel_(channel),
      config_(std::move(config)),
      gate_(std::move(sink), config_.console_offset, OutputGate::Matching::on_pipeline_thread),
      monitor_(config_.link, Clock::now()),
      precopy_(pvm, channel, config_.precopy, config_.log, kWho),
      pending_(pvm.memory().frame_limit()) {
    if (config_.checkpoint_interval.count() <= 0 || config_.max_checkpoint_interval.count() <= 0) {
        throw Error("primary: checkpoint intervals must be positive");
    }
    if (config_.stream && config_.stream_period.count() <= 0) {
        throw Error("primary: the stream period must be positive");
    }
    stats_.mode = to_string(config_.mode);
    pvm_.set_console_sink([this](std::span<const std::byte> bytes) { gate_.pvm_output(bytes); });
}

Primary::~Primary() {
    try {
        pvm_.set_console_sink({});
    } catch (...) {
        // A destructor never throws; the backend is going away with us anyway.
    }
}

Millis Primary::checkpoint_period() const {
    return config_.mode == ProtectionMode::remus ? config_.checkpoint_interval : config_.max_checkpoint_interval;
}

bool Primary::checkpoint_due(Clock::time_point now) const {
    return checkpoint_requested_ || gate_.diverged() || now >= last_checkpoint_ + checkpoint_period();
}

void Primary::send(const protocol::Message& message) {
    log_sent(config_.log, kWho, message);
    channel_.send(message);
}

bool Primary::try_send(const protocol::Message& message) {
    try {
        send(message);
        return true;
    } catch (const Error& e) {
        lose_link(e);
        return false;
    }
}

void Primary::lose_link(const Error& error) {
    if (dynamic_cast<const LinkDown*>(&error)) {
        if (auto words = last_words(channel_)) {
            handle(*words);  // Failure or Goodbye: loses the secondary with its own reason
            return;
        }
    }
    lose_secondary(error.what());
}

void Primary::lose_secondary(const std::string& reason) {
    if (!state_.transition(Role::protecting, Role::unprotected) &&
        !state_.transition(Role::syncing, Role::unprotected)) {
        return;  // already lost or stopped: someone else made the change
    }
    config_.log(LogLevel::notice, "colo primary: secondary lost (" + reason + "); guest " + pvm_.name() +
                                      " continues UNPROTECTED");
    in_flight_.reset();
    gate_.checkpoint_abandoned();
    gate_.set_mode(OutputGate::Mode::unprotected);
    // Tell a secondary that is still listening not to take over: the PVM is alive.
    try {
        channel_.send(protocol::Failure{"primary dropped the secondary: " + reason});
    } catch (const Error&) {
        // The link is gone; there is nobody to tell.
    }
    channel_.close();
    try {
        pvm_.stop_dirty_log();
        if (pvm_.paused()) pvm_.resume();
    } catch (const Error& e) {
        config_.log(LogLevel::notice, std::string("colo primary: after losing the secondary: ") + e.what());
    }
    std::lock_guard lock(stats_mutex_);
    stats_.protection_lost_reason = reason;
}

void Primary::handle(const protocol::Message& message) {
    log_received(config_.log, kWho, message);
    if (std::holds_alternative<protocol::Heartbeat>(message)) return;
    if (const auto* out = std::get_if<protocol::SecondaryOutput>(&message)) {
        if (config_.mode == ProtectionMode::colo && !gate_.svm_output(out->offset, out->bytes)) {
            config_.log(LogLevel::debug, "primary: console output diverged; checkpoint now");
        }
        return;
    }
    if (const auto* loaded = std::get_if<protocol::CheckpointLoaded>(&message)) {
        if (!in_flight_ || in_flight_->loaded || loaded->epoch != in_flight_->epoch) {
            throw Error("primary: unexpected checkpoint-loaded for epoch " + std::to_string(loaded->epoch) +
                        (in_flight_ ? " (expected " + std::to_string(in_flight_->epoch) + ")"
                                    : std::string(" (no checkpoint in flight)")));
        }
        in_flight_->loaded = true;
        return;
    }
    if (const auto* failure = std::get_if<protocol::Failure>(&message)) {
        lose_secondary("the secondary failed: " + failure->message);
        return;
    }
    if (const auto* goodbye = std::get_if<protocol::Goodbye>(&message)) {
        lose_secondary("the secondary left: " + goodbye->reason);
        return;
    }
    throw Error(std::string("primary: unexpected ") + protocol::message_name(message) + " from the secondary");
}

bool Primary::pump(Clock::time_point until, const std::function<bool()>& done) {
    while (state_.role() == Role::syncing || state_.role() == Role::protecting) {
        if (done && done()) return true;
        auto now = Clock::now();
        if (monitor_.heartbeat_due(now)) {
            if (!try_send(protocol::Heartbeat{monitor_.heartbeat_sent(now), pipeline_now_ns()})) return false;
        }
        const auto wait = std::min({until, monitor_.next_heartbeat(), monitor_.death_deadline(), now + kMaxWait});
        std::optional<protocol::Message> message;
        try {
            message = channel_.receive(wait);
            if (message) {
                monitor_.heard(Clock::now());
                handle(*message);
            }
        } catch (const Error& e) {
            lose_link(e);
            return false;
        }
        // Death is judged only after looking at what arrived: a long send or streaming pass, when
        // nobody listened, must not count the peer's queued heartbeats as silence.
        if (!message && monitor_.dead(Clock::now())) {
            lose_secondary("no message from it for " + std::to_string(config_.link.peer_timeout.count()) + " ms");
            return false;
        }
        if (state_.role() == Role::protecting) {
            // PVM bytes that arrived on the console thread are released here, never there, so
            // that the report below follows the release with nothing sent in between.
            (void)gate_.release_matched();
            if (!report_released()) return false;
        }
        if (!message && Clock::now() >= until) return done ? done() : true;
    }
    return false;
}

bool Primary::report_released() {
    const std::uint64_t released = gate_.released();
    if (released == released_reported_) return true;
    released_reported_ = released;
    return try_send(protocol::ReleasedOutput{released});
}

void Primary::poll(Clock::time_point until) { pump(until, {}); }

void Primary::send_initial_sync() {
    if (state_.role() != Role::syncing) throw Error("primary: initial sync runs once, before protection");
    try {
        precopy_.send_live();
        sync_paused_at_ = Clock::now();
        precopy_.send_final();
    } catch (const Error& e) {
        lose_link(e);
        return;
    }
    // Paused: everything produced so far was released unprotected; hold from here on.
    gate_.set_mode(config_.mode == ProtectionMode::colo ? OutputGate::Mode::colo : OutputGate::Mode::remus);
    const std::uint64_t offset = gate_.produced();
    pending_ = precopy_.pending();  // empty unless a send failed
    in_flight_ = InFlight{0, offset, false};
    gate_.checkpoint_started();
    {
        std::lock_guard lock(stats_mutex_);
        stats_.pages_migrated = precopy_.pages_sent();
        stats_.bytes_sent += precopy_.bytes_sent();
        stats_.migration_rounds = precopy_.passes();
        stats_.sync_throttle_percent = precopy_.throttle_percent();
    }
    released_reported_ = offset;
    if (!try_send(protocol::ReleasedOutput{offset}) || !try_send(protocol::EnterColo{0})) return;
    pvm_.resume();
    {
        std::lock_guard lock(stats_mutex_);
        stats_.enter_colo_pause = elapsed_since(sync_paused_at_);
    }
    staging_.prepare(kStagingBatches, config_.precopy.batch_pages);
}

bool Primary::await_loaded() {
    // We were busy sending, not listening: silence so far says nothing about the peer.
    monitor_.heard(Clock::now());
    const auto loaded = [&] { return in_flight_ && in_flight_->loaded; };
    // The PVM runs on while the secondary loads the checkpoint, so streaming goes on meanwhile:
    // otherwise everything dirtied during a slow acknowledgement would wait for the next paused
    // section. The secondary handles messages in order, so these pages reach its cache after it
    // has flushed the checkpoint, as pages of the next epoch. (The next checkpoint is at least a
    // period after the acknowledgement, so no pass here is one a checkpoint would make useless.)
    const bool stream = config_.stream && state_.role() == Role::protecting &&
                        checkpoint_period() > config_.stream_period;
    for (;;) {
        const auto until = stream ? last_stream_ + config_.stream_period : Clock::time_point::max();
        if (pump(until, loaded)) break;
        if (state_.role() != Role::protecting) return false;
        stream_pass();
    }
    const InFlight done = *in_flight_;
    in_flight_.reset();
    epoch_ = done.epoch;
    gate_.checkpoint_committed(done.console_offset);
    last_checkpoint_ = Clock::now();
    if (!report_released()) return false;
    if (done.epoch > 0) pvm_.checkpoint_committed(done.epoch);
    return true;
}

bool Primary::await_colo_entry() {
    if (!in_flight_ || in_flight_->epoch != 0) return false;
    if (!await_loaded()) return false;
    if (!state_.transition(Role::syncing, Role::protecting)) return false;
    config_.log(LogLevel::notice, "colo primary: guest " + pvm_.name() + " is protected (" +
                                      to_string(config_.mode) + ")");
    last_stream_ = Clock::now();
    std::lock_guard lock(stats_mutex_);
    stats_.time_to_enter_colo = elapsed_since(sync_paused_at_);
    return true;
}

bool Primary::protect() {
    send_initial_sync();
    return await_colo_entry();
}

void Primary::send_checkpoint() {
    if (state_.role() != Role::protecting) throw Error("primary: checkpoint while not protecting");
    if (in_flight_) throw Error("primary: a checkpoint is already in flight");
    checkpoint_requested_ = false;
    const bool diverged = gate_.diverged();
    const std::uint64_t epoch = epoch_ + 1;

    // Paused section: copy everything the checkpoint needs into local buffers.
    const auto paused_at = Clock::now();
    pvm_.pause();
    gate_.checkpoint_started();
    // Nothing is released until this checkpoint commits, so the bytes held now are exactly the
    // ones the primary may release on commit: the secondary gets them to release in its place.
    OutputGate::Held held = gate_.held();
    const std::uint64_t console_offset = held.offset + held.bytes.size();
    std::vector<StateRecord> state;
    DirtyBitmap frames;
    try {
        pvm_.harvest_dirty(pending_);
        frames = pending_;
        staging_.copy(pvm_.memory(), frames, config_.precopy.batch_pages);
        pending_.clear_all();
        state = pvm_.save_state();
    } catch (...) {
        gate_.checkpoint_abandoned();
        pvm_.resume();
        throw;
    }
    Micros pause{0};
    if (config_.early_resume) {
        pvm_.resume();
        pause = elapsed_since(paused_at);
    }

    std::uint64_t pages = 0, bytes = 0;
    bool sent = try_send(protocol::CheckpointBegin{epoch});
    for (std::size_t i = 0; i < staging_.size() && sent; ++i) {
        const auto& batch = std::get<protocol::PageBatch>(staging_[i]);
        pages += batch.frames.size();
        bytes += batch.data.size();
        sent = try_send(staging_[i]);
    }
    for (auto& record : state) {
        if (!sent) break;
        bytes += record.data.size();
        sent = try_send(protocol::DeviceState{std::move(record)});
    }
    // One piece at least (empty when nothing is held): the secondary always learns where the
    // held bytes start, which is also how far the primary had released.
    for (std::size_t done = 0, count = 0; sent; done += count) {
        count = std::min<std::size_t>(held.bytes.size() - done, protocol::kMaxCheckpointOutputBytes);
        protocol::CheckpointOutput piece;
        piece.offset = held.offset + done;
        piece.bytes.assign(held.bytes.begin() + static_cast<std::ptrdiff_t>(done),
                           held.bytes.begin() + static_cast<std::ptrdiff_t>(done + count));
        bytes += count;
        sent = try_send(std::move(piece));
        if (done + count == held.bytes.size()) break;
    }
    if (sent) sent = try_send(protocol::CheckpointEnd{epoch, pages, static_cast<std::uint32_t>(state.size()), console_offset});
    if (!config_.early_resume) {
        pvm_.resume();
        pause = elapsed_since(paused_at);
    }
    if (!sent) {
        pending_ |= frames;  // undelivered: keep them for whoever sends next
        return;
    }
    in_flight_ = InFlight{epoch, console_offset, false};
    std::lock_guard lock(stats_mutex_);
    pauses_.add(pause);
    stats_.pages_sent_paused += pages;
    stats_.bytes_sent += bytes;
    if (diverged) ++stats_.divergence_checkpoints;
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
    send_checkpoint();
    return await_checkpoint();
}

std::uint64_t Primary::stream_pass() {
    if (!config_.stream || state_.role() != Role::protecting) return 0;
    last_stream_ = Clock::now();
    pvm_.harvest_dirty(pending_);
    if (pending_.count() < std::max<std::uint64_t>(config_.stream_min_pages, 1)) return 0;
    // Pages are read while the PVM runs: a page written during the copy is in the log again and
    // goes out with the next pass or checkpoint.
    const DirtyBitmap to_send = pending_;
    pending_.clear_all();
    std::uint64_t pages = 0, bytes = 0;
    try {
        for_each_page_batch(pvm_.memory(), to_send, config_.precopy.batch_pages, [&](const protocol::Message& message) {
            send(message);
            const auto& batch = std::get<protocol::PageBatch>(message);
            pages += batch.frames.size();
            bytes += batch.data.size();
        });
    } catch (const Error& e) {
        // A batch the link took may still be lost with it: the whole pass counts as undelivered.
        pending_ |= to_send;
        lose_link(e);
        return 0;
    }
    std::lock_guard lock(stats_mutex_);
    stats_.pages_streamed += pages;
    stats_.bytes_sent += bytes;
    return pages;
}

void Primary::run(std::stop_token stop) {
    if (state_.role() == Role::syncing && !protect()) return;
    while (state_.role() == Role::protecting) {
        if (stop.stop_requested()) {
            this->stop("stop requested");
            return;
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
        pump(until, [&] { return stop.stop_requested() || checkpoint_requested_ || gate_.diverged(); });
    }
}

void Primary::stop(const std::string& reason) {
    const Role was = state_.role();
    if (!state_.transition(was, Role::stopped)) return;
    if (was == Role::syncing || was == Role::protecting) {
        try {
            send(protocol::Goodbye{reason});
        } catch (const Error&) {
            // Nobody is listening; stopping anyway.
        }
        channel_.close();
    }
    gate_.checkpoint_abandoned();
    gate_.set_mode(OutputGate::Mode::unprotected);
    pvm_.stop_dirty_log();
    if (pvm_.paused()) pvm_.resume();
    config_.log(LogLevel::notice, "colo primary: protection of guest " + pvm_.name() + " stopped (" + reason + ")");
}

PrimaryStats Primary::status() const {
    std::lock_guard lock(stats_mutex_);
    PrimaryStats out = stats_;
    const Role role = state_.role();
    out.state = role == Role::protecting ? "protected" : to_string(role);
    out.epoch = epoch_;
    out.checkpoints = stats_.checkpoints;
    out.pause_p50 = pauses_.percentile(50);
    out.pause_p99 = pauses_.percentile(99);
    out.pause_max = pauses_.max();
    out.output_released = gate_.released();
    return out;
}

}  // namespace colo
