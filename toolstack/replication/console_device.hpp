// The guest's console as a checkpoint device (checkpoint_device.hpp), the first of them.
//
// Primary half (console_device::Primary): the PVM's console bytes go through an OutputGate (held
// until safe, see output_gate.hpp). Its records:
//   ← SecondaryOutput{offset, bytes}   COLO: the SVM's bytes, compared with the PVM's
//   → ReleasedOutput{offset}           sent right after every release, before any other message
//   → CheckpointOutput{offset, bytes}+ inside a checkpoint: the bytes held at its pause
// Secondary half (console_device::Secondary): a SecondaryConsole keeps every byte a survivor may
// have to release; the checkpoint's pieces are staged and checked (consecutive, starting no
// earlier than the last ReleasedOutput) before the SVM is touched, and adopted on commit.
//
// Threading: the backend's console sink (a vCPU or console-reader thread) feeds the gate or the
// secondary console, which lock for themselves; every hook is on the pipeline thread. Each half
// installs its sink in the backend when made and removes it when destroyed, so it must outlive
// nothing the backend still calls.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "backends/backend.hpp"
#include "toolstack/replication/checkpoint_device.hpp"
#include "toolstack/replication/output_gate.hpp"
#include "toolstack/replication/output_sink.hpp"
#include "toolstack/replication/secondary_console.hpp"

namespace colo::console_device {

class Primary final : public PrimaryDevice {
public:
    // `offset`: the console offset of the guest's next byte (0 for a new guest).
    Primary(Backend& pvm, OutputSink sink, std::uint64_t offset);
    ~Primary() override;
    Primary(const Primary&) = delete;
    Primary& operator=(const Primary&) = delete;

    [[nodiscard]] std::string name() const override { return "console"; }
    [[nodiscard]] bool owns(const protocol::Message& message) const override;
    void setup(ProtectionMode mode, const DeviceSend& send) override;
    void postsuspend() override;
    std::uint32_t send_checkpoint(const DeviceSend& send) override;
    void commit() override;
    void abort() noexcept override;
    void receive(const protocol::Message& message) override;
    void poll(const DeviceSend& send) override;
    [[nodiscard]] bool wants_checkpoint() const override { return gate_.diverged(); }
    void teardown() noexcept override;

    [[nodiscard]] const OutputGate& gate() const { return gate_; }

private:
    void report_released(const DeviceSend& send);

    Backend& pvm_;
    ProtectionMode mode_ = ProtectionMode::colo;
    OutputGate gate_;
    std::optional<OutputGate::Held> captured_;  // held at the last postsuspend
    std::uint64_t released_reported_ = 0;
};

class Secondary final : public SecondaryDevice {
public:
    // `sink` gets released output once the guest runs here.
    Secondary(Backend& svm, ProtectionMode mode, OutputSink sink);
    ~Secondary() override;
    Secondary(const Secondary&) = delete;
    Secondary& operator=(const Secondary&) = delete;

    [[nodiscard]] std::string name() const override { return "console"; }
    [[nodiscard]] bool owns(const protocol::Message& message) const override;
    void setup() override;
    void receive(const protocol::Message& message) override;
    void begin() override;
    void stage(const protocol::Message& message) override;
    void verify() override;
    void commit() override;
    void abort() noexcept override;
    void poll(const DeviceSend& send) override;
    void take_over() override;

    [[nodiscard]] std::uint64_t next_offset() const { return console_.next_offset(); }
    [[nodiscard]] std::uint64_t primary_released() const { return console_.primary_released(); }

private:
    struct Staged {
        std::optional<std::uint64_t> offset;  // of the first piece
        std::uint64_t end = 0;                // where the pieces say the last one ends
        std::vector<std::byte> bytes;         // all pieces
    };

    Backend& svm_;
    ProtectionMode mode_;
    OutputSink sink_;
    SecondaryConsole console_;
    bool forwarding_ = false;  // COLO, between setup and take_over
    std::optional<Staged> staged_;
};

}  // namespace colo::console_device
