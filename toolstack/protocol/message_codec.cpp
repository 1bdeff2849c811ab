#include "toolstack/protocol/message_codec.hpp"

#include <lz4.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "backends/error.hpp"
#include "toolstack/protocol/little_endian.hpp"

namespace colo::protocol {

namespace {

template <typename T>
constexpr RecordType type_for() {
    if constexpr (std::is_same_v<T, GuestConfigText>) return RecordType::guest_config_text;
    else if constexpr (std::is_same_v<T, PageBatch>) return RecordType::page_batch;
    else if constexpr (std::is_same_v<T, DeviceState>) return RecordType::device_state;
    else if constexpr (std::is_same_v<T, MigrationCommit>) return RecordType::migration_commit;
    else if constexpr (std::is_same_v<T, EnterColo>) return RecordType::enter_colo;
    else if constexpr (std::is_same_v<T, CheckpointBegin>) return RecordType::checkpoint_begin;
    else if constexpr (std::is_same_v<T, CheckpointEnd>) return RecordType::checkpoint_end;
    else if constexpr (std::is_same_v<T, CheckpointLoaded>) return RecordType::checkpoint_loaded;
    else if constexpr (std::is_same_v<T, Heartbeat>) return RecordType::heartbeat;
    else if constexpr (std::is_same_v<T, SecondaryOutput>) return RecordType::secondary_output;
    else if constexpr (std::is_same_v<T, ReleasedOutput>) return RecordType::released_output;
    else if constexpr (std::is_same_v<T, Goodbye>) return RecordType::goodbye;
    else if constexpr (std::is_same_v<T, ReplicationSetup>) return RecordType::replication_setup;
    else if constexpr (std::is_same_v<T, CheckpointOutput>) return RecordType::checkpoint_output;
    else if constexpr (std::is_same_v<T, NetIngress>) return RecordType::net_ingress;
    else if constexpr (std::is_same_v<T, NetEgress>) return RecordType::net_egress;
    else if constexpr (std::is_same_v<T, NetReleased>) return RecordType::net_released;
    else if constexpr (std::is_same_v<T, NetCheckpoint>) return RecordType::net_checkpoint;
    else if constexpr (std::is_same_v<T, DiskSyncBegin>) return RecordType::disk_sync_begin;
    else if constexpr (std::is_same_v<T, DiskHashes>) return RecordType::disk_hashes;
    else if constexpr (std::is_same_v<T, DiskWrite>) return RecordType::disk_write;
    else if constexpr (std::is_same_v<T, DiskCheckpoint>) return RecordType::disk_checkpoint;
    else if constexpr (std::is_same_v<T, SecondaryReport>) return RecordType::secondary_report;
    else {
        static_assert(std::is_same_v<T, Failure>, "every message needs a record type");
        return RecordType::failure;
    }
}

[[noreturn]] void fail(RecordType type, const std::string& what) {
    throw Error(std::string(record_type_info(type).name) + ": " + what);
}

void check_text(RecordType type, std::string_view text, std::size_t limit) {
    if (text.size() > limit)
        fail(type, "text is " + std::to_string(text.size()) + " bytes, the limit is " + std::to_string(limit));
    if (text.find('\0') != std::string_view::npos) fail(type, "text contains a NUL byte");
}

bool in_regions(Pfn pfn, std::span<const MemoryRegion> regions) {
    // Regions are sorted: the candidate is the last one starting at or before pfn.
    auto after = std::upper_bound(regions.begin(), regions.end(), pfn,
                                  [](Pfn p, const MemoryRegion& r) { return p < r.first; });
    return after != regions.begin() && std::prev(after)->contains(pfn);
}

void validate_pages(const PageBatch& batch, std::span<const MemoryRegion> regions) {
    constexpr RecordType type = RecordType::page_batch;
    if (batch.frames.size() > kMaxPagesPerBatch)
        fail(type, std::to_string(batch.frames.size()) + " frames, the limit is " + std::to_string(kMaxPagesPerBatch));
    if (batch.data.size() != batch.frames.size() * kPageSize)
        fail(type, std::to_string(batch.data.size()) + " bytes of data for " + std::to_string(batch.frames.size()) +
                       " frames (need " + std::to_string(batch.frames.size() * kPageSize) + ")");
    for (const Pfn pfn : batch.frames) {
        if (pfn.value > kMaxPfn) fail(type, "frame " + std::to_string(pfn.value) + " is beyond the address space");
        if (!regions.empty() && !in_regions(pfn, regions))
            fail(type, "frame " + std::to_string(pfn.value) + " is outside the guest's memory regions");
    }
    std::vector<Pfn> sorted(batch.frames);
    std::sort(sorted.begin(), sorted.end());
    if (auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end())
        fail(type, "frame " + std::to_string(dup->value) + " appears twice in one batch");
}

void validate_one(const GuestConfigText& m, std::span<const MemoryRegion>) {
    check_text(RecordType::guest_config_text, m.text, kMaxConfigTextBytes);
}
void validate_one(const PageBatch& m, std::span<const MemoryRegion> regions) { validate_pages(m, regions); }
void validate_one(const DeviceState& m, std::span<const MemoryRegion>) {
    if (m.state.data.size() > kMaxDeviceStateBytes)
        fail(RecordType::device_state, "state tag " + std::to_string(m.state.tag) + " is " +
                                           std::to_string(m.state.data.size()) + " bytes, the limit is " +
                                           std::to_string(kMaxDeviceStateBytes));
}
void validate_one(const SecondaryOutput& m, std::span<const MemoryRegion>) {
    if (m.bytes.size() > kMaxSecondaryOutputBytes)
        fail(RecordType::secondary_output, std::to_string(m.bytes.size()) + " bytes, the limit is " +
                                               std::to_string(kMaxSecondaryOutputBytes));
    if (m.offset > UINT64_MAX - m.bytes.size())
        fail(RecordType::secondary_output, "offset " + std::to_string(m.offset) + " plus " +
                                               std::to_string(m.bytes.size()) + " bytes overflows");
}
void validate_one(const CheckpointOutput& m, std::span<const MemoryRegion>) {
    if (m.bytes.size() > kMaxCheckpointOutputBytes)
        fail(RecordType::checkpoint_output, std::to_string(m.bytes.size()) + " bytes, the limit is " +
                                                std::to_string(kMaxCheckpointOutputBytes));
    if (m.offset > UINT64_MAX - m.bytes.size())
        fail(RecordType::checkpoint_output, "offset " + std::to_string(m.offset) + " plus " +
                                                std::to_string(m.bytes.size()) + " bytes overflows");
    if (m.offset + m.bytes.size() > m.end)
        fail(RecordType::checkpoint_output, "offset " + std::to_string(m.offset) + " plus " +
                                                std::to_string(m.bytes.size()) + " bytes passes its end " +
                                                std::to_string(m.end));
}
void check_frame(RecordType type, std::span<const std::byte> frame) {
    if (frame.empty()) fail(type, "empty frame");
    if (frame.size() > kMaxNetFrameBytes)
        fail(type, "frame of " + std::to_string(frame.size()) + " bytes, the limit is " + std::to_string(kMaxNetFrameBytes));
}
void validate_one(const NetIngress& m, std::span<const MemoryRegion>) {
    if (m.index == 0) fail(RecordType::net_ingress, "frame index 0 (indices count from 1)");
    check_frame(RecordType::net_ingress, m.frame);
}
void validate_one(const NetEgress& m, std::span<const MemoryRegion>) {
    if (m.index == 0) fail(RecordType::net_egress, "frame index 0 (indices count from 1)");
    check_frame(RecordType::net_egress, m.frame);
}
void check_beyond(std::uint64_t through, std::span<const std::uint64_t> beyond, const char* side) {
    if (beyond.size() > kMaxNetReleasedIndices)
        fail(RecordType::net_released, std::to_string(beyond.size()) + " " + side + " indices, the limit is " +
                                           std::to_string(kMaxNetReleasedIndices));
    std::uint64_t last = through;
    for (const std::uint64_t index : beyond) {
        if (index <= last)
            fail(RecordType::net_released, std::string(side) + " index " + std::to_string(index) +
                                               " is not above " + std::to_string(last) + " (watermark, then ascending)");
        last = index;
    }
}
void validate_one(const NetReleased& m, std::span<const MemoryRegion>) {
    check_beyond(m.pvm_through, m.pvm_beyond, "pvm");
    check_beyond(m.svm_through, m.svm_beyond, "svm");
}
void validate_one(const NetCheckpoint& m, std::span<const MemoryRegion>) {
    constexpr RecordType type = RecordType::net_checkpoint;
    if (m.held.size() > m.held_total)
        fail(type, std::to_string(m.held.size()) + " held frames in a piece of " + std::to_string(m.held_total));
    std::size_t bytes = 32;
    std::uint64_t last = 0;
    for (const HeldFrame& held : m.held) {
        check_frame(type, held.frame);
        if (held.index == 0 || held.index <= last || held.index >= m.egress_end)
            fail(type, "held frame index " + std::to_string(held.index) + " is not ascending below egress end " +
                           std::to_string(m.egress_end));
        last = held.index;
        bytes += 12 + held.frame.size();
    }
    if (bytes > kMaxNetCheckpointBytes)
        fail(type, std::to_string(bytes) + " bytes, the limit is " + std::to_string(kMaxNetCheckpointBytes));
}
void check_sectors(RecordType type, const char* what, std::uint64_t value) {
    if (value % kSectorBytes != 0)
        fail(type, std::string(what) + " " + std::to_string(value) + " is not a multiple of " + std::to_string(kSectorBytes));
}
void validate_one(const DiskSyncBegin& m, std::span<const MemoryRegion>) {
    constexpr RecordType type = RecordType::disk_sync_begin;
    if (m.block_bytes < kMinDiskBlockBytes || m.block_bytes > kMaxDiskBlockBytes || (m.block_bytes & (m.block_bytes - 1)) != 0)
        fail(type, "block size " + std::to_string(m.block_bytes) + " is not a power of two from " +
                       std::to_string(kMinDiskBlockBytes) + " to " + std::to_string(kMaxDiskBlockBytes));
    check_sectors(type, "size", m.size_bytes);
}
void validate_one(const DiskHashes& m, std::span<const MemoryRegion>) {
    constexpr RecordType type = RecordType::disk_hashes;
    if (m.hashes.size() % kDiskHashBytes != 0)
        fail(type, std::to_string(m.hashes.size()) + " bytes of hashes is not a whole number of " +
                       std::to_string(kDiskHashBytes) + "-byte hashes");
    const std::uint64_t count = m.hashes.size() / kDiskHashBytes;
    if (count > kMaxDiskHashesPerRecord)
        fail(type, std::to_string(count) + " hashes, the limit is " + std::to_string(kMaxDiskHashesPerRecord));
    if (m.first_block > m.blocks_total || count > m.blocks_total - m.first_block)
        fail(type, "blocks " + std::to_string(m.first_block) + " + " + std::to_string(count) + " pass the total " +
                       std::to_string(m.blocks_total));
}
void validate_one(const DiskWrite& m, std::span<const MemoryRegion>) {
    constexpr RecordType type = RecordType::disk_write;
    if (m.index == 0) fail(type, "write index 0 (indices count from 1)");
    check_sectors(type, "offset", m.offset);
    check_sectors(type, "length", m.length);
    if (m.length == 0) fail(type, "length 0");
    if (!m.data.empty() && m.data.size() != m.length)
        fail(type, std::to_string(m.data.size()) + " bytes of data for length " + std::to_string(m.length));
    if (m.data.size() > kMaxDiskWriteBytes)
        fail(type, std::to_string(m.data.size()) + " bytes of data, the limit is " + std::to_string(kMaxDiskWriteBytes));
    if (m.offset + m.length < m.offset) fail(type, "offset " + std::to_string(m.offset) + " plus length overflows");
}
void validate_one(const ReplicationSetup& m, std::span<const MemoryRegion>) {
    const auto purpose = static_cast<std::uint32_t>(m.purpose);
    if (purpose < 1 || purpose > 3)
        fail(RecordType::replication_setup, "purpose " + std::to_string(purpose) + " is not 1 (migrate), 2 (colo) or 3 (remus)");
}
void validate_one(const Goodbye& m, std::span<const MemoryRegion>) {
    check_text(RecordType::goodbye, m.reason, kMaxReasonBytes);
}
void validate_one(const Failure& m, std::span<const MemoryRegion>) {
    check_text(RecordType::failure, m.message, kMaxReasonBytes);
}
// Counters and offsets: every value is meaningful; the pipeline checks them against its state.
template <typename T>
void validate_one(const T&, std::span<const MemoryRegion>) {}

void append_bytes(std::vector<std::byte>& out, std::span<const std::byte> bytes) {
    out.insert(out.end(), bytes.begin(), bytes.end());
}
void append_text(std::vector<std::byte>& out, std::string_view text) {
    for (char c : text) out.push_back(static_cast<std::byte>(c));
}

void encode_body(std::vector<std::byte>& out, const GuestConfigText& m) { append_text(out, m.text); }
bool all_zero(std::span<const std::byte> page) {
    static const std::array<std::byte, kPageSize> zero{};
    return std::memcmp(page.data(), zero.data(), kPageSize) == 0;
}

void encode_page_batch(std::vector<std::byte>& out, const PageBatch& m, const EncodeOptions& options) {
    append_u32(out, static_cast<std::uint32_t>(m.frames.size()));
    const std::size_t flags_at = out.size();
    append_u32(out, 0);
    const std::span<const std::byte> data(m.data);
    const auto page = [&](std::size_t i) { return data.subspan(i * kPageSize, kPageSize); };
    std::vector<bool> zero(m.frames.size());
    for (std::size_t i = 0; i < m.frames.size(); ++i) {
        zero[i] = all_zero(page(i));
        append_u64(out, m.frames[i].value | (zero[i] ? kZeroPageBit : 0));
    }
    const std::size_t pages_at = out.size();
    for (std::size_t i = 0; i < m.frames.size(); ++i) {
        if (!zero[i]) append_bytes(out, page(i));
    }
    const std::size_t raw = out.size() - pages_at;
    if (options.page_bytes_in) *options.page_bytes_in += raw;
    if (options.compress_pages && raw != 0) {
        // Compressed into a buffer kept per thread, then over the raw pages: only when smaller.
        thread_local std::vector<char> packed;
        packed.resize(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(raw))));
        const int n = LZ4_compress_default(reinterpret_cast<const char*>(out.data() + pages_at), packed.data(),
                                           static_cast<int>(raw), static_cast<int>(packed.size()));
        if (n > 0 && static_cast<std::size_t>(n) < raw) {
            out.resize(pages_at);
            const auto* bytes = reinterpret_cast<const std::byte*>(packed.data());
            out.insert(out.end(), bytes, bytes + n);
            put_u32(out, flags_at, kPagesCompressed);
            if (options.page_bytes_out) *options.page_bytes_out += static_cast<std::uint64_t>(n);
            return;
        }
    }
    if (options.page_bytes_out) *options.page_bytes_out += raw;
}
void encode_body(std::vector<std::byte>& out, const DeviceState& m) {
    append_u32(out, m.state.tag);
    append_u32(out, m.state.version);
    append_bytes(out, m.state.data);
}
void encode_body(std::vector<std::byte>& out, const MigrationCommit& m) { append_u64(out, m.pages_total); }
void encode_body(std::vector<std::byte>& out, const EnterColo& m) { append_u64(out, m.epoch); }
void encode_body(std::vector<std::byte>& out, const CheckpointBegin& m) { append_u64(out, m.epoch); }
void encode_body(std::vector<std::byte>& out, const CheckpointEnd& m) {
    append_u64(out, m.epoch);
    append_u64(out, m.pages);
    append_u32(out, m.state_records);
    append_u32(out, m.device_records);
}
void encode_body(std::vector<std::byte>& out, const CheckpointLoaded& m) { append_u64(out, m.epoch); }
void encode_body(std::vector<std::byte>& out, const SecondaryReport& m) {
    for (const std::uint64_t value : {m.epoch, m.checkpoints_applied, m.pause_p50_us, m.pause_p99_us, m.pause_max_us, m.pages_received})
        append_u64(out, value);
}
void encode_body(std::vector<std::byte>& out, const Heartbeat& m) {
    append_u64(out, m.sequence);
    append_u64(out, m.sent_ns);
}
void encode_body(std::vector<std::byte>& out, const SecondaryOutput& m) {
    append_u64(out, m.offset);
    append_bytes(out, m.bytes);
}
void encode_body(std::vector<std::byte>& out, const CheckpointOutput& m) {
    append_u64(out, m.offset);
    append_u64(out, m.end);
    append_bytes(out, m.bytes);
}
void encode_body(std::vector<std::byte>& out, const ReleasedOutput& m) { append_u64(out, m.offset); }
void encode_frame(std::vector<std::byte>& out, std::uint32_t nic, std::uint64_t index, std::span<const std::byte> frame) {
    append_u32(out, nic);
    append_u32(out, 0);
    append_u64(out, index);
    append_bytes(out, frame);
}
void encode_body(std::vector<std::byte>& out, const NetIngress& m) { encode_frame(out, m.nic, m.index, m.frame); }
void encode_body(std::vector<std::byte>& out, const NetEgress& m) { encode_frame(out, m.nic, m.index, m.frame); }
void encode_body(std::vector<std::byte>& out, const NetReleased& m) {
    append_u32(out, m.nic);
    append_u32(out, 0);
    append_u64(out, m.pvm_through);
    append_u64(out, m.svm_through);
    append_u32(out, static_cast<std::uint32_t>(m.pvm_beyond.size()));
    append_u32(out, static_cast<std::uint32_t>(m.svm_beyond.size()));
    for (const std::uint64_t index : m.pvm_beyond) append_u64(out, index);
    for (const std::uint64_t index : m.svm_beyond) append_u64(out, index);
}
void encode_body(std::vector<std::byte>& out, const NetCheckpoint& m) {
    append_u32(out, m.nic);
    append_u32(out, m.held_total);
    append_u64(out, m.ingress_through);
    append_u64(out, m.egress_end);
    append_u32(out, static_cast<std::uint32_t>(m.held.size()));
    append_u32(out, 0);
    for (const HeldFrame& held : m.held) {
        append_u64(out, held.index);
        append_u32(out, static_cast<std::uint32_t>(held.frame.size()));
        append_bytes(out, held.frame);
    }
}
void encode_body(std::vector<std::byte>& out, const DiskSyncBegin& m) {
    append_u32(out, m.disk);
    append_u32(out, m.block_bytes);
    append_u64(out, m.size_bytes);
}
void encode_body(std::vector<std::byte>& out, const DiskHashes& m) {
    append_u32(out, m.disk);
    append_u32(out, static_cast<std::uint32_t>(m.hashes.size() / kDiskHashBytes));
    append_u64(out, m.first_block);
    append_u64(out, m.blocks_total);
    append_bytes(out, m.hashes);
}
void encode_body(std::vector<std::byte>& out, const DiskWrite& m) {
    append_u32(out, m.disk);
    append_u32(out, m.data.empty() ? 1 : 0);  // flags: bit 0, zeros (no data)
    append_u64(out, m.index);
    append_u64(out, m.offset);
    append_u64(out, m.length);
    append_bytes(out, m.data);
}
void encode_body(std::vector<std::byte>& out, const DiskCheckpoint& m) {
    append_u32(out, m.disk);
    append_u32(out, m.flushed ? 1 : 0);
    append_u64(out, m.writes_through);
}
void encode_body(std::vector<std::byte>& out, const Goodbye& m) { append_text(out, m.reason); }
void encode_body(std::vector<std::byte>& out, const Failure& m) { append_text(out, m.message); }
void encode_body(std::vector<std::byte>& out, const ReplicationSetup& m) {
    append_u32(out, static_cast<std::uint32_t>(m.purpose));
    append_u32(out, m.cache_backup ? 1 : 0);
}

