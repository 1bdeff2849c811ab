// Messages to records and back (man colo-replicate(7)). Every field is validated on both sides:
// the writer refuses to produce what a reader would refuse, and the reader trusts nothing.
// Bodies are explicit little-endian, byte by byte:
//
//   guest-config-text   text (UTF-8, no NUL), ≤ 64 KiB
//   page-batch          u32 n (≤ 1024), u32 reserved 0, n × u64 pfn, n × 4096 bytes of page data
//   device-state        u32 tag, u32 version, data (≤ 16 MiB)
//   migration-commit    u64 pages_total
//   enter-colo          u64 epoch
//   checkpoint-begin    u64 epoch
//   checkpoint-end      u64 epoch, u64 pages, u32 state_records, u32 device_records
//   checkpoint-loaded   u64 epoch
//   heartbeat           u64 sequence, u64 sent_ns
//   secondary-output    u64 offset, bytes (≤ 1 MiB)
//   released-output     u64 offset
//   goodbye             reason text (no NUL), ≤ 4 KiB
//   failure             message text (no NUL), ≤ 4 KiB
//   replication-setup   u32 purpose (1 migrate, 2 colo, 3 remus), u32 flags (bit 0 cache backup)
//   checkpoint-output   u64 offset, u64 end, bytes (≤ 1 MiB; offset + length ≤ end)
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include <atomic>
#include <cstdint>

#include "toolstack/protocol/byte_stream.hpp"
#include "toolstack/protocol/messages.hpp"
#include "toolstack/protocol/record.hpp"
#include "toolstack/protocol/record_types.hpp"
#include "toolstack/protocol/stream_header.hpp"

namespace colo::protocol {

[[nodiscard]] RecordType record_type_of(const Message& message) noexcept;

// Throws colo::Error naming the message and what is wrong with it. With `regions` non-empty,
// every page-batch frame must lie in one of them (sorted, as in a StreamHeader).
void validate_message(const Message& message, std::span<const MemoryRegion> regions = {});

// How page batches are encoded. compress_pages: the batch's non-zero pages go LZ4-compressed (flag
// bit 0 of the page-batch record) when that makes them smaller. The counters, when given, add up
// the page bytes before and after (what a page batch carried in data, zero pages aside).
struct EncodeOptions {
    bool compress_pages = false;
    std::atomic<std::uint64_t>* page_bytes_in = nullptr;
    std::atomic<std::uint64_t>* page_bytes_out = nullptr;
};

// One whole record. encode_into appends it to `out` (to build a checkpoint in one buffer).
[[nodiscard]] std::vector<std::byte> encode(const Message& message, const EncodeOptions& options = {});
void encode_into(std::vector<std::byte>& out, const Message& message, const EncodeOptions& options = {});

void write_message(ByteSink& sink, const Message& message, const EncodeOptions& options = {});

// The message in a record read by read_record (taken by value: pass it with std::move).
[[nodiscard]] Message decode(Record record, std::span<const MemoryRegion> regions = {});

// The next message. The second form also checks page-batch frames against the header's regions;
// use it whenever the header has been read.
[[nodiscard]] Message read_message(ByteSource& source);
[[nodiscard]] Message read_message(ByteSource& source, const StreamHeader& header);

}  // namespace colo::protocol
