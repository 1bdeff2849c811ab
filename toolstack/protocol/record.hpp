// Record framing (man colo-replicate(7), "WIRE FORMAT"). Every message after the stream header
// is one record:
//
//   offset 0   u32 type            record_types.hpp; high bit = optional
//   offset 4   u32 body length     bytes of body, without padding
//   offset 8   body                length bytes
//              padding             zero bytes up to the next multiple of 8
//              u32 crc32c          over type, length, body and padding
//              u32 reserved        0
//
// so a record is 16 + round_up(length, 8) bytes and every record starts 8-aligned. The length is
// checked against the type's limit before any memory is set aside for the body. A body of up to
// 8 MiB (every page batch) then gets its buffer at once; a larger one grows its buffer only as
// bytes arrive (at most twice what arrived). So a hostile length cannot make a reader allocate
// more than the limit, nor more than max(8 MiB, twice what the sender really sent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "toolstack/protocol/byte_stream.hpp"

namespace colo::protocol {

inline constexpr std::size_t kRecordHeaderBytes = 8;   // type, length
inline constexpr std::size_t kRecordTrailerBytes = 8;  // crc32c, reserved

[[nodiscard]] constexpr std::size_t padded_body_length(std::size_t length) noexcept {
    return (length + 7) & ~std::size_t{7};
}

// A record being appended to a buffer in place, so a large body (a page batch) is written once,
// straight into the outgoing buffer. Usage: RecordWriter w(out, type); append body to out;
// w.finish(). finish() throws colo::Error when the body exceeds the type's limit, and then
// removes the unfinished record from the buffer.
class RecordWriter {
public:
    RecordWriter(std::vector<std::byte>& out, std::uint32_t type);
    void finish();

private:
    std::vector<std::byte>& out_;
    std::uint32_t type_;
    std::size_t start_;
};

// Appends one whole record.
void append_record(std::vector<std::byte>& out, std::uint32_t type, std::span<const std::byte> body);

struct Record {
    std::uint32_t type = 0;
    std::vector<std::byte> body;  // without padding
};

// Reads the next record whose type this build knows, skipping (and checksumming) unknown
// optional ones. Throws colo::Error on an unknown mandatory type, a length over the limit, a
// checksum mismatch, non-zero padding or reserved bits, or a truncated stream.
[[nodiscard]] Record read_record(ByteSource& source);

// "page-batch" for a known type, "0x80000123" otherwise.
[[nodiscard]] std::string record_type_name(std::uint32_t type);

}  // namespace colo::protocol
