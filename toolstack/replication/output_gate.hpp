// The primary's console output gate: PVM console bytes are held here until it is safe to let them
// out, then released to the OutputSink in order.
//
//   unprotected  every byte is released at once.
//   colo         the secondary forwards the SVM's console bytes; the longest prefix on which PVM
//                and SVM agree is released. A differing byte marks the gate diverged (the caller
//                checkpoints at once) and stops release until the checkpoint commits.
//   remus        nothing is released until a checkpoint that covers it is acknowledged.
//
// A committed checkpoint with console offset C releases everything before C (the SVM now runs
// from the PVM's state, so its console continues at C too). While a checkpoint is in flight the
// SVM's bytes are ignored: they come from the epoch being replaced.
//
// Where a colo release happens (Matching): `on_pvm_output` matches whenever bytes arrive from
// either side, so the backend's console thread may release. `on_pipeline_thread` releases only in
// svm_output, release_matched and checkpoint_committed, all called by the pipeline thread: the
// Primary uses it so that every release is followed at once, on the same thread and before any
// other message, by the ReleasedOutput that tells the secondary (colo_primary.hpp, "exactly once").
//
// Threading: pvm_output is called from the backend's console thread, the rest from the pipeline
// thread; all under one mutex. The sink is called with the mutex held and must not call back.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "toolstack/replication/output_sink.hpp"

namespace colo {

class OutputGate {
public:
    enum class Mode { unprotected, colo, remus };
    enum class Matching { on_pvm_output, on_pipeline_thread };

    // PVM bytes produced but not released: [offset, offset + bytes.size()).
    struct Held {
        std::uint64_t offset = 0;
        std::vector<std::byte> bytes;
    };

    // `offset`: the console offset of the first byte the guest will produce.
    explicit OutputGate(OutputSink sink, std::uint64_t offset = 0, Matching matching = Matching::on_pvm_output);

    // Switching to unprotected releases everything held.
    void set_mode(Mode mode);
    [[nodiscard]] Mode mode() const;

    void pvm_output(std::span<const std::byte> bytes);
    // PVM console bytes produced so far: the console offset of a checkpoint taken now.
    [[nodiscard]] std::uint64_t produced() const;
    [[nodiscard]] std::uint64_t released() const;
    // What a checkpoint taken now must carry so that a survivor can release it (the PVM is paused).
    [[nodiscard]] Held held() const;

    // colo: SVM console bytes starting at `offset`. Returns false when they differ from the
    // PVM's (the gate is then diverged). Throws colo::Error for an offset that leaves a gap.
    [[nodiscard]] bool svm_output(std::uint64_t offset, std::span<const std::byte> bytes);
    [[nodiscard]] bool diverged() const;
    // colo with Matching::on_pipeline_thread: releases the agreeing prefix of bytes that arrived
    // from the PVM since the last call. Returns false when they differ (the gate is diverged).
    bool release_matched();

    void checkpoint_started();
    // The checkpoint whose console offset is `offset` is committed on the secondary.
    void checkpoint_committed(std::uint64_t offset);
    // The checkpoint did not commit (the secondary is gone); SVM bytes stay ignored.
    void checkpoint_abandoned();

private:
    void release_locked(std::uint64_t count);
    void match_locked();

    mutable std::mutex mutex_;
    OutputSink sink_;
    Matching matching_;
    Mode mode_ = Mode::unprotected;
    std::uint64_t released_ = 0;
    std::vector<std::byte> held_;      // PVM bytes [released_, released_ + held_.size())
    std::uint64_t svm_next_ = 0;       // console offset of the next SVM byte expected
    std::vector<std::byte> svm_held_;  // SVM bytes [released_, svm_next_) not yet matched
    bool diverged_ = false;
    bool in_checkpoint_ = false;
};

}  // namespace colo