// Decoding: `body` has passed the length limit and CRC; the layout is checked here.
class BodyDecoder {
public:
    BodyDecoder(RecordType type, std::span<const std::byte> body)
        : type_(type), body_(body), in_(body, record_type_info(type).name) {}

    void expect_size(std::size_t size) const {
        if (body_.size() != size)
            fail(type_, "body is " + std::to_string(body_.size()) + " bytes, expected " + std::to_string(size));
    }
    std::uint32_t u32() { return in_.u32(); }
    std::uint64_t u64() { return in_.u64(); }
    void reserved32() {
        if (const std::uint32_t v = in_.u32(); v != 0) fail(type_, "reserved field is " + std::to_string(v) + ", must be 0");
    }
    std::vector<std::byte> take(std::size_t count) {
        const auto bytes = in_.bytes(count);
        return {bytes.begin(), bytes.end()};
    }
    std::size_t remaining() const { return in_.remaining(); }
    std::vector<std::byte> rest() {
        const auto bytes = in_.bytes(in_.remaining());
        return {bytes.begin(), bytes.end()};
    }
    std::string rest_text() {
        const auto bytes = in_.bytes(in_.remaining());
        return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    }
    std::size_t size() const noexcept { return body_.size(); }

private:
    RecordType type_;
    std::span<const std::byte> body_;
    LittleEndianReader in_;
};

