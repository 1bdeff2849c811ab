#include <doctest/doctest.h>

#include "tests/unit/error_of.hpp"

#include <atomic>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "tests/unit/protocol_sample_messages.hpp"
#include "toolstack/protocol/crc32c.hpp"
#include "toolstack/protocol/message_codec.hpp"

using namespace colo::protocol;
using namespace colo::protocol::test;
using colo::BackendKind;
using colo::Error;
using colo::Pfn;
using colo::StateRecord;

using colo::test::error_of;

namespace {
std::vector<std::byte> hex(std::initializer_list<unsigned> values) {
    std::vector<std::byte> out;
    for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}
void append_le32(std::vector<std::byte>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}
}  // namespace

TEST_CASE("protocol codec: every message type survives a round trip, alone and in one stream") {
    const auto messages = one_of_each_message();
    REQUIRE(messages.size() == std::variant_size_v<Message>);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        CAPTURE(message_name(messages[i]));
        CHECK(messages[i].index() == i);  // one of each, in variant order
        const auto bytes = encode(messages[i]);
        CHECK(bytes.size() % 8 == 0);
        MemorySource source(bytes);
        CHECK(read_message(source) == messages[i]);
        CHECK(source.at_end());
    }
    const auto stream = encode_stream(sample_header(), messages);
    CHECK(decode_stream(stream, messages.size()) == messages);
}

TEST_CASE("protocol codec: edge values round trip (empty, maximum sizes, extreme numbers)") {
    std::vector<Message> messages{
        GuestConfigText{""},
        GuestConfigText{std::string(kMaxConfigTextBytes, 'x')},
        PageBatch{},
        DeviceState{StateRecord{0xffffffffu, 0xffffffffu, {}}},
        DeviceState{StateRecord{1, 1, pattern_bytes(kMaxDeviceStateBytes, 3)}},
        CheckpointEnd{UINT64_MAX, UINT64_MAX, UINT32_MAX, UINT32_MAX},
        SecondaryOutput{UINT64_MAX - kMaxSecondaryOutputBytes, pattern_bytes(kMaxSecondaryOutputBytes, 4)},
        CheckpointOutput{0, {}, 0},
        CheckpointOutput{UINT64_MAX - kMaxCheckpointOutputBytes, pattern_bytes(kMaxCheckpointOutputBytes, 8), UINT64_MAX},
        Goodbye{std::string(kMaxReasonBytes, 'g')},
    };
    std::vector<std::uint64_t> frames;
    for (std::uint64_t f = 0; f < kMaxPagesPerBatch; ++f) frames.push_back(0x100000 + 2 * f);
    messages.push_back(sample_pages(frames, 9));
    for (const auto& m : messages) {
        CAPTURE(message_name(m));
        const auto bytes = encode(m);
        MemorySource source(bytes);
        CHECK(read_message(source, sample_header()) == m);
    }
}

TEST_CASE("protocol codec: record layout is little-endian {type, length, body, pad, crc, 0}") {
    const auto bytes = encode(CheckpointBegin{0x0102030405060708ull});
    auto expected = hex({6, 0, 0, 0, 8, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1});
    append_le32(expected, crc32c(expected));
    append_le32(expected, 0);
    CHECK(bytes == expected);

    // A 5-byte body is padded with three zero bytes, and the CRC covers the padding.
    const auto text = encode(Goodbye{"bye!!"});
    auto padded = hex({12, 0, 0, 0, 5, 0, 0, 0, 'b', 'y', 'e', '!', '!', 0, 0, 0});
    append_le32(padded, crc32c(padded));
    append_le32(padded, 0);
    CHECK(text == padded);

    // page-batch: u32 count, u32 0, pfns, then data.
    const auto pages = encode(sample_pages({0x0A0B0C0D}));
    REQUIRE(pages.size() == 8 + 8 + 8 + 4096 + 8);
    CHECK(std::vector<std::byte>(pages.begin(), pages.begin() + 24) ==
          hex({2, 0, 0, 0, 0x10, 0x10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x0D, 0x0C, 0x0B, 0x0A, 0, 0, 0, 0}));
}

