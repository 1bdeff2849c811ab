// The stream header: the first bytes of every replication stream and save file. Not a record:
// a fixed little-endian layout with its own CRC, so a reader can tell "not our stream" and
// "a version we do not speak" before it trusts anything else (man colo-replicate(7)).
//
//   offset  0   8 bytes  magic "COLOREPL"
//   offset  8   u32      version (kStreamVersion)
//   offset 12   u32      backend kind (BackendKind)
//   offset 16   u32      page size (4096)
//   offset 20   u32      region count n (1..kMaxStreamRegions)
//   offset 24   n × {u64 first pfn, u64 pages}   sorted, non-overlapping, pages > 0
//   24 + 16n    u32      crc32c over bytes [0, 24 + 16n)
//   28 + 16n    u32      reserved, 0
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "toolstack/protocol/byte_stream.hpp"
#include "toolstack/protocol/messages.hpp"

namespace colo::protocol {

inline constexpr std::array<char, 8> kStreamMagic{'C', 'O', 'L', 'O', 'R', 'E', 'P', 'L'};
inline constexpr std::uint32_t kMaxStreamRegions = 1024;
inline constexpr std::size_t kStreamHeaderFixedBytes = 24;

// Throws colo::Error naming the first thing wrong with `header`.
void validate_stream_header(const StreamHeader& header);

// The header's bytes (validated first: a writer never sends what a reader would refuse).
[[nodiscard]] std::vector<std::byte> encode_stream_header(const StreamHeader& header);

void write_header(ByteSink& sink, const StreamHeader& header);

// Reads and checks a header: magic ("not a colo-replicate stream"), version, backend kind,
// page size, region count (before the regions are read), CRC, then the regions themselves.
[[nodiscard]] StreamHeader read_header(ByteSource& source);

}  // namespace colo::protocol
