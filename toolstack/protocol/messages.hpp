// The named messages of a replication stream (man colo-replicate(7)). Each is one record of the
// wire format; record_types.hpp gives the numbers. The pipeline speaks only in these; the codec
// (message_codec.hpp) turns them into records and back, validating every field.
//
// A stream is: StreamHeader, GuestConfigText, ReplicationSetup, then per phase:
//   live migration   PageBatch* ... (rounds) ... DeviceState* MigrationCommit
//   COLO entry       EnterColo
//   between checkpoints (primary → secondary)      PageBatch* (streamed into the secondary's cache)
//   checkpoint       CheckpointBegin PageBatch* DeviceState* CheckpointOutput+ CheckpointEnd
//                    ← CheckpointLoaded (secondary → primary, after it applied the checkpoint)
//   any time         Heartbeat (both ways), SecondaryOutput (secondary → primary),
//                    ReleasedOutput (primary → secondary), Goodbye, Failure
//   network, per NIC NetIngress, NetReleased (primary → secondary), NetEgress (secondary →
//                    primary); NetCheckpoint+ inside a checkpoint
//   disk, per disk   initial sync: DiskSyncBegin (primary → secondary) ← DiskHashes*, then
//                    DiskWrite* (primary → secondary) from the sync on; DiskCheckpoint inside a
//                    checkpoint
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "backends/backend.hpp"
#include "backends/guest_address.hpp"
#include "backends/guest_memory.hpp"

