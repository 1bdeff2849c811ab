#include "toolstack/replication/precopy_sender.hpp"

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
        backend_.memory(), to_send, config_.batch_pages, [&](protocol::PageBatch&& batch) {
            send(batch);
            for (const Pfn pfn : batch.frames) pending_.clear(pfn);
            bytes_sent_ += batch.data.size();
        });
    pages_sent_ += sent;
    return sent;
}

void PrecopySender::send_live() {
    backend_.start_dirty_log();
    pending_ = all_frames(backend_.memory());
    send_pending();
    ++passes_;
    for (unsigned round = 0; round < config_.max_rounds; ++round) {
        backend_.harvest_dirty(pending_);
        if (pending_.count() <= config_.stop_threshold_pages) break;
        send_pending();
        ++passes_;
    }
}

void PrecopySender::send_final() {
    backend_.pause();
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
