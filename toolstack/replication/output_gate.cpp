#include "toolstack/replication/output_gate.hpp"

#include <algorithm>
#include <string>

#include "backends/error.hpp"

namespace colo {

OutputGate::OutputGate(OutputSink sink, std::uint64_t offset, Matching matching)
    : sink_(std::move(sink)), matching_(matching), released_(offset), svm_next_(offset) {}

void OutputGate::set_mode(Mode mode) {
    std::lock_guard lock(mutex_);
    mode_ = mode;
    if (mode == Mode::unprotected) {
        release_locked(held_.size());
        svm_held_.clear();
        diverged_ = false;
    }
    svm_next_ = released_;
    svm_held_.clear();
}

OutputGate::Mode OutputGate::mode() const {
    std::lock_guard lock(mutex_);
    return mode_;
}

void OutputGate::release_locked(std::uint64_t count) {
    count = std::min<std::uint64_t>(count, held_.size());
    if (count == 0) return;
    if (sink_) sink_(released_, std::span<const std::byte>(held_.data(), count));
    held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(count));
    released_ += count;
}

void OutputGate::pvm_output(std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    held_.insert(held_.end(), bytes.begin(), bytes.end());
    if (mode_ == Mode::unprotected) {
        release_locked(held_.size());
    } else if (mode_ == Mode::colo && matching_ == Matching::on_pvm_output) {
        match_locked();
    }
}

bool OutputGate::release_matched() {
    std::lock_guard lock(mutex_);
    if (mode_ == Mode::colo) match_locked();
    return !diverged_;
}

OutputGate::Held OutputGate::held() const {
    std::lock_guard lock(mutex_);
    return Held{released_, held_};
}

std::uint64_t OutputGate::produced() const {
    std::lock_guard lock(mutex_);
    return released_ + held_.size();
}

std::uint64_t OutputGate::released() const {
    std::lock_guard lock(mutex_);
    return released_;
}

bool OutputGate::diverged() const {
    std::lock_guard lock(mutex_);
    return diverged_;
}

// Releases the common prefix of held PVM bytes and unmatched SVM bytes; a differing byte within
// it marks divergence. Called with the mutex held, in colo mode only.
void OutputGate::match_locked() {
    if (diverged_ || in_checkpoint_) return;
    const std::size_t common = std::min(held_.size(), svm_held_.size());
    const auto [pvm_end, svm_end] =
        std::mismatch(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(common), svm_held_.begin());
    const auto same = static_cast<std::size_t>(pvm_end - held_.begin());
    svm_held_.erase(svm_held_.begin(), svm_held_.begin() + static_cast<std::ptrdiff_t>(same));
    release_locked(same);
    if (same < common) diverged_ = true;
}

bool OutputGate::svm_output(std::uint64_t offset, std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    if (mode_ != Mode::colo || in_checkpoint_) return true;
    if (offset > svm_next_) {
        throw Error("output gate: secondary output at offset " + std::to_string(offset) +
                    " leaves a gap (expected " + std::to_string(svm_next_) + ")");
    }
    // Bytes before svm_next_ were seen already (a resend); keep only the new ones.
    const std::uint64_t skip = std::min<std::uint64_t>(svm_next_ - offset, bytes.size());
    svm_held_.insert(svm_held_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(skip), bytes.end());
    svm_next_ = std::max<std::uint64_t>(svm_next_, offset + bytes.size());
    match_locked();
    return !diverged_;
}

void OutputGate::checkpoint_started() {
    std::lock_guard lock(mutex_);
    in_checkpoint_ = true;
}

void OutputGate::checkpoint_committed(std::uint64_t offset) {
    std::lock_guard lock(mutex_);
    in_checkpoint_ = false;
    if (offset > released_) release_locked(offset - released_);
    diverged_ = false;
    svm_held_.clear();
    svm_next_ = std::max(offset, released_);
    if (mode_ == Mode::colo) match_locked();
}

void OutputGate::checkpoint_abandoned() {
    std::lock_guard lock(mutex_);
    in_checkpoint_ = false;
}

}  // namespace colo
