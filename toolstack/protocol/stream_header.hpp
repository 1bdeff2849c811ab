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
//
// Magic and version keep their offsets in every version, so any build can name the version of a
// peer it does not speak.
//
// On a replication link (not in a file) the receiver answers the header before anything else
// moves, so a sender learns of a mismatch at connect time instead of after a full sync:
//
//   offset  0   8 bytes  magic "COLOANSR"
//   offset  8   u32      version the receiver speaks (its kStreamVersion)
//   offset 12   u32      verdict (HeaderVerdict)
//   offset 16   u32      crc32c over bytes [0, 16)
//   offset 20   u32      reserved, 0
//
// Version 1 had no answer: its receiver hangs up on a header it does not speak. So a receiver
// that hangs up without an answer speaks version 1 (kFirstAnsweringVersion - 1); every later one
// answers. A version bump is kStreamVersion alone.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "toolstack/protocol/byte_stream.hpp"
#include "toolstack/protocol/messages.hpp"

namespace colo::protocol {

inline constexpr std::array<char, 8> kStreamMagic{'C', 'O', 'L', 'O', 'R', 'E', 'P', 'L'};
inline constexpr std::uint32_t kMaxStreamRegions = 1024;
inline constexpr std::size_t kStreamHeaderFixedBytes = 24;

inline constexpr std::array<char, 8> kAnswerMagic{'C', 'O', 'L', 'O', 'A', 'N', 'S', 'R'};
inline constexpr std::size_t kHeaderAnswerBytes = 24;
inline constexpr std::uint32_t kFirstAnsweringVersion = 2;

// A stream header of a version this build does not speak (read_header throws it before it reads
// more than the fixed part).
class StreamVersionMismatch final : public Error {
public:
    StreamVersionMismatch(std::uint32_t peer_version, const std::string& what)
        : Error(what), peer_version_(peer_version) {}
    [[nodiscard]] std::uint32_t peer_version() const noexcept { return peer_version_; }

private:
    std::uint32_t peer_version_;
};

// "peer speaks stream version N, this is M": what both ends of a link say about a mismatch.
[[nodiscard]] std::string version_mismatch(std::uint32_t peer_version);

enum class HeaderVerdict : std::uint32_t {
    accepted = 0,
    version_differs = 1,  // the receiver speaks the version in the answer, not the sender's
    refused = 2,          // the header is invalid in some other way (the receiver's log says how)
    tls_required = 3,     // the receiver takes TLS connections only; this one sent its header in clear
};

struct HeaderAnswer {
    std::uint32_t version = kStreamVersion;
    HeaderVerdict verdict = HeaderVerdict::accepted;
    bool operator==(const HeaderAnswer&) const = default;
};

void write_header_answer(ByteSink& sink, const HeaderAnswer& answer);

// Reads and checks an answer (magic, CRC, reserved, verdict). Does not judge the version: a
// sender compares it with its own.
[[nodiscard]] HeaderAnswer read_header_answer(ByteSource& source);

// Throws colo::Error naming the first thing wrong with `header`.
void validate_stream_header(const StreamHeader& header);

// The header's bytes (validated first: a writer never sends what a reader would refuse).
[[nodiscard]] std::vector<std::byte> encode_stream_header(const StreamHeader& header);

void write_header(ByteSink& sink, const StreamHeader& header);

// The length of the whole header whose first kStreamHeaderFixedBytes are `fixed`, once those are
// checked as read_header checks them (magic, version: StreamVersionMismatch, backend kind, page
// size, region count). For a receiver that collects a header from a socket without blocking.
[[nodiscard]] std::size_t stream_header_length(std::span<const std::byte> fixed);

// Whether `bytes` can still be the start of a stream header: they match as much of the magic as
// they cover. (A probe that sends "GET / HTTP/1.0" is told apart at its first byte.)
[[nodiscard]] bool may_start_stream_header(std::span<const std::byte> bytes);

// Reads and checks a header: magic ("not a colo-replicate stream"), version
// (StreamVersionMismatch), backend kind, page size, region count (before the regions are read),
// CRC, then the regions themselves.
[[nodiscard]] StreamHeader read_header(ByteSource& source);

}  // namespace colo::protocol
