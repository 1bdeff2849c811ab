// The secondary's view of the SVM's console. In COLO mode the SVM's bytes are forwarded to the
// primary (SecondaryOutput) for comparison and kept until the primary says it released them
// (ReleasedOutput), because after a failover the survivor must release exactly what the primary
// had not: it starts at max(primary released, SVM console base) and never repeats a byte.
//
// Offsets are positions in the guest's console stream. After a checkpoint the SVM continues from
// the PVM's state, so its console continues at the checkpoint's console offset (rebase).
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
    std::vector<std::byte> retained_;  // SVM bytes from base_ on
    std::uint64_t forwarded_ = 0;      // bytes before this offset went to the primary
    std::uint64_t released_ = 0;       // as reported by the primary (or by us after take_over)
    OutputSink sink_;                  // set by take_over
};

}  // namespace colo
