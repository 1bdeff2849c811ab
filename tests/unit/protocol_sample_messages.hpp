// Sample messages and streams shared by the protocol and transport unit tests: one of every
// message type, with values chosen so that any byte-order or field-order mistake changes them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "toolstack/protocol/byte_stream.hpp"
#include "toolstack/protocol/message_codec.hpp"
#include "toolstack/protocol/messages.hpp"

namespace colo::protocol::test {

inline std::vector<std::byte> pattern_bytes(std::size_t n, unsigned seed) {
    std::vector<std::byte> out(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& b : out) {
        x = x * 1103515245u + 12345u;
        b = static_cast<std::byte>(x >> 16);
    }
    return out;
}

inline StreamHeader sample_header() {
    StreamHeader header;
    header.backend = BackendKind::kvm;
    header.regions = {{Pfn{0}, 160}, {Pfn{256}, 0x7f00}, {Pfn{0x100000}, 0x40000}};
    return header;
}

inline PageBatch sample_pages(std::vector<std::uint64_t> frames, unsigned seed = 7) {
    PageBatch batch;
    for (auto f : frames) batch.frames.push_back(Pfn{f});
    batch.data = pattern_bytes(frames.size() * kPageSize, seed);
    return batch;
}

// One of every message type (kept in the order of the Message variant).
inline std::vector<Message> one_of_each_message() {
    return {
        GuestConfigText{"name = \"guest\"\nmemory = 64\nkernel = \"/boot/bzImage\"\n"},
        sample_pages({3, 0x100001, 257}),
        DeviceState{StateRecord{0x00010002, 3, pattern_bytes(301, 2)}},
        MigrationCommit{0x0102030405060708ull},
        EnterColo{42},
        CheckpointBegin{0x1122334455667788ull},
        CheckpointEnd{43, 1000, 7, 0xfedcba98u},
        CheckpointLoaded{43},
        Heartbeat{9, 123456789012345ull},
        SecondaryOutput{4096, pattern_bytes(77, 5)},
        ReleasedOutput{8192},
        Goodbye{"operator asked to stop"},
        Failure{"send page batch: Connection reset by peer"},
        ReplicationSetup{ReplicationPurpose::remus, false},
        CheckpointOutput{0x0a0b0c0d0e0f1011ull, pattern_bytes(45, 6), 0x0a0b0c0d0e0f2011ull},
        NetIngress{1, 0x1000000000000001ull, pattern_bytes(60, 8)},
        NetEgress{3, 77, pattern_bytes(1514, 9)},
        NetReleased{0, 40, {42, 45}, 38, {41}},
        NetCheckpoint{2, 500, 90, 2, {HeldFrame{70, pattern_bytes(64, 10)}, HeldFrame{89, pattern_bytes(1514, 11)}}},
        DiskSyncBegin{1, 65536, 0x40000000ull},
        DiskHashes{0, 16, 40, pattern_bytes(3 * kDiskHashBytes, 12)},
        DiskWrite{2, 0x100000001ull, 0x7e00, 1024, pattern_bytes(1024, 13)},
        DiskCheckpoint{3, true, 0x123456789ull},
        SecondaryReport{44, 40, 310, 920, 1480, 0x1234567ull},
    };
}

// A header and the messages, as one stream.
inline std::vector<std::byte> encode_stream(const StreamHeader& header, const std::vector<Message>& messages) {
    MemorySink sink;
    write_header(sink, header);
    for (const auto& m : messages) write_message(sink, m);
    return sink.take();
}

// Reads a header and exactly `count` messages, and requires the stream to end there.
inline std::vector<Message> decode_stream(std::span<const std::byte> bytes, std::size_t count) {
    MemorySource source(bytes);
    const StreamHeader header = read_header(source);
    std::vector<Message> out;
    for (std::size_t i = 0; i < count; ++i) out.push_back(read_message(source, header));
    if (!source.at_end()) throw Error("trailing bytes after the last message");
    return out;
}

}  // namespace colo::protocol::test
