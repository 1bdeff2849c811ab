#include "backends/serialized_backend.hpp"

namespace colo {

SerializedBackend::SerializedBackend(std::unique_ptr<Backend> inner)
    : inner_(std::move(inner)), kind_(inner_->kind()), memory_(inner_->memory()) {
    if (GuestSuspend* suspend = inner_->cooperative_suspend()) suspend_.emplace(mutex_, *suspend);
}

std::string SerializedBackend::name() const {
    std::lock_guard lock(mutex_);
    return inner_->name();
}

void SerializedBackend::pause() {
    std::lock_guard lock(mutex_);
    inner_->pause();
}

void SerializedBackend::resume() {
    std::lock_guard lock(mutex_);
    inner_->resume();
}

bool SerializedBackend::paused() const {
    std::lock_guard lock(mutex_);
    return inner_->paused();
}

void SerializedBackend::set_realtime_pause(bool on) {
    std::lock_guard lock(mutex_);
    inner_->set_realtime_pause(on);
}

void SerializedBackend::start_dirty_log() {
    std::lock_guard lock(mutex_);
    inner_->start_dirty_log();
}

void SerializedBackend::stop_dirty_log() {
    std::lock_guard lock(mutex_);
    inner_->stop_dirty_log();
}

void SerializedBackend::harvest_dirty(DirtyBitmap& into) {
    std::lock_guard lock(mutex_);
    inner_->harvest_dirty(into);
}

std::vector<StateRecord> SerializedBackend::save_state() {
    std::lock_guard lock(mutex_);
    return inner_->save_state();
}

void SerializedBackend::restore_state(std::span<const StateRecord> state) {
    std::lock_guard lock(mutex_);
    inner_->restore_state(state);
}

void SerializedBackend::set_console_sink(ConsoleSink sink) {
    std::lock_guard lock(mutex_);
    inner_->set_console_sink(std::move(sink));
}

void SerializedBackend::checkpoint_committed(std::uint64_t epoch) {
    std::lock_guard lock(mutex_);
    inner_->checkpoint_committed(epoch);
}

std::string SerializedBackend::domain_config() {
    std::lock_guard lock(mutex_);
    return inner_->domain_config();
}

std::string SerializedBackend::commit_incoming() {
    std::lock_guard lock(mutex_);
    return inner_->commit_incoming();
}

void SerializedBackend::destroy_after_save() {
    std::lock_guard lock(mutex_);
    inner_->destroy_after_save();
}

std::vector<std::pair<std::string, std::string>> SerializedBackend::guest_report() {
    // Not under the lock: it only reads guest memory, and `status` must not wait for a checkpoint.
    return inner_->guest_report();
}

std::string SerializedBackend::replication_caveat() {
    std::lock_guard lock(mutex_);
    return inner_->replication_caveat();
}

void SerializedBackend::Suspend::request() {
    std::lock_guard lock(mutex_);
    inner_.request();
}

bool SerializedBackend::Suspend::suspended() {
    std::lock_guard lock(mutex_);
    return inner_.suspended();
}

GuestSuspend::Withdrawal SerializedBackend::Suspend::withdraw() {
    std::lock_guard lock(mutex_);
    return inner_.withdraw();
}

void SerializedBackend::Suspend::resume_cancelled() {
    std::lock_guard lock(mutex_);
    inner_.resume_cancelled();
}

}  // namespace colo
