// Two connected Channel ends in one process, for tests. Messages are delivered in order, by
// value. Fault injection models what a real network does to the pipeline: the link can drop after
// a given number of messages (those already sent are still delivered, as TCP would, then the
// reader sees LinkDown), and a chosen message can be altered on its way (a garbled field that the
// codec's checksum would not catch because it was wrong at the sender).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "toolstack/replication/channel.hpp"

namespace colo {

class MemoryChannel final : public Channel {
public:
    // Both ends of one link.
    [[nodiscard]] static std::pair<std::unique_ptr<MemoryChannel>, std::unique_ptr<MemoryChannel>>
    make_pair();

    void send(const protocol::Message& message) override;
    [[nodiscard]] std::optional<protocol::Message> receive(Clock::time_point deadline) override;
    void close() noexcept override;

    // After `messages` more successful sends from this end the link goes down: the next send
    // throws LinkDown, and the peer sees LinkDown once it has read what was sent before.
    void drop_after(std::uint64_t messages);
    // The `index`-th message sent from this end from now on (0 = the next one) is passed through
    // `alter` before it is delivered.
    void alter_message(std::uint64_t index, std::function<void(protocol::Message&)> alter);

    // Messages sent from this end so far.
    [[nodiscard]] std::uint64_t sent() const;

    struct Shared;
    MemoryChannel(std::shared_ptr<Shared> shared, int side);

private:
    std::shared_ptr<Shared> shared_;
    int side_;  // 0 or 1: which queue this end reads
    std::uint64_t sent_ = 0;
    std::uint64_t drop_at_ = UINT64_MAX;
    std::uint64_t alter_at_ = UINT64_MAX;
    std::function<void(protocol::Message&)> alter_;
};

}  // namespace colo
