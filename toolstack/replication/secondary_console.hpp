// The secondary's view of the guest's console: every byte a survivor may have to release, kept
// until the primary says it released it (ReleasedOutput). Those are
//   - the PVM bytes the last applied checkpoint carried (CheckpointOutput): produced before the
//     checkpoint's pause, not yet released by the primary then; the SVM, restored to that pause,
//     will never print them again;
//   - the SVM's own bytes from the checkpoint's console offset on. In COLO mode they are also
//     forwarded to the primary (SecondaryOutput) for comparison; PVM bytes never are.
// After a failover the survivor releases from the primary's last reported offset on: the PVM's
// bytes first, then the SVM's, so the two released streams join without a gap.
//
// Offsets are positions in the guest's console stream. After a checkpoint the SVM continues from
// the PVM's state, so its console continues at the checkpoint's console offset.
//
// Threading: svm_output is called from the backend's console thread, the rest from the pipeline
// thread; all under one mutex. After take_over the sink is called from svm_output's thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "toolstack/protocol/messages.hpp"
#include "toolstack/replication/output_sink.hpp"

namespace colo {

class SecondaryConsole {
public:
    // Most bytes in one SecondaryOutput (the codec allows 1 MiB; smaller keeps messages short).
    static constexpr std::size_t kMaxForward = 64 * 1024;

    void svm_output(std::span<const std::byte> bytes);

    // Bytes not yet forwarded to the primary, at most kMaxForward of them; nullopt when none.
    [[nodiscard]] std::optional<protocol::SecondaryOutput> take_unforwarded();

    // The SVM now runs from a checkpoint whose console offset is `offset`: what it printed before
    // belongs to a discarded epoch.
    void rebase(std::uint64_t offset);
    // The SVM now runs from a checkpoint that carried the PVM's unreleased bytes `pvm_bytes`
    // starting at `pvm_offset`: its console offset is pvm_offset + pvm_bytes.size(). The primary
    // had released everything before `pvm_offset` when it took the checkpoint.
    void checkpoint_applied(std::uint64_t pvm_offset, std::span<const std::byte> pvm_bytes);
    void primary_released(std::uint64_t offset);
    [[nodiscard]] std::uint64_t primary_released() const;
    // Console offset of the next byte the SVM prints.
    [[nodiscard]] std::uint64_t next_offset() const;

    // Failover: release what the primary had not, then pass every new byte to `sink`.
    void take_over(OutputSink sink);

private:
    void emit_locked();

    mutable std::mutex mutex_;
    std::uint64_t base_ = 0;           // console offset of retained_[0]
    std::vector<std::byte> retained_;  // releasable bytes from base_ on (PVM's, then SVM's)
    std::uint64_t forwarded_ = 0;      // bytes before this offset went to the primary
    std::uint64_t released_ = 0;       // as reported by the primary (or by us after take_over)
    OutputSink sink_;                  // set by take_over
};

}  // namespace colo
