#include "toolstack/replication/precopy_sender.hpp"

#include <variant>
#include <algorithm>
#include <memory>
#include <string>

#include "toolstack/replication/message_log.hpp"
#include "toolstack/replication/page_batches.hpp"

namespace colo {

namespace {
// The codec refuses larger page-batch records (message_codec.hpp).
constexpr std::uint64_t kMaxBatchPages = 1024;
}  // namespace

void check_precopy_config(const PrecopyConfig& config) {
    if (config.batch_pages == 0 || config.batch_pages > kMaxBatchPages) {
        throw Error("replication: batch size " + std::to_string(config.batch_pages) +
                    " pages is out of range (1.." + std::to_string(kMaxBatchPages) + ")");
    }
    if (config.auto_converge && (config.throttle_initial == 0 || config.throttle_max > 99 ||
                                 config.throttle_initial > config.throttle_max)) {
        throw Error("replication: auto-converge throttle " + std::to_string(config.throttle_initial) + ".." +
                    std::to_string(config.throttle_max) + "% is out of range (1..99, initial <= max)");
    }
}

PrecopySender::PrecopySender(Backend& backend, Channel& channel, PrecopyConfig config, LogFn log,
                             const char* who)
    : backend_(backend),
      channel_(channel),
      config_(config),
      log_(std::move(log)),
      who_(who),
      pending_(backend.memory().frame_limit()) {
    check_precopy_config(config_);
}

void PrecopySender::send(const protocol::Message& message) {
    log_sent(log_, who_, message);
    channel_.send(message);
}

std::uint64_t PrecopySender::send_pending() {
    // A copy to walk, because the walk clears bits in pending_ as batches go out.
    const DirtyBitmap to_send = pending_;
    const std::uint64_t sent = for_each_page_batch(
        backend_.memory(), to_send, config_.batch_pages, [&](const protocol::Message& message) {
            send(message);
            const auto& batch = std::get<protocol::PageBatch>(message);
            for (const Pfn pfn : batch.frames) pending_.clear(pfn);
            bytes_sent_ += batch.data.size();
            pages_sent_ += batch.frames.size();  // per batch: `status` shows the progress
            if (between_) between_();
        });
    return sent;
}

void PrecopySender::send_live() {
    backend_.start_dirty_log();
    pending_ = all_frames(backend_.memory());
    std::uint64_t sent = send_pending();
    ++passes_;
    throttle_ = std::make_unique<GuestThrottle>(backend_);
    GuestThrottle& throttle = *throttle_;
    try {
        unsigned slow_rounds = 0;
        for (unsigned round = 0; round < config_.max_rounds; ++round) {
            backend_.harvest_dirty(pending_);
            const std::uint64_t dirtied = pending_.count();
            if (dirtied <= config_.stop_threshold_pages) break;
            // The pages dirtied while the last pass was sent against the pages that pass carried: at
            // more than half, the next rounds shrink too slowly (or not at all) to end on their own.
            if (config_.auto_converge && dirtied * 2 > sent && ++slow_rounds == 2) {
                slow_rounds = 0;
                const unsigned next = throttle.percent() == 0 ? config_.throttle_initial
                                                              : throttle.percent() + config_.throttle_step;
                throttle.set_percent(std::min(next, config_.throttle_max));
                if (throttle.percent() > throttle_percent_) {
                    throttle_percent_ = throttle.percent();
                    if (log_) log_(LogLevel::debug, std::string(who_) + ": auto-converge: guest throttled to " +
                                              std::to_string(throttle_percent_) + "%");
                }
            } else if (dirtied * 2 <= sent) {
                slow_rounds = 0;
            }
            sent = send_pending();
            ++passes_;
        }
    } catch (...) {
        throttle_.reset();  // the guest runs freely again; the send's error is the one to report
        throw;
    }
}

void PrecopySender::send_final(const std::function<void()>& paused) {
    if (throttle_) {
        const auto throttle = std::move(throttle_);  // stopped when this ends, even by an error
        throttle->pause_guest();
        throttle->stop();  // the guest stays paused: the pipeline holds it
    } else {
        backend_.pause();
    }
    if (paused) paused();
    backend_.harvest_dirty(pending_);
    pages_final_ = send_pending();
    ++passes_;
    for (auto& record : backend_.save_state()) {
        bytes_sent_ += record.data.size();
        send(protocol::DeviceState{std::move(record)});
    }
    send(protocol::MigrationCommit{pages_sent_});
}

}  // namespace colo
