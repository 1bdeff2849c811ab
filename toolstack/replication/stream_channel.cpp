#include "toolstack/replication/stream_channel.hpp"

#include <variant>

#include "toolstack/protocol/message_codec.hpp"
#include "toolstack/replication/pipeline_clock.hpp"

namespace colo {

namespace {

// What a queued message costs in memory, roughly: its payload.
std::size_t payload_of(const protocol::Message& message) {
    if (const auto* batch = std::get_if<protocol::PageBatch>(&message)) return batch->data.size();
    if (const auto* state = std::get_if<protocol::DeviceState>(&message)) return state->state.data.size();
    if (const auto* out = std::get_if<protocol::SecondaryOutput>(&message)) return out->bytes.size();
    if (const auto* out = std::get_if<protocol::CheckpointOutput>(&message)) return out->bytes.size();
    return 0;
}

}  // namespace

bool is_link_failure(const Error& error) {
    // A SystemError from the transport is a failed send/recv/poll on the connection: the link,
    // not the bytes. StreamStopped is the stream ending or going silent (byte_stream.hpp).
    return dynamic_cast<const LinkDown*>(&error) != nullptr || dynamic_cast<const SystemError*>(&error) != nullptr ||
           dynamic_cast<const protocol::StreamStopped*>(&error) != nullptr;
}

StreamChannel::StreamChannel(protocol::ByteSource& source, protocol::ByteSink& sink,
                             std::optional<protocol::StreamHeader> peer_header, std::function<void()> interrupt)
    : source_(source), sink_(sink), peer_header_(std::move(peer_header)), interrupt_(std::move(interrupt)) {
    reader_ = std::thread([this] { read_loop(); });
}

StreamChannel::~StreamChannel() {
    close();
    if (reader_.joinable()) reader_.join();
    if (keepalive_.joinable()) keepalive_.join();
}

void StreamChannel::start_keepalive(std::chrono::milliseconds period) {
    keepalive_ = std::thread([this, period] {
        std::uint64_t sequence = std::uint64_t{1} << 63;  // apart from the pipeline's own numbering
        std::unique_lock lock(mutex_);
        while (!closed_ && !send_failed_) {
            keepalive_wakeup_.wait_for(lock, period / 2);
            if (closed_ || send_failed_) return;
            lock.unlock();
            bool due = false;
            {
                std::lock_guard send_lock(send_mutex_);
                due = Clock::now() - last_send_ >= period;
            }
            if (due) {
                try {
                    send(protocol::Heartbeat{sequence++, pipeline_now_ns()});
                } catch (const Error&) {
                    return;  // the link is gone; the pipeline finds out on its own send or receive
                }
            }
            lock.lock();
        }
    });
}

void StreamChannel::read_loop() {
    for (;;) {
        try {
            protocol::Message message =
                peer_header_ ? protocol::read_message(source_, *peer_header_) : protocol::read_message(source_);
            std::unique_lock lock(mutex_);
            // Wait for room; one message may always be queued, whatever its size.
            arrived_.wait(lock, [&] {
                return closed_ || queue_.empty() ||
                       (queued_bytes_ < kMaxQueuedBytes && queue_.size() < kMaxQueuedMessages);
            });
            if (closed_) return;
            queued_bytes_ += payload_of(message);
            queue_.push_back(std::move(message));
            arrived_.notify_all();
        } catch (const Error& e) {
            const bool silent = dynamic_cast<const protocol::PeerSilent*>(&e) != nullptr;
            {
                std::lock_guard lock(mutex_);
                read_error_ = is_link_failure(e) || closed_
                                  ? std::make_exception_ptr(LinkDown(std::string("link: ") + e.what()))
                                  : std::make_exception_ptr(Error(std::string("bad message from the peer: ") + e.what()));
                peer_silent_ = silent;
                arrived_.notify_all();
            }
            // A peer silent for the whole timeout is gone, whatever the writing side thinks: its
            // timeout is longer (a live but busy peer may take a while to drain our backlog), so a
            // send blocked on a cut link would hold the pipeline, still "protected", for that long.
            // Ending the connection here makes such a send fail now, within the peer timeout.
            if (silent && interrupt_) {
                try {
                    interrupt_();
                } catch (...) {
                    // The send then fails at its own timeout.
                }
            }
            return;
        } catch (...) {
            std::lock_guard lock(mutex_);
            read_error_ = std::current_exception();
            arrived_.notify_all();
            return;
        }
    }
}

void StreamChannel::send(const protocol::Message& message) {
    {
        std::lock_guard lock(mutex_);
        if (closed_ || send_failed_) throw LinkDown("link: the channel is closed");
    }
    std::lock_guard send_lock(send_mutex_);
    try {
        protocol::write_message(sink_, message, {compress_pages_.load(), &page_bytes_in_, &page_bytes_out_});
        sink_.flush();
        last_send_ = Clock::now();
    } catch (const Error& e) {
        if (!is_link_failure(e)) throw;  // we were about to send something invalid: our bug, not the link
        std::lock_guard lock(mutex_);
        send_failed_ = true;  // half a record may be out: nothing more may follow it
        // The reader ended the connection because the peer went silent: that is the reason, not
        // the broken pipe it left this send with.
        if (peer_silent_) std::rethrow_exception(read_error_);
        throw LinkDown(std::string("link: ") + e.what());
    }
}

std::optional<protocol::Message> StreamChannel::receive(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    arrived_.wait_until(lock, deadline, [&] { return !queue_.empty() || read_error_ || closed_ || woken_; });
    woken_ = false;  // the caller polls its devices after every return
    if (!queue_.empty()) {
        protocol::Message message = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= payload_of(message);
        arrived_.notify_all();  // the reader may be waiting for room
        return message;
    }
    if (closed_) throw LinkDown("link: the channel is closed");
    if (read_error_) std::rethrow_exception(read_error_);
    return std::nullopt;
}

void StreamChannel::wake() noexcept {
    {
        std::lock_guard lock(mutex_);
        woken_ = true;
    }
    arrived_.notify_all();
}

void StreamChannel::close() noexcept {
    {
        std::lock_guard lock(mutex_);
        if (closed_) return;
        closed_ = true;
        arrived_.notify_all();
        keepalive_wakeup_.notify_all();
    }
    if (interrupt_) {
        try {
            interrupt_();
        } catch (...) {
            // close() never throws; the reader ends at the transport's timeout instead.
        }
    }
}

}  // namespace colo