TEST_CASE("protocol codec: stream header layout and round trip") {
    StreamHeader header;
    header.backend = BackendKind::xen;
    header.regions = {{Pfn{0x10}, 0x20}};
    const auto bytes = encode_stream_header(header);
    auto expected = hex({'C', 'O', 'L', 'O', 'R', 'E', 'P', 'L', kStreamVersion, 0, 0, 0, 2, 0, 0, 0, 0, 0x10, 0, 0, 1, 0, 0, 0,
                         0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0});
    append_le32(expected, crc32c(expected));
    append_le32(expected, 0);
    CHECK(bytes == expected);

    MemorySource source(bytes);
    CHECK(read_header(source) == header);
    CHECK(source.at_end());
    for (const StreamHeader& h : {sample_header(), StreamHeader{kStreamVersion, BackendKind::fake, 4096, {{Pfn{0}, 1}}}}) {
        const auto b = encode_stream_header(h);
        MemorySource s(b);
        CHECK(read_header(s) == h);
    }
}

TEST_CASE("protocol codec: the receiver's answer to a stream header: layout, round trip, damage") {
    MemorySink sink;
    write_header_answer(sink, {7, HeaderVerdict::version_differs});
    auto expected = hex({'C', 'O', 'L', 'O', 'A', 'N', 'S', 'R', 7, 0, 0, 0, 1, 0, 0, 0});
    append_le32(expected, crc32c(expected));
    append_le32(expected, 0);
    CHECK(sink.bytes() == expected);
    MemorySource source(sink.bytes());
    CHECK(read_header_answer(source) == HeaderAnswer{7, HeaderVerdict::version_differs});

    auto damaged = expected;
    damaged[8] = std::byte{8};
    MemorySource d(damaged);
    CHECK_THROWS_WITH_AS((void)read_header_answer(d), doctest::Contains("checksum mismatch"), Error);
    auto header = encode_stream_header(sample_header());
    header.resize(kHeaderAnswerBytes);
    MemorySource not_an_answer(header);
    CHECK_THROWS_WITH_AS((void)read_header_answer(not_an_answer), doctest::Contains("bad magic"), Error);
    // An older build's header is named by its version, read from where every version keeps it.
    auto old = encode_stream_header(sample_header());
    old[8] = std::byte{1};
    MemorySource old_source(old);
    try {
        (void)read_header(old_source);
        FAIL("a version-1 header was accepted");
    } catch (const StreamVersionMismatch& e) {
        CHECK(e.peer_version() == 1);
        CHECK(version_mismatch(e.peer_version()) == "peer speaks stream version 1, this is " + std::to_string(kStreamVersion));
    }
}

TEST_CASE("protocol codec: message names") {
    std::vector<std::string> names;
    for (const auto& m : one_of_each_message()) names.push_back(message_name(m));
    CHECK(names == std::vector<std::string>{"guest-config-text", "page-batch", "device-state",
                                            "migration-commit", "enter-colo", "checkpoint-begin",
                                            "checkpoint-end", "checkpoint-loaded", "heartbeat",
                                            "secondary-output", "released-output", "goodbye", "failure", "replication-setup",
                                            "checkpoint-output", "net-ingress", "net-egress", "net-released",
                                            "net-checkpoint", "disk-sync-begin", "disk-hashes", "disk-write",
                                            "disk-checkpoint", "secondary-report"});
}

