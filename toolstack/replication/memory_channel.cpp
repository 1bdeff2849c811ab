#include "toolstack/replication/memory_channel.hpp"

namespace colo {

struct MemoryChannel::Shared {
    std::mutex mutex;
    std::condition_variable arrived;
    std::deque<protocol::Message> queue[2];  // queue[i] is read by side i
    bool down = false;
};

std::pair<std::unique_ptr<MemoryChannel>, std::unique_ptr<MemoryChannel>> MemoryChannel::make_pair() {
    auto shared = std::make_shared<Shared>();
    return {std::make_unique<MemoryChannel>(shared, 0), std::make_unique<MemoryChannel>(shared, 1)};
}

MemoryChannel::MemoryChannel(std::shared_ptr<Shared> shared, int side)
    : shared_(std::move(shared)), side_(side) {}

void MemoryChannel::send(const protocol::Message& message) {
    std::unique_lock lock(shared_->mutex);
    if (shared_->down) throw LinkDown("memory link: the link is down");
    if (sent_ >= drop_at_) {
        shared_->down = true;
        shared_->arrived.notify_all();
        throw LinkDown("memory link: the link dropped (injected fault)");
    }
    protocol::Message copy = message;
    if (sent_ == alter_at_ && alter_) alter_(copy);
    shared_->queue[1 - side_].push_back(std::move(copy));
    ++sent_;
    shared_->arrived.notify_all();
}

std::optional<protocol::Message> MemoryChannel::receive(Clock::time_point deadline) {
    std::unique_lock lock(shared_->mutex);
    auto& queue = shared_->queue[side_];
    shared_->arrived.wait_until(lock, deadline, [&] { return !queue.empty() || shared_->down; });
    if (!queue.empty()) {
        protocol::Message message = std::move(queue.front());
        queue.pop_front();
        return message;
    }
    if (shared_->down) throw LinkDown("memory link: the peer is gone");
    return std::nullopt;
}

void MemoryChannel::close() noexcept {
    std::lock_guard lock(shared_->mutex);
    shared_->down = true;
    shared_->arrived.notify_all();
}

void MemoryChannel::drop_after(std::uint64_t messages) {
    std::lock_guard lock(shared_->mutex);
    drop_at_ = sent_ + messages;
}

void MemoryChannel::alter_message(std::uint64_t index, std::function<void(protocol::Message&)> alter) {
    std::lock_guard lock(shared_->mutex);
    alter_at_ = sent_ + index;
    alter_ = std::move(alter);
}

std::uint64_t MemoryChannel::sent() const {
    std::lock_guard lock(shared_->mutex);
    return sent_;
}

}  // namespace colo