namespace colo::protocol {

inline constexpr std::uint32_t kStreamVersion = 5;

// First thing on every stream. Not a record: fixed layout, its own CRC (see stream_header.hpp).
struct StreamHeader {
    std::uint32_t version = kStreamVersion;
    BackendKind backend = BackendKind::kvm;
    std::uint32_t page_size = 4096;
    std::vector<MemoryRegion> regions;  // the guest memory layout; pages may only name these
    bool operator==(const StreamHeader&) const = default;
};

// The guest configuration (format_guest_config text), so the receiver can build the SVM.
struct GuestConfigText {
    std::string text;
    bool operator==(const GuestConfigText&) const = default;
};

// What the sender wants from the receiver, sent right after GuestConfigText so the receiver can
// prepare before the first page arrives.
enum class ReplicationPurpose : std::uint32_t {
    migrate = 1,  // plain live migration: the guest moves
    colo = 2,     // protection, both VMs run, output compared
    remus = 3,    // protection, the SVM stays paused between checkpoints
};

struct ReplicationSetup {
    ReplicationPurpose purpose = ReplicationPurpose::migrate;
    // Protection: back up every page of the initial sync into the secondary's RAM cache as it
    // arrives (off: entering COLO copies all memory into the cache while paused).
    bool cache_backup = true;
    bool operator==(const ReplicationSetup&) const = default;
};

// Page contents: data holds frames.size() pages, in the order of frames.
struct PageBatch {
    std::vector<Pfn> frames;
    std::vector<std::byte> data;
    bool operator==(const PageBatch&) const = default;
};

// One piece of vCPU/device state (Backend::save_state).
struct DeviceState {
    StateRecord state;
    bool operator==(const DeviceState&) const = default;
};

// Live migration's end: the receiver has everything; it may start the guest.
struct MigrationCommit {
    std::uint64_t pages_total = 0;  // pages sent over the whole migration, for a cross-check
    bool operator==(const MigrationCommit&) const = default;
};

// Initial sync is done; both sides now run in COLO (or Remus) mode from epoch `epoch`.
struct EnterColo {
    std::uint64_t epoch = 0;
    bool operator==(const EnterColo&) const = default;
};

struct CheckpointBegin {
    std::uint64_t epoch = 0;
    bool operator==(const CheckpointBegin&) const = default;
};

// Closes a checkpoint. The counts let the receiver verify it got the whole checkpoint before it
// touches the SVM: pages, state records and checkpoint-device records (CheckpointOutput, ...)
// since the matching CheckpointBegin. Each device then checks its own records are whole.
struct CheckpointEnd {
    std::uint64_t epoch = 0;
    std::uint64_t pages = 0;
    std::uint32_t state_records = 0;
    std::uint32_t device_records = 0;
    bool operator==(const CheckpointEnd&) const = default;
};

// The console device's checkpoint record. Inside a checkpoint, before CheckpointEnd: PVM console
// bytes the primary holds (produced, not yet released), starting at console offset `offset`. The
// pieces of one checkpoint are consecutive; the first starts where the primary's release stood at
// the pause and the last ends at `end`, the console offset of the pause (one empty piece when
// nothing is held). With them a survivor can release every byte the dead primary might not have.
struct CheckpointOutput {
    std::uint64_t offset = 0;
    std::vector<std::byte> bytes;
    std::uint64_t end = 0;  // where the last piece of this checkpoint ends (the same in every piece)
    bool operator==(const CheckpointOutput&) const = default;
};

// Secondary → primary: the checkpoint is applied and the SVM runs from it.
struct CheckpointLoaded {
    std::uint64_t epoch = 0;
    bool operator==(const CheckpointLoaded&) const = default;
};

struct Heartbeat {
    std::uint64_t sequence = 0;
    std::uint64_t sent_ns = 0;  // sender's CLOCK_MONOTONIC, for round-trip estimates only
    bool operator==(const Heartbeat&) const = default;
};

// Secondary → primary: console bytes the SVM produced, starting at byte `offset` of its console.
struct SecondaryOutput {
    std::uint64_t offset = 0;
    std::vector<std::byte> bytes;
    bool operator==(const SecondaryOutput&) const = default;
};

// Primary → secondary: the primary has released its console output up to `offset` (sent right
// after the release, before anything else: the survivor resumes releasing from here).
struct ReleasedOutput {
    std::uint64_t offset = 0;
    bool operator==(const ReleasedOutput&) const = default;
};

// Orderly end of the stream (the sender stops on purpose).
struct Goodbye {
    std::string reason;
    bool operator==(const Goodbye&) const = default;
};

// The sender hit an error and is giving up; `message` is its one-line error.
struct Failure {
    std::string message;
    bool operator==(const Failure&) const = default;
};

// The network device's records (toolstack/replication/net_device.hpp). `nic` is the index of the
// guest's vif; frames are Ethernet frames without FCS. Frame indices count from 1, per NIC and
// direction, from the moment protection starts (the final pause of the initial sync).

// Primary → secondary: frame `index` from the host network, which the PVM was given (COLO: the
// SVM gets it too). Sent in index order.
struct NetIngress {
    std::uint32_t nic = 0;
    std::uint64_t index = 0;
    std::vector<std::byte> frame;
    bool operator==(const NetIngress&) const = default;
};

// Secondary → primary (COLO): frame `index` the SVM transmitted, to compare with the PVM's.
struct NetEgress {
    std::uint32_t nic = 0;
    std::uint64_t index = 0;
    std::vector<std::byte> frame;
    bool operator==(const NetEgress&) const = default;
};

// Primary → secondary, right after a release, before anything else: the primary has now
// released every PVM frame up to `pvm_through` and those in `pvm_beyond`; in COLO, the SVM frames
// up to `svm_through` and in `svm_beyond` were matched by released PVM frames (a survivor must not
// send them again). Indices in the lists are above their watermark and ascending.
struct NetReleased {
    std::uint32_t nic = 0;
    std::uint64_t pvm_through = 0;
    std::vector<std::uint64_t> pvm_beyond;
    std::uint64_t svm_through = 0;
    std::vector<std::uint64_t> svm_beyond;
    bool operator==(const NetReleased&) const = default;
};

// One PVM frame the primary holds (produced, not released).
struct HeldFrame {
    std::uint64_t index = 0;
    std::vector<std::byte> frame;
    bool operator==(const HeldFrame&) const = default;
};

// The network device's checkpoint record, inside a checkpoint, one or more per NIC: at the pause
// the PVM had been given ingress frames up to `ingress_through` and had transmitted frames below
// `egress_end`; `held` are the transmitted frames not yet released (split over pieces when
// large; every piece repeats the counts, `held_total` is the number of held frames in all pieces).
struct NetCheckpoint {
    std::uint32_t nic = 0;
    std::uint64_t ingress_through = 0;
    std::uint64_t egress_end = 0;
    std::uint32_t held_total = 0;
    std::vector<HeldFrame> held;
    bool operator==(const NetCheckpoint&) const = default;
};

// The disk device's records (toolstack/replication/disk_device.hpp, disk_mirror.hpp). `disk` is
// the index of the guest's disk in its config. Offsets and lengths are bytes, whole sectors.

// Primary → secondary, first for each disk (migrate and protect alike): the image is
// `size_bytes` long; hash it in blocks of `block_bytes` and answer with DiskHashes.
struct DiskSyncBegin {
    std::uint32_t disk = 0;
    std::uint32_t block_bytes = 0;
    std::uint64_t size_bytes = 0;
    bool operator==(const DiskSyncBegin&) const = default;
};

inline constexpr std::size_t kDiskHashBytes = 32;  // SHA-256

// Secondary → primary: the SHA-256 of blocks first_block.. of its copy (after sizing it), in
// ascending pieces that together cover all `blocks_total` blocks.
struct DiskHashes {
    std::uint32_t disk = 0;
    std::uint64_t first_block = 0;
    std::uint64_t blocks_total = 0;
    std::vector<std::byte> hashes;  // kDiskHashBytes per block
    bool operator==(const DiskHashes&) const = default;
};

// Primary → secondary: write `index` (counting from 1 per disk, from DiskSyncBegin; blocks of the
// initial sync and the guest's writes share the sequence, in the order they reached the primary's
// image). `data` empty: `length` bytes of zeros (a discard, or a sync block that is all zero).
struct DiskWrite {
    std::uint32_t disk = 0;
    std::uint64_t index = 0;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::vector<std::byte> data;
    bool operator==(const DiskWrite&) const = default;
};

// Inside a checkpoint, one per disk: at the pause the PVM's image had had writes up to
// `writes_through`; `flushed`: the guest flushed since the previous checkpoint (the secondary makes
// its copy durable before it acknowledges).
struct DiskCheckpoint {
    std::uint32_t disk = 0;
    bool flushed = false;
    std::uint64_t writes_through = 0;
    bool operator==(const DiskCheckpoint&) const = default;
};

// Secondary → primary, optional (an older primary skips it), about once a second while protecting:
// what only the secondary knows, for the primary's `status` (secondary_*) and `status --watch`.
struct SecondaryReport {
    std::uint64_t epoch = 0;                // last checkpoint applied
    std::uint64_t checkpoints_applied = 0;
    std::uint64_t pause_p50_us = 0, pause_p99_us = 0, pause_max_us = 0;  // the SVM's pause to apply one
    std::uint64_t pages_received = 0;       // every page the secondary took in (sync, stream, checkpoints)
    bool operator==(const SecondaryReport&) const = default;
};

using Message = std::variant<GuestConfigText, PageBatch, DeviceState, MigrationCommit, EnterColo,
                             CheckpointBegin, CheckpointEnd, CheckpointLoaded, Heartbeat,
                             SecondaryOutput, ReleasedOutput, Goodbye, Failure, ReplicationSetup,
                             CheckpointOutput, NetIngress, NetEgress, NetReleased, NetCheckpoint,
                             DiskSyncBegin, DiskHashes, DiskWrite, DiskCheckpoint, SecondaryReport>;

// The message's name as used in logs ("checkpoint-begin").
[[nodiscard]] const char* message_name(const Message& message);

}  // namespace colo::protocol