TEST_CASE("protocol codec: the writer refuses what a reader would refuse") {
    auto bad_size = sample_pages({1, 2});
    bad_size.data.pop_back();
    CHECK(error_of([&] { (void)encode(bad_size); }) ==
          "page-batch: 8191 bytes of data for 2 frames (need 8192)");
    CHECK(error_of([&] { (void)encode(sample_pages({5, 9, 5})); }) ==
          "page-batch: frame 5 appears twice in one batch");
    std::vector<std::uint64_t> many(kMaxPagesPerBatch + 1);
    for (std::size_t i = 0; i < many.size(); ++i) many[i] = i;
    CHECK(error_of([&] { (void)encode(sample_pages(many)); }) == "page-batch: 1025 frames, the limit is 1024");
    CHECK(error_of([&] { (void)encode(sample_pages({colo::protocol::kMaxPfn + 1})); }) ==
          "page-batch: frame 4503599627370496 is beyond the address space");
    CHECK(error_of([&] { (void)encode(GuestConfigText{std::string(kMaxConfigTextBytes + 1, 'a')}); }) ==
          "guest-config-text: text is 65537 bytes, the limit is 65536");
    CHECK(error_of([&] { (void)encode(Failure{std::string("a\0b", 3)}); }) == "failure: text contains a NUL byte");
    CHECK(error_of([&] { (void)encode(SecondaryOutput{UINT64_MAX, pattern_bytes(2, 1)}); }) ==
          "secondary-output: offset 18446744073709551615 plus 2 bytes overflows");
    CHECK(error_of([&] { (void)encode(CheckpointOutput{UINT64_MAX - 1, pattern_bytes(2, 1)}); }) ==
          "checkpoint-output: offset 18446744073709551614 plus 2 bytes overflows");
    CHECK(error_of([&] { (void)encode(CheckpointOutput{0, pattern_bytes(kMaxCheckpointOutputBytes + 1, 1), UINT64_MAX}); }) ==
          "checkpoint-output: 1048577 bytes, the limit is 1048576");
    CHECK(error_of([&] { (void)encode(CheckpointOutput{10, pattern_bytes(3, 1), 12}); }) ==
          "checkpoint-output: offset 10 plus 3 bytes passes its end 12");
    CHECK(error_of([&] { (void)encode(DeviceState{StateRecord{4, 1, std::vector<std::byte>(kMaxDeviceStateBytes + 1)}}); }) ==
          "device-state: state tag 4 is 16777217 bytes, the limit is 16777216");

    StreamHeader header = sample_header();
    header.regions = {{Pfn{10}, 10}, {Pfn{15}, 10}};
    CHECK(error_of([&] { (void)encode_stream_header(header); }) ==
          "stream header: region 1 (first pfn 15, 10 pages) overlaps or precedes the region before it "
          "(regions must be sorted)");
    header.regions = {};
    CHECK(error_of([&] { (void)encode_stream_header(header); }) ==
          "stream header: 0 memory regions (must be 1..1024)");
    header = sample_header();
    header.page_size = 65536;
    CHECK(error_of([&] { (void)encode_stream_header(header); }) ==
          "stream header: page size 65536 is not supported (only 4096)");
}

TEST_CASE("protocol codec: a reader that knows the header refuses frames outside its regions") {
    const auto header = sample_header();  // regions [0,160) [256,0x8000) [0x100000,0x140000)
    for (std::uint64_t ok : {0ull, 159ull, 256ull, 0x7fffull, 0x100000ull, 0x13ffffull}) {
        const auto bytes = encode(sample_pages({ok}));
        MemorySource source(bytes);
        CHECK(read_message(source, header) == Message{sample_pages({ok})});
    }
    for (std::uint64_t bad : {160ull, 255ull, 0x8000ull, 0xfffffull, 0x140000ull}) {
        CAPTURE(bad);
        const auto bytes = encode(sample_pages({1, bad}));
        MemorySource without(bytes);
        CHECK(read_message(without) == Message{sample_pages({1, bad})});  // no layout known: accepted
        MemorySource with(bytes);
        CHECK(error_of([&] { (void)read_message(with, header); }) ==
              "page-batch: frame " + std::to_string(bad) + " is outside the guest's memory regions");
    }
}

TEST_CASE("protocol codec: in-memory streams") {
    MemorySink sink;
    write_message(sink, Heartbeat{1, 2});
    write_message(sink, Heartbeat{3, 4});
    const auto bytes = sink.take();
    CHECK(sink.bytes().empty());
    MemorySource source(bytes);
    CHECK(read_message(source) == Message{Heartbeat{1, 2}});
    CHECK(source.position() == 32);
    CHECK(read_message(source) == Message{Heartbeat{3, 4}});
    CHECK(error_of([&] { (void)read_message(source); }) ==
          "truncated stream: needed 8 bytes at offset 64, only 0 left");
}

TEST_CASE("protocol codec: replication-setup refuses an unknown purpose or flag") {
    auto bytes = encode(ReplicationSetup{ReplicationPurpose::colo, true});
    MemorySource good(bytes);
    CHECK(read_message(good) == Message{ReplicationSetup{ReplicationPurpose::colo, true}});
    CHECK(error_of([&] { (void)encode(ReplicationSetup{static_cast<ReplicationPurpose>(7), true}); }) ==
          "replication-setup: purpose 7 is not 1 (migrate), 2 (colo) or 3 (remus)");
}