// Takes the body by value: a page batch's data is the tail of its body, and moving the body
// (then dropping its head) spares a page batch a second multi-megabyte buffer.
// A page batch whose non-zero pages came LZ4-compressed: they must expand to exactly their size
// (LZ4_decompress_safe never writes past the buffer, whatever the bytes).
PageBatch expand_page_batch(RecordType type, PageBatch batch, const std::vector<bool>& zero, std::size_t zeros,
                            std::vector<std::byte> packed) {
    const std::size_t n = batch.frames.size();
    const std::size_t raw = (n - zeros) * kPageSize;
    if (raw == 0) fail(type, "compressed, but every page is a zero page");
    std::vector<std::byte> pages(raw);
    const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(packed.data()), reinterpret_cast<char*>(pages.data()),
                                        static_cast<int>(packed.size()), static_cast<int>(raw));
    if (got < 0 || static_cast<std::size_t>(got) != raw) {
        fail(type, "compressed pages do not expand to the " + std::to_string(n - zeros) + " pages announced (corrupt data)");
    }
    batch.data.assign(n * kPageSize, std::byte{0});
    std::size_t from = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (zero[i]) continue;
        std::memcpy(batch.data.data() + i * kPageSize, pages.data() + from * kPageSize, kPageSize);
        ++from;
    }
    return batch;
}

