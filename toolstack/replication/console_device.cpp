#include "toolstack/replication/console_device.hpp"

#include <algorithm>
#include <string>
#include <variant>

#include "backends/error.hpp"
#include "toolstack/protocol/record_types.hpp"

namespace colo::console_device {

namespace {

OutputGate::Mode gate_mode(ProtectionMode mode) {
    return mode == ProtectionMode::colo ? OutputGate::Mode::colo : OutputGate::Mode::remus;
}

}  // namespace

// --- primary half

Primary::Primary(Backend& pvm, OutputSink sink, std::uint64_t offset)
    : pvm_(pvm), gate_(std::move(sink), offset, OutputGate::Matching::on_pipeline_thread), released_reported_(offset) {
    pvm_.set_console_sink([this](std::span<const std::byte> bytes) { gate_.pvm_output(bytes); });
}

Primary::~Primary() {
    try {
        pvm_.set_console_sink({});
    } catch (...) {
        // A destructor never throws; the backend is going away with us anyway.
    }
}

bool Primary::owns(const protocol::Message& message) const {
    return std::holds_alternative<protocol::SecondaryOutput>(message);
}

void Primary::setup(ProtectionMode mode, const DeviceSend& send) {
    // The PVM is paused: everything produced so far was released unprotected; hold from here on.
    mode_ = mode;
    gate_.set_mode(gate_mode(mode));
    // Entering COLO is checkpoint 0: the SVM's bytes before it belong to no agreed state.
    gate_.checkpoint_started();
    captured_ = OutputGate::Held{gate_.produced(), {}};
    released_reported_ = gate_.released();
    send(protocol::ReleasedOutput{released_reported_});
}

void Primary::postsuspend() {
    // Nothing is released until this checkpoint commits, so the bytes held now are exactly the
    // ones the primary may release on commit: the secondary gets them to release in its place.
    gate_.checkpoint_started();
    captured_ = gate_.held();
}

std::uint32_t Primary::send_checkpoint(const DeviceSend& send) {
    if (!captured_) throw Error("console device: checkpoint sent without postsuspend");
    const OutputGate::Held& held = *captured_;
    // One piece at least (empty when nothing is held): the secondary always learns where the
    // held bytes start, which is also how far the primary had released.
    std::uint32_t records = 0;
    for (std::size_t done = 0;;) {
        const std::size_t count =
            std::min<std::size_t>(held.bytes.size() - done, protocol::kMaxCheckpointOutputBytes);
        protocol::CheckpointOutput piece;
        piece.offset = held.offset + done;
        piece.end = held.offset + held.bytes.size();
        piece.bytes.assign(held.bytes.begin() + static_cast<std::ptrdiff_t>(done),
                           held.bytes.begin() + static_cast<std::ptrdiff_t>(done + count));
        send(piece);
        ++records;
        done += count;
        if (done == held.bytes.size()) return records;
    }
}

void Primary::commit() {
    if (!captured_) throw Error("console device: commit without a captured checkpoint");
    gate_.checkpoint_committed(captured_->offset + captured_->bytes.size());
    captured_.reset();
}

void Primary::abort() noexcept {
    captured_.reset();
    gate_.checkpoint_abandoned();
}

void Primary::receive(const protocol::Message& message) {
    const auto& out = std::get<protocol::SecondaryOutput>(message);
    // Remus: the SVM does not run, so it has no output to compare; a record from it is ignored.
    if (mode_ == ProtectionMode::colo) (void)gate_.svm_output(out.offset, out.bytes);
}

void Primary::report_released(const DeviceSend& send) {
    const std::uint64_t released = gate_.released();
    if (released == released_reported_) return;
    released_reported_ = released;
    send(protocol::ReleasedOutput{released});
}

void Primary::poll(const DeviceSend& send) {
    // PVM bytes that arrived on the console thread are released here, never there, so that the
    // report follows the release with nothing sent in between.
    (void)gate_.release_matched();
    report_released(send);
}

void Primary::teardown() noexcept {
    captured_.reset();
    gate_.checkpoint_abandoned();
    gate_.set_mode(OutputGate::Mode::unprotected);
}

// --- secondary half

Secondary::Secondary(Backend& svm, ProtectionMode mode, OutputSink sink)
    : svm_(svm), mode_(mode), sink_(std::move(sink)) {
    svm_.set_console_sink([this](std::span<const std::byte> bytes) { console_.svm_output(bytes); });
}

Secondary::~Secondary() {
    try {
        svm_.set_console_sink({});
    } catch (...) {
        // A destructor never throws.
    }
}

bool Secondary::owns(const protocol::Message& message) const {
    return std::holds_alternative<protocol::ReleasedOutput>(message) ||
           std::holds_alternative<protocol::CheckpointOutput>(message);
}

void Secondary::setup() {
    console_.rebase(console_.primary_released());
    forwarding_ = mode_ == ProtectionMode::colo;
}

void Secondary::receive(const protocol::Message& message) {
    if (const auto* released = std::get_if<protocol::ReleasedOutput>(&message)) {
        console_.primary_released(released->offset);
        return;
    }
    throw Error(std::string("console device: ") + protocol::message_name(message) + " outside a checkpoint");
}

void Secondary::begin() { staged_ = Staged{}; }

void Secondary::stage(const protocol::Message& message) {
    if (std::holds_alternative<protocol::ReleasedOutput>(message)) {
        receive(message);  // the release report is not part of the checkpoint
        return;
    }
    if (!staged_) throw Error("console device: checkpoint-output outside a checkpoint");
    const auto& output = std::get<protocol::CheckpointOutput>(message);
    if (!staged_->offset) {
        // The primary released nothing while the checkpoint was taken, so its first byte is
        // where the primary's release stood: never before what it reported released.
        if (output.offset < console_.primary_released()) {
            throw Error("secondary: checkpoint-output starts at console offset " + std::to_string(output.offset) +
                        ", before " + std::to_string(console_.primary_released()) +
                        " which the primary reported released");
        }
        staged_->offset = output.offset;
        staged_->end = output.end;
    } else if (output.end != staged_->end) {
        throw Error("secondary: checkpoint-output pieces disagree on where the checkpoint's output ends (" +
                    std::to_string(staged_->end) + ", then " + std::to_string(output.end) + ")");
    } else if (output.offset != *staged_->offset + staged_->bytes.size()) {
        throw Error("secondary: checkpoint-output at console offset " + std::to_string(output.offset) +
                    " does not continue the previous piece (expected " +
                    std::to_string(*staged_->offset + staged_->bytes.size()) + ")");
    }
    staged_->bytes.insert(staged_->bytes.end(), output.bytes.begin(), output.bytes.end());
}

void Secondary::verify() {
    if (!staged_ || !staged_->offset) {
        throw Error("secondary: checkpoint without checkpoint-output (the PVM's held console bytes)");
    }
    if (const std::uint64_t end = *staged_->offset + staged_->bytes.size(); end != staged_->end) {
        throw Error("secondary: checkpoint-output ends at console offset " + std::to_string(end) + ", its pieces say " +
                    std::to_string(staged_->end));
    }
}

void Secondary::commit() {
    verify();
    // The SVM runs from the PVM's state now, so its console continues where the PVM's was; the
    // PVM's bytes before that are kept until the primary reports them released.
    console_.checkpoint_applied(*staged_->offset, staged_->bytes);
    staged_.reset();
}

void Secondary::abort() noexcept { staged_.reset(); }

void Secondary::poll(const DeviceSend& send) {
    if (!forwarding_) return;
    while (auto out = console_.take_unforwarded()) send(std::move(*out));
}

void Secondary::take_over() {
    forwarding_ = false;
    staged_.reset();
    console_.take_over(sink_);
}

}  // namespace colo::console_device
