#include "toolstack/replication/secondary_console.hpp"

#include <algorithm>

namespace colo {

void SecondaryConsole::svm_output(std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    retained_.insert(retained_.end(), bytes.begin(), bytes.end());
    if (sink_) emit_locked();
}

// Releases retained bytes from released_ on and forgets them. Mutex held, after take_over.
void SecondaryConsole::emit_locked() {
    const std::uint64_t end = base_ + retained_.size();
    if (end > released_) {
        const std::uint64_t from = std::max(released_, base_);
        sink_(from, std::span<const std::byte>(retained_).subspan(from - base_));
        released_ = end;
    }
    retained_.clear();
    base_ = end;
    forwarded_ = std::max(forwarded_, end);
}

std::optional<protocol::SecondaryOutput> SecondaryConsole::take_unforwarded() {
    std::lock_guard lock(mutex_);
    const std::uint64_t end = base_ + retained_.size();
    if (sink_ || forwarded_ >= end) return std::nullopt;
    const std::uint64_t from = std::max(forwarded_, base_);
    protocol::SecondaryOutput out;
    out.offset = from;
    const auto tail = std::span<const std::byte>(retained_).subspan(from - base_);
    const std::size_t count = std::min<std::size_t>(tail.size(), kMaxForward);
    out.bytes.assign(tail.begin(), tail.begin() + static_cast<std::ptrdiff_t>(count));
    forwarded_ = from + count;
    return out;
}

void SecondaryConsole::rebase(std::uint64_t offset) {
    std::lock_guard lock(mutex_);
    retained_.clear();
    base_ = offset;
    forwarded_ = offset;
}

void SecondaryConsole::checkpoint_applied(std::uint64_t pvm_offset, std::span<const std::byte> pvm_bytes) {
    std::lock_guard lock(mutex_);
    const std::uint64_t end = pvm_offset + pvm_bytes.size();
    if (!sink_) released_ = std::max(released_, pvm_offset);
    // Keep only what the primary has not reported released (normally all of pvm_bytes).
    const std::uint64_t from = std::clamp(released_, pvm_offset, end);
    retained_.assign(pvm_bytes.begin() + static_cast<std::ptrdiff_t>(from - pvm_offset), pvm_bytes.end());
    base_ = from;
    forwarded_ = end;  // the PVM's bytes are not the SVM's output: forwarding starts at the SVM's first
    if (sink_) emit_locked();
}

void SecondaryConsole::primary_released(std::uint64_t offset) {
    std::lock_guard lock(mutex_);
    if (sink_) return;  // we are the primary now
    released_ = std::max(released_, offset);
    if (released_ > base_) {
        const std::uint64_t drop = std::min<std::uint64_t>(released_ - base_, retained_.size());
        retained_.erase(retained_.begin(), retained_.begin() + static_cast<std::ptrdiff_t>(drop));
        base_ += drop;
    }
}

std::uint64_t SecondaryConsole::primary_released() const {
    std::lock_guard lock(mutex_);
    return released_;
}

std::uint64_t SecondaryConsole::next_offset() const {
    std::lock_guard lock(mutex_);
    return base_ + retained_.size();
}

void SecondaryConsole::take_over(OutputSink sink) {
    std::lock_guard lock(mutex_);
    sink_ = std::move(sink);
    if (sink_) emit_locked();
}

}  // namespace colo
