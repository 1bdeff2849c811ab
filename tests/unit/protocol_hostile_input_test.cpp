// The decoder against damaged and hostile input: it must throw colo::Error with one line that
// says what is wrong, never crash, never accept damage silently, never allocate for a length it
// has not checked.
#include <doctest/doctest.h>

#include "tests/unit/error_of.hpp"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "tests/unit/protocol_sample_messages.hpp"
#include "toolstack/protocol/crc32c.hpp"
#include "toolstack/protocol/message_codec.hpp"
#include "toolstack/protocol/record.hpp"

using namespace colo::protocol;
using namespace colo::protocol::test;
using colo::BackendKind;
using colo::Pfn;
using colo::StateRecord;

using colo::test::error_of;

namespace {

void append_le32(std::vector<std::byte>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

// Records the largest single read the decoder asked for: a reader that set aside a body's claimed
// length up front would ask for all of it at once.
class MeasuringSource final : public ByteSource {
public:
    explicit MeasuringSource(std::span<const std::byte> bytes) : inner_(bytes) {}
    void read_exact(std::span<std::byte> out) override {
        largest_ = std::max(largest_, out.size());
        inner_.read_exact(out);
    }
    std::size_t largest() const { return largest_; }

private:
    MemorySource inner_;
    std::size_t largest_ = 0;
};

std::vector<std::byte> record_head(std::uint32_t type, std::uint32_t length) {
    std::vector<std::byte> out;
    append_le32(out, type);
    append_le32(out, length);
    return out;
}

std::vector<Message> small_stream_messages() {
    return {GuestConfigText{"memory = 4\n"}, CheckpointBegin{5}, sample_pages({2}, 3),
            DeviceState{StateRecord{1, 2, pattern_bytes(13, 1)}}, CheckpointOutput{70, pattern_bytes(7, 2), 80},
            CheckpointEnd{5, 1, 1, 77},
            Heartbeat{1, 2}, Goodbye{"done"}};
}

}  // namespace

TEST_CASE("protocol hostile input: truncation at every byte offset is a one-line error") {
    const auto messages = one_of_each_message();
    const auto stream = encode_stream(sample_header(), messages);
    REQUIRE(decode_stream(stream, messages.size()) == messages);
    std::size_t truncated = 0;
    for (std::size_t cut = 0; cut < stream.size(); ++cut) {
        const std::string error = error_of([&] { (void)decode_stream(std::span(stream).first(cut), messages.size()); });
        if (error.rfind("truncated stream: ", 0) == 0) ++truncated;
        else FAIL_CHECK("cut at " << cut << ": " << error);
        CHECK(error.find('\n') == std::string::npos);
    }
    CHECK(truncated == stream.size());
}

TEST_CASE("protocol hostile input: every single flipped bit is caught") {
    const auto messages = small_stream_messages();
    auto stream = encode_stream(sample_header(), messages);
    REQUIRE(decode_stream(stream, messages.size()) == messages);
    std::size_t caught = 0, by_checksum = 0;
    for (std::size_t bit = 0; bit < stream.size() * 8; ++bit) {
        stream[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
        const std::string error = error_of([&] { (void)decode_stream(stream, messages.size()); });
        stream[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
        if (error == "(no error)") FAIL_CHECK("flipping bit " << bit << " went unnoticed");
        else ++caught;
        if (error.find("checksum mismatch") != std::string::npos) ++by_checksum;
        CHECK(error.find('\n') == std::string::npos);
    }
    CHECK(caught == stream.size() * 8);
    MESSAGE(by_checksum << " of " << caught << " flips caught by a checksum, the rest by a field check");
}

TEST_CASE("protocol hostile input: a length over the type's limit is refused before the body is read") {
    for (const RecordTypeInfo& info : kRecordTypes) {
        CAPTURE(info.name);
        for (std::uint32_t length : {info.max_body + 1, 0xFFFFFFF8u, 0xFFFFFFFFu}) {
            const auto bytes = record_head(static_cast<std::uint32_t>(info.type), length);
            MeasuringSource source(bytes);  // only the 8 header bytes: reading further would say "truncated"
            CHECK(error_of([&] { (void)read_message(source); }) ==
                  "record " + std::string(info.name) + ": body length " + std::to_string(length) +
                      " exceeds the limit of " + std::to_string(info.max_body) + " bytes");
            CHECK(source.largest() == 8);
        }
    }
    // An optional record is bounded by the overall limit.
    const auto optional = record_head(0x80000077u, kMaxRecordBody + 8);
    MemorySource source(optional);
    CHECK(error_of([&] { (void)read_message(source); }) ==
          "record 0x80000077: body length 33554440 exceeds the limit of 33554432 bytes");
}

TEST_CASE("protocol hostile input: a large claimed length with little data behind it allocates little") {
    for (std::uint32_t type : {static_cast<std::uint32_t>(RecordType::device_state), 0x80000077u}) {
        auto bytes = record_head(type, kMaxDeviceStateBytes);
        bytes.resize(bytes.size() + 100);
        MeasuringSource source(bytes);
        CHECK(error_of([&] { (void)read_message(source); }).rfind("truncated stream: ", 0) == 0);
        CHECK(source.largest() <= 1024 * 1024);
    }
}

TEST_CASE("protocol hostile input: unknown mandatory records fail, unknown optional ones are skipped") {
    std::vector<std::byte> stream;
    append_record(stream, 0x80001234u, pattern_bytes(21, 1));  // optional, unknown: skipped
    append_record(stream, 0x80000000u, {});                     // optional, empty: skipped
    encode_into(stream, Heartbeat{7, 8});
    append_record(stream, 0x00000063u, pattern_bytes(8, 2));    // mandatory, unknown
    MemorySource source(stream);
    CHECK(read_message(source) == Message{Heartbeat{7, 8}});
    CHECK(error_of([&] { (void)read_message(source); }) ==
          "unknown mandatory record type 0x00000063 (the sender speaks a newer stream version; cannot continue)");

    // A skipped record is still checked: damage in it is not ignored.
    std::vector<std::byte> damaged;
    append_record(damaged, 0x80001234u, pattern_bytes(21, 1));
    damaged[10] ^= std::byte{0x40};
    encode_into(damaged, Heartbeat{7, 8});
    MemorySource damaged_source(damaged);
    CHECK(error_of([&] { (void)read_message(damaged_source); }).rfind("record 0x80001234: checksum mismatch", 0) == 0);
}

TEST_CASE("protocol hostile input: a stream header that is not ours or not our version") {
    auto bytes = encode_stream_header(sample_header());
    auto next_version = bytes;
    next_version[8] = std::byte{kStreamVersion + 1};
    MemorySource next(next_version);
    CHECK(error_of([&] { (void)read_header(next); }) == "stream version " + std::to_string(kStreamVersion + 1) +
                                                            " is not supported (this build speaks " +
                                                            std::to_string(kStreamVersion) + ")");

    auto magic = bytes;
    magic[0] = std::byte{'X'};
    MemorySource m(magic);
    CHECK(error_of([&] { (void)read_header(m); }) == "not a colo-replicate stream (bad magic)");

    // A region count over the limit is refused before the regions are read.
    auto many = std::vector<std::byte>(bytes.begin(), bytes.begin() + 24);
    many[20] = std::byte{0xFF};
    many[21] = std::byte{0xFF};
    MeasuringSource count_source(many);
    CHECK(error_of([&] { (void)read_header(count_source); }) == "stream header: 65535 memory regions (must be 1..1024)");

    auto page = bytes;
    page[17] = std::byte{0x20};  // 8192
    MemorySource p(page);
    CHECK(error_of([&] { (void)read_header(p); }) == "stream header: page size 8192 is not supported (only 4096)");

    auto backend = bytes;
    backend[12] = std::byte{9};
    MemorySource b(backend);
    CHECK(error_of([&] { (void)read_header(b); }) == "stream header: unknown backend kind 9");

    // Overlapping regions behind a valid CRC (a buggy or hostile writer, not line damage).
    std::vector<std::byte> overlap(bytes.begin(), bytes.begin() + 20);
    append_le32(overlap, 2);
    for (std::uint64_t v : {100ull, 50ull, 120ull, 10ull})
        for (int i = 0; i < 8; ++i) overlap.push_back(static_cast<std::byte>(v >> (8 * i)));
    append_le32(overlap, crc32c(overlap));
    append_le32(overlap, 0);
    MemorySource o(overlap);
    CHECK(error_of([&] { (void)read_header(o); }) ==
          "stream header: region 1 (first pfn 120, 10 pages) overlaps or precedes the region before it "
          "(regions must be sorted)");

    auto crc = bytes;
    crc[30] ^= std::byte{1};  // inside the first region
    MemorySource c(crc);
    CHECK(error_of([&] { (void)read_header(c); }).rfind("stream header: checksum mismatch (stored 0x", 0) == 0);
}

TEST_CASE("protocol hostile input: well-framed records with bad bodies") {
    auto read_one = [](std::uint32_t type, const std::vector<std::byte>& body) {
        std::vector<std::byte> bytes;
        append_record(bytes, type, body);
        MemorySource source(bytes);
        return error_of([&] { (void)read_message(source, sample_header()); });
    };
    CHECK(read_one(6, pattern_bytes(7, 1)) == "checkpoint-begin: body is 7 bytes, expected 8");
    CHECK(read_one(7, pattern_bytes(16, 1)) == "checkpoint-end: body is 16 bytes, expected 24");
    CHECK(error_of([] { std::vector<std::byte> out; append_record(out, 7, pattern_bytes(40, 1)); }) ==
          "record checkpoint-end: body length 40 exceeds the limit of 24 bytes");
    auto batch = encode(PageBatch{{Pfn{1}}, std::vector<std::byte>(colo::kPageSize, std::byte{7})});
    std::vector<std::byte> batch_body(batch.begin() + 8, batch.begin() + 8 + 16 + colo::kPageSize);
    batch_body[4] = std::byte{2};
    CHECK(read_one(2, batch_body) == "page-batch: unknown flags 2");
    // Said to be compressed, but the bytes are a raw page: LZ4 refuses them, nothing is written.
    batch_body[4] = std::byte{1};
    CHECK(read_one(2, batch_body) == "page-batch: compressed pages do not expand to the 1 pages announced (corrupt data)");
    CHECK(read_one(3, pattern_bytes(5, 1)) == "device-state: body ends 3 bytes early");
    CHECK(read_one(15, pattern_bytes(14, 1)) == "checkpoint-output: body ends 2 bytes early");
    std::vector<std::byte> wraps;  // offset UINT64_MAX - 2, end UINT64_MAX, with 4 bytes behind them
    for (int i = 0; i < 16; ++i) wraps.push_back(std::byte{0xff});
    wraps[0] = std::byte{0xfd};
    wraps.resize(20, std::byte{'x'});
    CHECK(read_one(15, wraps) == "checkpoint-output: offset 18446744073709551613 plus 4 bytes overflows");

    // page-batch: the count and the body length must agree.
    std::vector<std::byte> pages;
    append_le32(pages, 2);
    append_le32(pages, 0);
    pages.resize(8 + 8 + 4096 + 8);
    CHECK(read_one(2, pages) == "page-batch: body is 4120 bytes, expected 8216");
    std::vector<std::byte> huge_count;
    append_le32(huge_count, 0xFFFFFFFFu);
    append_le32(huge_count, 0);
    CHECK(read_one(2, huge_count) == "page-batch: 4294967295 frames, the limit is 1024");
    auto dup = encode(sample_pages({160 - 1, 256}));
    std::vector<std::byte> dup_body(dup.begin() + 8, dup.end() - 8);
    for (int i = 0; i < 8; ++i) dup_body[16 + i] = dup_body[8 + i];  // second frame := first
    CHECK(read_one(2, dup_body) == "page-batch: frame 159 appears twice in one batch");
    CHECK(read_one(12, {std::byte{'a'}, std::byte{0}}) == "goodbye: text contains a NUL byte");

    // Non-zero padding behind a valid CRC.
    auto padded = encode(Goodbye{"bye"});
    padded[8 + 3] = std::byte{1};
    std::vector<std::byte> head(padded.begin(), padded.begin() + 16);
    padded.resize(16);
    append_le32(padded, crc32c(head));
    append_le32(padded, 0);
    MemorySource source(padded);
    CHECK(error_of([&] { (void)read_message(source); }) == "record goodbye: non-zero padding after the body");
}

TEST_CASE("protocol hostile input: garbage never crashes and always fails cleanly") {
    std::mt19937_64 rng(2024);
    const auto valid = encode_stream(sample_header(), small_stream_messages());
    for (int round = 0; round < 2000; ++round) {
        std::vector<std::byte> junk(rng() % 200);
        for (auto& b : junk) b = static_cast<std::byte>(rng());
        if (round % 2 == 1) {
            // A valid header followed by junk reaches the record decoder.
            junk.insert(junk.begin(), valid.begin(), valid.begin() + 24 + 3 * 16 + 8);
        }
        const std::string error = error_of([&] { (void)decode_stream(junk, 3); });
        CHECK(error != "(no error)");
        CHECK(error.find('\n') == std::string::npos);
    }
}

TEST_CASE("protocol hostile input: network records that lie about their frames") {
    auto read_one = [](std::uint32_t type, const std::vector<std::byte>& body) {
        std::vector<std::byte> bytes;
        append_record(bytes, type, body);
        MemorySource source(bytes);
        return error_of([&] { (void)read_message(source, sample_header()); });
    };
    // A held-frame count the body cannot hold, and a frame length past the body's end.
    std::vector<std::byte> lying(32, std::byte{0});
    lying[4] = std::byte{0xff};   // held total
    lying[24] = std::byte{0x10};  // 16 held frames in 0 bytes
    CHECK(read_one(19, lying) == "net-checkpoint: 16 held frames cannot fit in its body");
    std::vector<std::byte> cut(32 + 13, std::byte{0});
    cut[4] = std::byte{1};
    cut[16] = std::byte{9};   // egress end 9
    cut[24] = std::byte{1};   // one held frame
    cut[32] = std::byte{1};   // index 1
    cut[40] = std::byte{60};  // of 60 bytes, one present
    CHECK(read_one(19, cut) == "net-checkpoint: body ends 59 bytes early");
    std::vector<std::byte> many(32, std::byte{0});
    many[24] = std::byte{1};  // one PVM index announced, none present
    CHECK(read_one(18, many) == "net-released: body is 32 bytes, expected 40");
    CHECK(error_of([] { (void)encode(NetIngress{0, 0, pattern_bytes(60, 1)}); }) ==
          "net-ingress: frame index 0 (indices count from 1)");
    CHECK(error_of([] { (void)encode(NetEgress{0, 1, {}}); }) == "net-egress: empty frame");
    CHECK(error_of([] { (void)encode(NetIngress{0, 1, pattern_bytes(kMaxNetFrameBytes + 1, 1)}); }) ==
          "net-ingress: frame of 65537 bytes, the limit is 65536");
    CHECK(error_of([] { (void)encode(NetReleased{0, 5, {5}, 0, {}}); }) ==
          "net-released: pvm index 5 is not above 5 (watermark, then ascending)");
    CHECK(error_of([] { (void)encode(NetReleased{0, 0, {}, 3, {7, 6}}); }) ==
          "net-released: svm index 6 is not above 7 (watermark, then ascending)");
    CHECK(error_of([] { (void)encode(NetCheckpoint{0, 1, 10, 1, {HeldFrame{10, pattern_bytes(60, 1)}}}); }) ==
          "net-checkpoint: held frame index 10 is not ascending below egress end 10");
    CHECK(error_of([] { (void)encode(NetCheckpoint{0, 1, 10, 0, {HeldFrame{3, pattern_bytes(60, 1)}}}); }) ==
          "net-checkpoint: 1 held frames in a piece of 0");
}

TEST_CASE("protocol hostile input: disk records that lie about their data") {
    auto read_one = [](std::uint32_t type, const std::vector<std::byte>& body) {
        std::vector<std::byte> bytes;
        append_record(bytes, type, body);
        MemorySource source(bytes);
        return error_of([&] { (void)read_message(source, sample_header()); });
    };
    // disk-write: {disk, flags, index, offset, length} then data.
    std::vector<std::byte> zeros_with_data(32 + 512, std::byte{0});
    zeros_with_data[4] = std::byte{1};   // flags: zeros
    zeros_with_data[8] = std::byte{1};   // index 1
    zeros_with_data[25] = std::byte{2};  // length 512
    CHECK(read_one(22, zeros_with_data) == "disk-write: a write of zeros carries data");
    std::vector<std::byte> short_data(32 + 511, std::byte{0});
    short_data[8] = std::byte{1};
    short_data[25] = std::byte{2};  // length 512, 511 bytes of data
    CHECK(read_one(22, short_data) == "disk-write: 511 bytes of data for length 512");
    std::vector<std::byte> flags(32, std::byte{0});
    flags[4] = std::byte{6};
    CHECK(read_one(22, flags) == "disk-write: unknown flags 6");
    // disk-hashes: a count the body does not hold.
    std::vector<std::byte> hashes(24, std::byte{0});
    hashes[4] = std::byte{2};
    hashes[16] = std::byte{2};  // 2 blocks in all
    CHECK(read_one(21, hashes) == "disk-hashes: body is 24 bytes, expected 88");
    CHECK(error_of([] { (void)encode(DiskHashes{0, 3, 4, pattern_bytes(2 * kDiskHashBytes, 1)}); }) ==
          "disk-hashes: blocks 3 + 2 pass the total 4");
    CHECK(error_of([] { (void)encode(DiskWrite{0, 0, 0, 512, pattern_bytes(512, 1)}); }) ==
          "disk-write: write index 0 (indices count from 1)");
    CHECK(error_of([] { (void)encode(DiskWrite{0, 1, 100, 512, pattern_bytes(512, 1)}); }) ==
          "disk-write: offset 100 is not a multiple of 512");
    CHECK(error_of([] { (void)encode(DiskWrite{0, 1, 0, 2 * 1024 * 1024, pattern_bytes(2 * 1024 * 1024, 1)}); }) ==
          "disk-write: 2097152 bytes of data, the limit is 1048576");
    CHECK(error_of([] { (void)encode(DiskWrite{0, 1, ~std::uint64_t{511}, 1024, {}}); }) ==
          "disk-write: offset 18446744073709551104 plus length overflows");
    CHECK(error_of([] { (void)encode(DiskSyncBegin{0, 3000, 4096}); }) ==
          "disk-sync-begin: block size 3000 is not a power of two from 4096 to 1048576");
    CHECK(error_of([] { (void)encode(DiskSyncBegin{0, 65536, 1000}); }) ==
          "disk-sync-begin: size 1000 is not a multiple of 512");
}