TEST_CASE("protocol codec: zero pages cross as a marked frame number, without their 4 KiB") {
    // Frames 10 and 12 all zero, 11 and 13 data (13's last byte only): the order and every byte
    // come back; the record carries only the two data pages.
    PageBatch batch = sample_pages({10, 11, 12, 13});
    std::fill_n(batch.data.begin(), colo::kPageSize, std::byte{0});
    std::fill_n(batch.data.begin() + 2 * colo::kPageSize, colo::kPageSize, std::byte{0});
    std::fill_n(batch.data.begin() + 3 * colo::kPageSize, colo::kPageSize, std::byte{0});
    batch.data[4 * colo::kPageSize - 1] = std::byte{1};
    const auto bytes = encode(Message{batch});
    const auto all_data = encode(Message{sample_pages({10, 11, 12, 13})});
    CHECK(all_data.size() - bytes.size() == 2 * colo::kPageSize);
    MemorySource source(bytes);
    CHECK(read_message(source) == Message{batch});

    SUBCASE("all zero") {
        PageBatch zeros;
        zeros.frames = {Pfn{1}, Pfn{2}, Pfn{3}};
        zeros.data.assign(3 * colo::kPageSize, std::byte{0});
        const auto encoded = encode(Message{zeros});
        MemorySource in(encoded);
        CHECK(read_message(in) == Message{zeros});
        CHECK(encoded.size() < colo::kPageSize);
    }
}

TEST_CASE("protocol codec: a page-batch whose zero marks and body disagree is refused") {
    PageBatch batch = sample_pages({10, 11});
    std::fill_n(batch.data.begin(), colo::kPageSize, std::byte{0});  // frame 10: zero, sent without data
    auto bytes = encode(Message{batch});
    // Clear the zero mark of frame 10 (the top byte of the first frame word, after the 8-byte
    // record header and the batch's 8-byte head): the body now lacks a page its frames promise.
    REQUIRE(bytes[16 + 7] == std::byte{0x80});
    bytes[16 + 7] = std::byte{0};
    // ...and give the record a right CRC (over all but its last 8 bytes), so only the layout is wrong.
    const std::uint32_t crc = crc32c(std::span<const std::byte>(bytes).first(bytes.size() - 8));
    for (int i = 0; i < 4; ++i) bytes[bytes.size() - 8 + i] = static_cast<std::byte>(crc >> (8 * i));
    MemorySource source(bytes);
    CHECK(error_of([&] { (void)read_message(source); }).find("page-batch") != std::string::npos);
}

TEST_CASE("protocol codec: compressed page batches: smaller when the pages compress, plain when they do not, the same pages back") {
    // Compressible: a guest's typical page (a repeating pattern) beside a zero page.
    PageBatch batch;
    batch.frames = {Pfn{1}, Pfn{2}, Pfn{3}};
    batch.data.assign(3 * colo::kPageSize, std::byte{0});
    for (std::size_t i = 0; i < colo::kPageSize; ++i) batch.data[i] = static_cast<std::byte>(i % 16);
    for (std::size_t i = 0; i < colo::kPageSize; ++i) batch.data[2 * colo::kPageSize + i] = static_cast<std::byte>('a' + i % 7);
    std::atomic<std::uint64_t> in{0}, out{0};
    const auto plain = encode(Message{batch});
    const auto packed = encode(Message{batch}, EncodeOptions{true, &in, &out});
    CHECK(packed.size() < plain.size() / 4);
    CHECK(in == 2 * colo::kPageSize);  // the zero page is not page data
    CHECK(out < in);
    CHECK(packed[8 + 4] == std::byte{kPagesCompressed});  // the flags word after the count
    MemorySource source(packed);
    CHECK(read_message(source) == Message{batch});

    SUBCASE("incompressible pages go plain") {
        PageBatch noise = sample_pages({5});
        std::uint64_t x = 88172645463325252ull;
        for (auto& b : noise.data) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b = static_cast<std::byte>(x);
        }
        const auto bytes = encode(Message{noise}, EncodeOptions{true, nullptr, nullptr});
        CHECK(bytes == encode(Message{noise}));
        MemorySource s(bytes);
        CHECK(read_message(s) == Message{noise});
    }
    SUBCASE("a compressed body that is one byte short is refused") {
        std::uint32_t length = 0;  // the record's body length, after its type
        for (int i = 0; i < 4; ++i) length |= static_cast<std::uint32_t>(packed[4 + i]) << (8 * i);
        std::vector<std::byte> body(packed.begin() + 8, packed.begin() + 8 + length - 1);
        std::vector<std::byte> record;
        append_record(record, 2, body);
        MemorySource s(record);
        CHECK(error_of([&] { (void)read_message(s); }) ==
              "page-batch: compressed pages do not expand to the 2 pages announced (corrupt data)");
    }
}
