// The record type numbers of a replication stream, one per message of messages.hpp, and the
// largest body each may have. Numbers are on the wire: never renumber, never reuse.
//
// A type with the high bit (kOptionalRecordBit) set is optional: a reader that does not know it
// skips it (after checking its CRC). An unknown type without the bit fails the stream. Every type
// of stream version 1 is mandatory: each one changes what the receiver must do. A later version
// may add optional records (hints, statistics) that an older reader can safely ignore.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "backends/guest_address.hpp"

namespace colo::protocol {

enum class RecordType : std::uint32_t {
    guest_config_text = 1,
    page_batch = 2,
    device_state = 3,
    migration_commit = 4,
    enter_colo = 5,
    checkpoint_begin = 6,
    checkpoint_end = 7,
    checkpoint_loaded = 8,
    heartbeat = 9,
    secondary_output = 10,
    released_output = 11,
    goodbye = 12,
    failure = 13,
    replication_setup = 14,
    checkpoint_output = 15,
    net_ingress = 16,
    net_egress = 17,
    net_released = 18,
    net_checkpoint = 19,
    disk_sync_begin = 20,
    disk_hashes = 21,
    disk_write = 22,
    disk_checkpoint = 23,
    // Optional (kOptionalRecordBit): statistics a reader may ignore.
    secondary_report = 0x80000001u,
};

inline constexpr std::uint32_t kOptionalRecordBit = 0x80000000u;

[[nodiscard]] constexpr bool is_optional_record(std::uint32_t type) noexcept {
    return (type & kOptionalRecordBit) != 0;
}

// Limits, checked against a record's length field before anything is allocated for its body.
inline constexpr std::uint32_t kMaxPagesPerBatch = 1024;
inline constexpr std::uint32_t kMaxConfigTextBytes = 64 * 1024;
inline constexpr std::uint32_t kMaxDeviceStateBytes = 16 * 1024 * 1024;
inline constexpr std::uint32_t kMaxSecondaryOutputBytes = 1024 * 1024;
inline constexpr std::uint32_t kMaxCheckpointOutputBytes = 1024 * 1024;  // per record; a checkpoint may carry several
inline constexpr std::uint32_t kMaxNetFrameBytes = 64 * 1024;  // one Ethernet frame (a NIC's MTU is far below)
inline constexpr std::uint32_t kMaxNetReleasedIndices = 65536;  // per record, each side
inline constexpr std::uint32_t kMaxNetCheckpointBytes = 4 * 1024 * 1024;  // per record; a checkpoint may carry several
inline constexpr std::uint32_t kMaxDiskWriteBytes = 1024 * 1024;  // per record; a larger write is split
inline constexpr std::uint32_t kMaxDiskHashesPerRecord = 4096;
inline constexpr std::uint32_t kMinDiskBlockBytes = 4096, kMaxDiskBlockBytes = 1024 * 1024;
inline constexpr std::uint32_t kMaxReasonBytes = 4096;  // Goodbye reason, Failure message
inline constexpr std::uint32_t kMaxRecordBody = 32 * 1024 * 1024;  // any record, known or not

// Page frame numbers above this cannot be turned into a 64-bit guest-physical address.
inline constexpr std::uint64_t kMaxPfn = (std::uint64_t{1} << (64 - kPageShift)) - 1;
// In a page-batch's frame list: this page is all zero bytes and its 4 KiB are not in the body
// (a fresh guest's memory is mostly zero; sending it whole made protect send all of it twice over).
inline constexpr std::uint64_t kZeroPageBit = std::uint64_t{1} << 63;
// In a page-batch's flags word: the non-zero pages that follow the frame list are one LZ4 block
// (`protect --compress`, `migrate --compress`), which must expand to exactly their size.
inline constexpr std::uint32_t kPagesCompressed = 1;

struct RecordTypeInfo {
    RecordType type;
    const char* name;           // as in logs and man colo-replicate(7): "page-batch"
    std::uint32_t max_body;     // bytes
};

inline constexpr std::array<RecordTypeInfo, 24> kRecordTypes{{
    {RecordType::guest_config_text, "guest-config-text", kMaxConfigTextBytes},
    {RecordType::page_batch, "page-batch", 8 + kMaxPagesPerBatch * (8 + static_cast<std::uint32_t>(kPageSize))},
    {RecordType::device_state, "device-state", 8 + kMaxDeviceStateBytes},
    {RecordType::migration_commit, "migration-commit", 8},
    {RecordType::enter_colo, "enter-colo", 8},
    {RecordType::checkpoint_begin, "checkpoint-begin", 8},
    {RecordType::checkpoint_end, "checkpoint-end", 24},
    {RecordType::checkpoint_loaded, "checkpoint-loaded", 8},
    {RecordType::heartbeat, "heartbeat", 16},
    {RecordType::secondary_output, "secondary-output", 8 + kMaxSecondaryOutputBytes},
    {RecordType::released_output, "released-output", 8},
    {RecordType::goodbye, "goodbye", kMaxReasonBytes},
    {RecordType::failure, "failure", kMaxReasonBytes},
    {RecordType::replication_setup, "replication-setup", 8},
    {RecordType::checkpoint_output, "checkpoint-output", 16 + kMaxCheckpointOutputBytes},
    {RecordType::net_ingress, "net-ingress", 16 + kMaxNetFrameBytes},
    {RecordType::net_egress, "net-egress", 16 + kMaxNetFrameBytes},
    {RecordType::net_released, "net-released", 32 + 2 * 8 * kMaxNetReleasedIndices},
    {RecordType::net_checkpoint, "net-checkpoint", kMaxNetCheckpointBytes},
    {RecordType::disk_sync_begin, "disk-sync-begin", 16},
    {RecordType::disk_hashes, "disk-hashes", 24 + kMaxDiskHashesPerRecord * 32},
    {RecordType::disk_write, "disk-write", 32 + kMaxDiskWriteBytes},
    {RecordType::disk_checkpoint, "disk-checkpoint", 16},
    {RecordType::secondary_report, "secondary-report", 48},
}};

// The description of a known type, or nullptr.
[[nodiscard]] constexpr const RecordTypeInfo* find_record_type(std::uint32_t type) noexcept {
    for (const auto& info : kRecordTypes)
        if (static_cast<std::uint32_t>(info.type) == type) return &info;
    return nullptr;
}

[[nodiscard]] constexpr const RecordTypeInfo& record_type_info(RecordType type) noexcept {
    return *find_record_type(static_cast<std::uint32_t>(type));
}

static_assert(kRecordTypes[1].max_body <= kMaxRecordBody && kRecordTypes[2].max_body <= kMaxRecordBody);

}  // namespace colo::protocol