Message decode_body(RecordType type, std::vector<std::byte> body) {
    BodyDecoder in(type, body);
    switch (type) {
        case RecordType::guest_config_text: return GuestConfigText{in.rest_text()};
        case RecordType::page_batch: {
            const std::uint32_t n = in.u32();
            const std::uint32_t flags = in.u32();
            if ((flags & ~kPagesCompressed) != 0) fail(type, "unknown flags " + std::to_string(flags));
            if (n > kMaxPagesPerBatch)
                fail(type, std::to_string(n) + " frames, the limit is " + std::to_string(kMaxPagesPerBatch));
            if (in.remaining() < std::size_t{n} * 8)
                fail(type, "body is " + std::to_string(in.size()) + " bytes, too short for " + std::to_string(n) + " frames");
            PageBatch batch;
            batch.frames.reserve(n);
            std::vector<bool> zero(n);
            std::size_t zeros = 0;
            for (std::uint32_t i = 0; i < n; ++i) {
                const std::uint64_t word = in.u64();
                zero[i] = (word & kZeroPageBit) != 0;
                zeros += zero[i] ? 1 : 0;
                batch.frames.push_back(Pfn{word & ~kZeroPageBit});
            }
            if ((flags & kPagesCompressed) != 0) return expand_page_batch(type, std::move(batch), zero, zeros, in.rest());
            in.expect_size(8 + std::size_t{n} * 8 + (n - zeros) * kPageSize);
            // The pages that came go to their places, from the last one back (none moves down
            // over one not yet moved); the zero pages between them are cleared.
            batch.data = std::move(body);
            batch.data.erase(batch.data.begin(), batch.data.begin() + 8 + 8 * std::ptrdiff_t{n});
            batch.data.resize(std::size_t{n} * kPageSize);
            std::size_t from = n - zeros;
            for (std::size_t i = n; i-- > 0;) {
                std::byte* to = batch.data.data() + i * kPageSize;
                if (zero[i]) {
                    std::memset(to, 0, kPageSize);
                } else if (--from != i) {
                    std::memmove(to, batch.data.data() + from * kPageSize, kPageSize);
                }
            }
            return batch;
        }
        case RecordType::device_state: {
            DeviceState state;
            state.state.tag = in.u32();
            state.state.version = in.u32();
            state.state.data = in.rest();
            return state;
        }
        case RecordType::migration_commit: in.expect_size(8); return MigrationCommit{in.u64()};
        case RecordType::enter_colo: in.expect_size(8); return EnterColo{in.u64()};
        case RecordType::checkpoint_begin: in.expect_size(8); return CheckpointBegin{in.u64()};
        case RecordType::checkpoint_end: {
            in.expect_size(24);
            CheckpointEnd end;
            end.epoch = in.u64();
            end.pages = in.u64();
            end.state_records = in.u32();
            end.device_records = in.u32();
            return end;
        }
        case RecordType::checkpoint_loaded: in.expect_size(8); return CheckpointLoaded{in.u64()};
        case RecordType::heartbeat: {
            in.expect_size(16);
            Heartbeat beat;
            beat.sequence = in.u64();
            beat.sent_ns = in.u64();
            return beat;
        }
        case RecordType::secondary_output: {
            SecondaryOutput output;
            output.offset = in.u64();
            output.bytes = in.rest();
            return output;
        }
        case RecordType::checkpoint_output: {
            CheckpointOutput output;
            output.offset = in.u64();
            output.end = in.u64();
            output.bytes = in.rest();
            return output;
        }
        case RecordType::released_output: in.expect_size(8); return ReleasedOutput{in.u64()};
        case RecordType::net_ingress:
        case RecordType::net_egress: {
            const std::uint32_t nic = in.u32();
            in.reserved32();
            const std::uint64_t index = in.u64();
            if (type == RecordType::net_ingress) return NetIngress{nic, index, in.rest()};
            return NetEgress{nic, index, in.rest()};
        }
        case RecordType::net_released: {
            NetReleased released;
            released.nic = in.u32();
            in.reserved32();
            released.pvm_through = in.u64();
            released.svm_through = in.u64();
            const std::uint32_t pvm = in.u32();
            const std::uint32_t svm = in.u32();
            if (pvm > kMaxNetReleasedIndices || svm > kMaxNetReleasedIndices)
                fail(type, std::to_string(std::max(pvm, svm)) + " indices, the limit is " +
                               std::to_string(kMaxNetReleasedIndices));
            in.expect_size(32 + 8 * (std::size_t{pvm} + svm));
            for (std::uint32_t i = 0; i < pvm; ++i) released.pvm_beyond.push_back(in.u64());
            for (std::uint32_t i = 0; i < svm; ++i) released.svm_beyond.push_back(in.u64());
            return released;
        }
        case RecordType::net_checkpoint: {
            NetCheckpoint checkpoint;
            checkpoint.nic = in.u32();
            checkpoint.held_total = in.u32();
            checkpoint.ingress_through = in.u64();
            checkpoint.egress_end = in.u64();
            const std::uint32_t count = in.u32();
            in.reserved32();
            // Each held frame takes at least 13 bytes: a count past what the body can hold is a lie.
            if (count > in.remaining() / 13) fail(type, std::to_string(count) + " held frames cannot fit in its body");
            for (std::uint32_t i = 0; i < count; ++i) {
                HeldFrame held;
                held.index = in.u64();
                const std::uint32_t size = in.u32();
                if (size > kMaxNetFrameBytes)
                    fail(type, "frame of " + std::to_string(size) + " bytes, the limit is " + std::to_string(kMaxNetFrameBytes));
                held.frame = in.take(size);
                checkpoint.held.push_back(std::move(held));
            }
            if (in.remaining() != 0) fail(type, std::to_string(in.remaining()) + " bytes after the last held frame");
            return checkpoint;
        }
        case RecordType::disk_sync_begin: {
            in.expect_size(16);
            DiskSyncBegin begin;
            begin.disk = in.u32();
            begin.block_bytes = in.u32();
            begin.size_bytes = in.u64();
            return begin;
        }
        case RecordType::disk_hashes: {
            DiskHashes hashes;
            hashes.disk = in.u32();
            const std::uint32_t count = in.u32();
            if (count > kMaxDiskHashesPerRecord)
                fail(type, std::to_string(count) + " hashes, the limit is " + std::to_string(kMaxDiskHashesPerRecord));
            in.expect_size(24 + std::size_t{count} * kDiskHashBytes);
            hashes.first_block = in.u64();
            hashes.blocks_total = in.u64();
            hashes.hashes = in.rest();
            return hashes;
        }
        case RecordType::disk_write: {
            DiskWrite write;
            write.disk = in.u32();
            const std::uint32_t flags = in.u32();
            if ((flags & ~1U) != 0) fail(type, "unknown flags " + std::to_string(flags));
            write.index = in.u64();
            write.offset = in.u64();
            write.length = in.u64();
            write.data = in.rest();
            if ((flags & 1U) != 0 && !write.data.empty()) fail(type, "a write of zeros carries data");
            if ((flags & 1U) == 0 && write.data.empty()) fail(type, "a write without data is not marked as zeros");
            return write;
        }
        case RecordType::disk_checkpoint: {
            in.expect_size(16);
            DiskCheckpoint checkpoint;
            checkpoint.disk = in.u32();
            const std::uint32_t flags = in.u32();
            if ((flags & ~1U) != 0) fail(type, "unknown flags " + std::to_string(flags));
            checkpoint.flushed = (flags & 1U) != 0;
            checkpoint.writes_through = in.u64();
            return checkpoint;
        }
        case RecordType::secondary_report: {
            in.expect_size(48);
            SecondaryReport report;
            for (std::uint64_t* value : {&report.epoch, &report.checkpoints_applied, &report.pause_p50_us,
                                         &report.pause_p99_us, &report.pause_max_us, &report.pages_received})
                *value = in.u64();
            return report;
        }
        case RecordType::goodbye: return Goodbye{in.rest_text()};
        case RecordType::failure: return Failure{in.rest_text()};
        case RecordType::replication_setup: {
            in.expect_size(8);
            ReplicationSetup setup;
            setup.purpose = static_cast<ReplicationPurpose>(in.u32());
            const std::uint32_t flags = in.u32();
            if ((flags & ~1U) != 0) fail(type, "unknown flags " + std::to_string(flags));
            setup.cache_backup = (flags & 1U) != 0;
            return setup;
        }
    }
    throw Error("record type " + std::to_string(static_cast<std::uint32_t>(type)) + " has no decoder");
}

}  // namespace

