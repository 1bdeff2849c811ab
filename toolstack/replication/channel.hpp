// The replication link as the pipeline sees it: named messages (toolstack/protocol/messages.hpp)
// going both ways, nothing about bytes or sockets. StreamChannel speaks it over a byte stream with
// the codec; MemoryChannel connects two ends in one process for tests.
//
// Threading: one thread sends and receives on an end at a time (the pipeline's thread); close()
// may be called from any thread and makes a blocked receive() return by throwing LinkDown.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "backends/error.hpp"
#include "toolstack/protocol/messages.hpp"

namespace colo {

// The peer is unreachable: the link broke or was closed. This is the failover trigger; a
// malformed message is a plain colo::Error instead (the peer may well be alive).
class LinkDown : public Error {
public:
    using Error::Error;
};

class Channel {
public:
    using Clock = std::chrono::steady_clock;

    virtual ~Channel() = default;

    // Queues one message for the peer. Throws LinkDown when the link is gone.
    virtual void send(const protocol::Message& message) = 0;

    // The next message from the peer, or nullopt when none arrived by `deadline`. Throws LinkDown
    // when the link is gone, colo::Error when what arrived is not a valid message.
    [[nodiscard]] virtual std::optional<protocol::Message> receive(Clock::time_point deadline) = 0;

    // Ends the link for both sides. Idempotent, never throws.
    virtual void close() noexcept = 0;

    // Makes a receive() waiting now, or the next one, return at once (nullopt if nothing came): a
    // device has something for the pipeline thread (a frame to mirror, compare or forward), which
    // must not wait for the end of the thread's longest sleep. Any thread; never throws.
    virtual void wake() noexcept {}

    // Page batches sent from now on go LZ4-compressed where that makes them smaller (a link that
    // encodes; an in-memory one ignores it). The page bytes before and after, over the link's life.
    struct PageCompression {
        std::uint64_t bytes_in = 0, bytes_out = 0;
    };
    virtual void set_compress_pages(bool /*on*/) {}
    [[nodiscard]] virtual PageCompression page_compression() const { return {}; }
};

}  // namespace colo
