// Checkpoint devices: everything a protected guest has outside its RAM and vCPU state that must
// take part in every checkpoint (its console, its NICs, its disks). Each device has a
// half on each side of the link, and the transaction (checkpoint_transaction.hpp) drives both
// halves through these hooks, as libxl drives its checkpoint devices (setup, postsuspend,
// preresume, commit, teardown) and cloud-hypervisor its Pausable/Snapshottable devices. A device
// never calls into the transaction: it only answers hooks and hands messages to `send`.
//
// A device owns its records (the console: SecondaryOutput, ReleasedOutput, CheckpointOutput).
// The phase table says in which phases a record may arrive at all; the device says what it means.
// Records inside a checkpoint are counted in CheckpointEnd::device_records, so a missing one is
// found before the SVM is touched.
//
// Threading: every hook runs on the pipeline thread. A device that also takes input from a
// backend thread (the console sink) says how in its own header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "toolstack/protocol/messages.hpp"
#include "toolstack/replication/replication_config.hpp"

namespace colo {

// Sends one message to the other side. Throws LinkDown (or colo::Error) like Channel::send.
using DeviceSend = std::function<void(const protocol::Message&)>;

// How far a device's own initial sync is (PrimaryDevice::sync_step).
enum class SyncProgress {
    done,     // all of it went
    sent,     // a piece went; more follows
    waiting,  // nothing to send until the secondary answers
};

class PrimaryDevice {
public:
    virtual ~PrimaryDevice() = default;

    [[nodiscard]] virtual std::string name() const = 0;
    // Whether `message`, from the secondary, is one of this device's records.
    [[nodiscard]] virtual bool owns(const protocol::Message& message) const = 0;

    // The initial sync begins (before the pre-copy of memory): a device with state of its own to
    // bring over (a disk's image) starts here. The PVM runs.
    virtual void start_sync(const DeviceSend& /*send*/) {}
    // Sends a bounded piece of that state (the final pause waits until all of it went, so it costs
    // no pause time). Called until done, with incoming messages read in between.
    [[nodiscard]] virtual SyncProgress sync_step(const DeviceSend& /*send*/) { return SyncProgress::done; }
    // The PVM is about to be paused (a checkpoint, or the initial sync's final pause). A device
    // whose guest must first reach a quiet point of its own (a cooperative suspend) asks for it
    // here; the transaction then polls ready_to_pause, handling messages in between, until every
    // device is ready or the suspend timeout passes, when it calls cancel_presuspend and skips the
    // checkpoint (the initial sync fails instead).
    virtual void presuspend() {}
    [[nodiscard]] virtual bool ready_to_pause() { return true; }
    // Returns whether the device is ready after all (the guest got there as it was cancelled).
    [[nodiscard]] virtual bool cancel_presuspend() { return true; }
    // Between the pre-copy's page batches, and at the final pause before the guest's state:
    // what accumulated since the last call.
    virtual void drain(const DeviceSend& /*send*/) {}
    // The PVM has just paused (the initial sync's final pause, or a checkpoint's), before its
    // state is saved: input for it waits in the device until preresume, so the saved state has
    // exactly what the device says it was given.
    virtual void quiesce() {}
    // The initial sync's final pause: from here on the device holds what the secondary cannot
    // stand behind yet. Sends what the secondary's half needs before EnterColo.
    virtual void setup(ProtectionMode mode, const DeviceSend& send) = 0;
    // The PVM is paused for a checkpoint: capture what the checkpoint must carry.
    virtual void postsuspend() = 0;
    // Sends the capture, inside the checkpoint after the vCPU state; returns the record count.
    virtual std::uint32_t send_checkpoint(const DeviceSend& send) = 0;
    // The PVM is about to run again (the checkpoint is captured; a cooperative suspend resumes here).
    virtual void preresume() {}
    // The secondary has applied the checkpoint captured by the last postsuspend.
    virtual void commit() = 0;
    // That checkpoint will never commit (it failed to go out, or protection ends without it).
    virtual void abort() noexcept = 0;
    // A record of the secondary's half, between checkpoints.
    virtual void receive(const protocol::Message& message) = 0;
    // Called on the pipeline thread between messages: release what may go now and tell the
    // secondary at once, before any other message (what a survivor must not repeat).
    virtual void poll(const DeviceSend& send) = 0;
    // The device needs a checkpoint now (COLO: its output diverged).
    [[nodiscard]] virtual bool wants_checkpoint() const = 0;
    // Protection is over (stopped, the secondary lost, or a failure): the PVM runs alone, so
    // whatever is held goes out. Always runs, even when setup never did; never throws.
    virtual void teardown() noexcept = 0;
};

class SecondaryDevice {
public:
    virtual ~SecondaryDevice() = default;

    [[nodiscard]] virtual std::string name() const = 0;
    // Whether `message`, from the primary, is one of this device's records.
    [[nodiscard]] virtual bool owns(const protocol::Message& message) const = 0;

    // COLO starts (EnterColo; the SVM is paused and equal to the PVM at its final pause).
    virtual void setup() = 0;
    // A record of the primary's half outside a checkpoint.
    virtual void receive(const protocol::Message& message) = 0;
    // CheckpointBegin: a new checkpoint's records follow.
    virtual void begin() = 0;
    // A record of the primary's half inside a checkpoint: kept aside until commit.
    virtual void stage(const protocol::Message& message) = 0;
    // CheckpointEnd, before the SVM is touched: throws colo::Error when what was staged is not
    // a whole, consistent capture.
    virtual void verify() = 0;
    // The SVM has been given the checkpoint's memory and state (it is still paused): adopt the
    // staged capture.
    virtual void commit() = 0;
    // The checkpoint being staged will never be applied. Never throws.
    virtual void abort() noexcept = 0;
    // Called on the pipeline thread between messages (COLO: forward the SVM's output).
    virtual void poll(const DeviceSend& send) = 0;
    // The guest runs here from now on (takeover, or the end of a migration): release what the
    // primary might not have, then act as the guest's own device.
    virtual void take_over() = 0;
    // After setup, commit and take_over: make durable what they must (a disk's fdatasync). It may
    // take long on a busy host, so the transaction runs it off the pipeline thread while that
    // thread keeps the heartbeats going. Throws colo::Error.
    virtual void make_durable() {}
    // Whether make_durable has anything to do (most checkpoints: no; no thread is started then).
    [[nodiscard]] virtual bool durable_due() const { return false; }
};

}  // namespace colo
