// A Channel over a byte stream (a TCP connection), speaking the codec of
// toolstack/protocol/message_codec.hpp. The stream header is not its business: the caller writes
// and reads it before building the channel, and passes the peer's header so that incoming
// page-batch frames are checked against the peer's memory layout.
//
// A reader thread reads whole messages from `source` into a queue, so receive() can wait with a
// deadline although ByteSource::read_exact cannot. send() writes on the caller's thread and
// flushes after every message (the peer must see a checkpoint's end at once). So `source` and
// `sink` are used from two threads at the same time: for TCP they must be two objects, a
// TcpConnection and its duplicate().
//
// The queue is bounded (kMaxQueuedBytes of page and output payload, and kMaxQueuedMessages
// messages whatever their payload): when the pipeline falls behind, the reader stops reading and
// TCP's flow control slows the peer down, instead of this process buffering a whole guest's
// memory. The count bound is for messages that carry no payload (heartbeats, empty device state
// or output records): without it a peer could queue them until this process runs out of memory.
//
// Errors: a stream that ends, goes silent past the transport's timeout or fails in the kernel is
// LinkDown (the peer is gone); bytes that are not a valid message are colo::Error naming what is
// wrong (the peer may be alive but cannot be trusted). Silence is judged by the reader, and it
// also ends a send blocked at that moment (through `interrupt`): a cut link is lost within the
// reading timeout even while the pipeline is stuck writing into it (man colo-replicate(7)).
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "toolstack/protocol/byte_stream.hpp"
#include "toolstack/protocol/messages.hpp"
#include "toolstack/replication/channel.hpp"

namespace colo {

class StreamChannel final : public Channel {
public:
    static constexpr std::size_t kMaxQueuedBytes = 64 * 1024 * 1024;
    // Far more than a checkpoint holds (a page batch carries up to 1024 pages), so only a peer
    // that floods empty records ever reaches it.
    static constexpr std::size_t kMaxQueuedMessages = 64 * 1024;

    // `interrupt` is called by close() to make a read in progress return (for TCP:
    // TcpConnection::shutdown_both()); without it the reader ends at the transport's own timeout.
    StreamChannel(protocol::ByteSource& source, protocol::ByteSink& sink,
                  std::optional<protocol::StreamHeader> peer_header, std::function<void()> interrupt = {});
    ~StreamChannel() override;
    StreamChannel(const StreamChannel&) = delete;
    StreamChannel& operator=(const StreamChannel&) = delete;

    void send(const protocol::Message& message) override;
    void set_compress_pages(bool on) override { compress_pages_ = on; }
    [[nodiscard]] PageCompression page_compression() const override { return {page_bytes_in_.load(), page_bytes_out_.load()}; }

    // Sends a Heartbeat whenever nothing was sent for `period`, from a thread of its own. The
    // pipeline's thread may be busy for long stretches (applying a large backlog of pages on a
    // loaded host) without its process being dead; the keepalive makes the peer judge liveness
    // by the process, not by how quickly the pipeline gets round to its own heartbeats.
    void start_keepalive(std::chrono::milliseconds period);
    [[nodiscard]] std::optional<protocol::Message> receive(Clock::time_point deadline) override;
    void close() noexcept override;
    void wake() noexcept override;

private:
    std::atomic<bool> compress_pages_{false};
    std::atomic<std::uint64_t> page_bytes_in_{0}, page_bytes_out_{0};
    void read_loop();

    protocol::ByteSource& source_;
    protocol::ByteSink& sink_;
    std::optional<protocol::StreamHeader> peer_header_;
    std::function<void()> interrupt_;

    std::mutex mutex_;
    std::condition_variable arrived_;
    std::deque<protocol::Message> queue_;
    std::size_t queued_bytes_ = 0;  // page and output payload in queue_, bounded by kMaxQueuedBytes
                                    // (queue_.size() is bounded by kMaxQueuedMessages)
    std::exception_ptr read_error_;  // why the reader stopped, once it has
    bool peer_silent_ = false;       // it stopped because the peer said nothing for the timeout
    bool closed_ = false;
    bool woken_ = false;
    bool send_failed_ = false;
    std::thread reader_;

    std::mutex send_mutex_;  // whole messages: the pipeline's and the keepalive's never interleave
    Clock::time_point last_send_{};
    std::condition_variable keepalive_wakeup_;
    std::thread keepalive_;
};

// Whether an error from a byte stream means the link is gone (as opposed to bad bytes): decided by
// its type (LinkDown, SystemError, protocol::StreamStopped), never by its words.
[[nodiscard]] bool is_link_failure(const Error& error);

}  // namespace colo
