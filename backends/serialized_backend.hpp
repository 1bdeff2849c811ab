// A Backend that lets callers on several threads take turns: every call holds one mutex while it
// runs on the backend inside. The process that owns a guest (control::GuestService) hands this to
// everyone, so the few calls that still come from outside the pipeline's thread (`info` asking
// paused(), `status` asking replication_caveat(), the auto-converge throttle's pause and resume)
// never run at the same time as the pipeline's own calls on the same backend.
//
// It serialises calls; it does not decide who may pause the guest. Two parties that both pause
// and resume still undo each other (pause() and resume() are idempotent, not counted): who owns
// the guest is decided above it (GuestService refuses an operator's pause while the pipeline owns
// the guest; GuestThrottle arbitrates its spells with the pipeline's pause).
//
// Threading: any method from any thread. memory() is the inner backend's: reading and writing
// pages is the pipeline's alone, as Backend says. nics() and disks() too are the inner backend's. The console sink is called as the inner
// backend calls it, possibly while a call here holds the mutex, so it must not call back into the
// backend (Backend's contract already says so).
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "backends/backend.hpp"

namespace colo {

class SerializedBackend final : public Backend {
public:
    explicit SerializedBackend(std::unique_ptr<Backend> inner);

    [[nodiscard]] BackendKind kind() const override { return kind_; }
    [[nodiscard]] std::string name() const override;
    [[nodiscard]] GuestMemory& memory() override { return memory_; }
    void pause() override;
    void resume() override;
    [[nodiscard]] bool paused() const override;
    void set_realtime_pause(bool on) override;
    void start_dirty_log() override;
    void stop_dirty_log() override;
    void harvest_dirty(DirtyBitmap& into) override;
    [[nodiscard]] std::vector<StateRecord> save_state() override;
    void restore_state(std::span<const StateRecord> state) override;
    void set_console_sink(ConsoleSink sink) override;
    void checkpoint_committed(std::uint64_t epoch) override;
    [[nodiscard]] std::string domain_config() override;
    [[nodiscard]] std::string commit_incoming() override;
    void destroy_after_save() override;
    [[nodiscard]] std::string replication_caveat() override;
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> guest_report() override;
    // The inner backend's NICs, unserialised: a GuestNic orders its own calls (guest_nic.hpp), and
    // its sinks run on the backend's threads while a call here may hold the mutex.
    [[nodiscard]] std::vector<GuestNic*> nics() override { return inner_->nics(); }
    [[nodiscard]] std::vector<GuestDisk*> disks() override { return inner_->disks(); }
    // The inner backend's, each call under the same mutex as the rest (how(), which never
    // changes, is kept and answered without it); nullptr when it has none.
    [[nodiscard]] GuestSuspend* cooperative_suspend() override { return suspend_ ? &*suspend_ : nullptr; }

private:
    class Suspend final : public GuestSuspend {
    public:
        // Made while nobody else can call in (the constructor's): how() is asked once.
        Suspend(std::mutex& mutex, GuestSuspend& inner) : mutex_(mutex), inner_(inner), how_(inner.how()) {}
        void request() override;
        [[nodiscard]] bool suspended() override;
        [[nodiscard]] Withdrawal withdraw() override;
        void resume_cancelled() override;
        // Without the mutex: `status` asks it while a checkpoint may hold the backend.
        [[nodiscard]] std::string how() const override { return how_; }

    private:
        std::mutex& mutex_;
        GuestSuspend& inner_;
        const std::string how_;
    };

    mutable std::mutex mutex_;
    const std::unique_ptr<Backend> inner_;
    const BackendKind kind_;
    GuestMemory& memory_;
    std::optional<Suspend> suspend_;
};

}  // namespace colo
