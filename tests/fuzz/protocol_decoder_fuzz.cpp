// libFuzzer harness for the stream decoder (built only by `scons fuzz`, see SConscript).
//
// The first input byte picks a mode; the rest is the stream:
//   bit 0   0: a stream header, then records checked against its regions; 1: records only
//   bit 1   1: rewrite every checksum to the right value before decoding, so mutations reach the
//           field checks behind the CRC instead of dying at it (production code is unchanged)
// Properties: decoding either throws colo::Error or yields messages that re-encode and decode to
// themselves. Any other exception, crash, leak or ASan report is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "backends/error.hpp"
#include "toolstack/protocol/crc32c.hpp"
#include "toolstack/protocol/message_codec.hpp"

using namespace colo::protocol;

namespace {

std::uint32_t le32(const std::vector<std::byte>& b, std::size_t at) {
    return std::uint32_t(b[at]) | std::uint32_t(b[at + 1]) << 8 | std::uint32_t(b[at + 2]) << 16 |
           std::uint32_t(b[at + 3]) << 24;
}

void put_le32(std::vector<std::byte>& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::byte>(v >> (8 * i));
}

void fix_checksums(std::vector<std::byte>& b, bool with_header) {
    std::size_t at = 0;
    if (with_header) {
        if (b.size() < kStreamHeaderFixedBytes) return;
        const std::size_t regions = le32(b, 20);
        if (regions > kMaxStreamRegions) return;
        at = kStreamHeaderFixedBytes + 16 * regions;
        if (b.size() < at + 4) return;
        put_le32(b, at, crc32c(std::span(b).first(at)));
        at += 8;
    }
    while (at + kRecordHeaderBytes <= b.size()) {
        const std::size_t end = at + kRecordHeaderBytes + padded_body_length(le32(b, at + 4));
        if (end + 4 > b.size()) return;
        put_le32(b, end, crc32c(std::span(b).subspan(at, end - at)));
        at = end + kRecordTrailerBytes;
    }
}

void check_round_trip(const Message& message, std::span<const colo::MemoryRegion> regions) {
    const auto bytes = encode(message);  // a decoded message must be encodable
    MemorySource again(bytes);
    if (!(decode(read_record(again), regions) == message) || !again.at_end()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const bool with_header = (data[0] & 1) == 0;
    const bool fix = (data[0] & 2) != 0;
    std::vector<std::byte> stream(reinterpret_cast<const std::byte*>(data + 1),
                                  reinterpret_cast<const std::byte*>(data + size));
    if (fix) fix_checksums(stream, with_header);

    MemorySource source(stream);
    try {
        StreamHeader header;
        if (with_header) {
            header = read_header(source);
            if (encode_stream_header(header) != std::vector<std::byte>(stream.begin(), stream.begin() + source.position()))
                std::abort();  // a header is decoded from exactly its own encoding
        }
        while (!source.at_end()) {
            const Message message = with_header ? read_message(source, header) : read_message(source);
            check_round_trip(message, header.regions);
        }
    } catch (const colo::Error&) {
        // The expected outcome for almost every input.
    }
    return 0;
}