RecordType record_type_of(const Message& message) noexcept {
    return std::visit([](const auto& m) { return type_for<std::decay_t<decltype(m)>>(); }, message);
}

const char* message_name(const Message& message) {
    return record_type_info(record_type_of(message)).name;
}

void validate_message(const Message& message, std::span<const MemoryRegion> regions) {
    std::visit([&](const auto& m) { validate_one(m, regions); }, message);
}

void encode_into(std::vector<std::byte>& out, const Message& message, const EncodeOptions& options) {
    validate_message(message);
    RecordWriter writer(out, static_cast<std::uint32_t>(record_type_of(message)));
    std::visit(
        [&](const auto& m) {
            if constexpr (std::is_same_v<std::decay_t<decltype(m)>, PageBatch>) {
                encode_page_batch(out, m, options);
            } else {
                encode_body(out, m);
            }
        },
        message);
    writer.finish();
}

std::vector<std::byte> encode(const Message& message, const EncodeOptions& options) {
    std::vector<std::byte> out;
    encode_into(out, message, options);
    return out;
}

void write_message(ByteSink& sink, const Message& message, const EncodeOptions& options) {
    // One encoding buffer a thread, kept between messages: a page batch is a megabyte, and a
    // fresh allocation of that size is a fresh mmap whose every page faults in and is cleared
    // again (that was a third of the sender's time in a full migration pass).
    constexpr std::size_t kKeepCapacity = 8 * 1024 * 1024;
    thread_local std::vector<std::byte> buffer;
    buffer.clear();
    encode_into(buffer, message, options);
    sink.write_all(buffer);
    if (buffer.capacity() > kKeepCapacity) buffer = std::vector<std::byte>();
}

Message decode(Record record, std::span<const MemoryRegion> regions) {
    if (find_record_type(record.type) == nullptr)
        throw Error("record type " + record_type_name(record.type) + " is not known to this build");
    Message message = decode_body(static_cast<RecordType>(record.type), std::move(record.body));
    validate_message(message, regions);
    return message;
}

Message read_message(ByteSource& source) {
    return decode(read_record(source));
}

Message read_message(ByteSource& source, const StreamHeader& header) {
    return decode(read_record(source), header.regions);
}

}  // namespace colo::protocol
