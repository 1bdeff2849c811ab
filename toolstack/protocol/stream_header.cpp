#include "toolstack/protocol/stream_header.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

#include "backends/error.hpp"
#include "toolstack/protocol/crc32c.hpp"
#include "toolstack/protocol/little_endian.hpp"
#include "toolstack/protocol/record_types.hpp"

namespace colo::protocol {

namespace {

bool known_backend(std::uint32_t kind) {
    switch (static_cast<BackendKind>(kind)) {
        case BackendKind::fake:
        case BackendKind::kvm:
        case BackendKind::xen: return true;
    }
    return false;
}

std::string hex32(std::uint32_t v) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", v);
    return text;
}

void check_version(std::uint32_t version) {
    if (version != kStreamVersion)
        throw StreamVersionMismatch(version, "stream version " + std::to_string(version) +
                                                 " is not supported (this build speaks " +
                                                 std::to_string(kStreamVersion) + ")");
}

bool has_magic(std::span<const std::byte> bytes, const std::array<char, 8>& magic) {
    return std::equal(magic.begin(), magic.end(), bytes.begin(),
                      [](char c, std::byte b) { return static_cast<std::byte>(c) == b; });
}

void check_page_size(std::uint32_t page_size) {
    if (page_size != kPageSize)
        throw Error("stream header: page size " + std::to_string(page_size) + " is not supported (only " +
                    std::to_string(kPageSize) + ")");
}

void check_region_count(std::uint64_t count) {
    if (count == 0 || count > kMaxStreamRegions)
        throw Error("stream header: " + std::to_string(count) + " memory regions (must be 1.." +
                    std::to_string(kMaxStreamRegions) + ")");
}

}  // namespace

std::string version_mismatch(std::uint32_t peer_version) {
    return "peer speaks stream version " + std::to_string(peer_version) + ", this is " +
           std::to_string(kStreamVersion);
}

void write_header_answer(ByteSink& sink, const HeaderAnswer& answer) {
    std::vector<std::byte> out;
    out.reserve(kHeaderAnswerBytes);
    for (char c : kAnswerMagic) out.push_back(static_cast<std::byte>(c));
    append_u32(out, answer.version);
    append_u32(out, static_cast<std::uint32_t>(answer.verdict));
    append_u32(out, crc32c(out));
    append_u32(out, 0);
    sink.write_all(out);
}

HeaderAnswer read_header_answer(ByteSource& source) {
    std::vector<std::byte> bytes(kHeaderAnswerBytes);
    source.read_exact(bytes);
    if (!has_magic(bytes, kAnswerMagic)) throw Error("the peer's answer to the stream header is not ours (bad magic)");
    LittleEndianReader reader{std::span(bytes).subspan(kAnswerMagic.size()), "stream header answer"};
    HeaderAnswer answer;
    answer.version = reader.u32();
    const std::uint32_t verdict = reader.u32();
    const std::uint32_t stored = reader.u32();
    if (const std::uint32_t computed = crc32c(std::span(bytes).first(16)); stored != computed)
        throw Error("stream header answer: checksum mismatch (stored " + hex32(stored) + ", computed " +
                    hex32(computed) + ")");
    if (const std::uint32_t reserved = reader.u32(); reserved != 0)
        throw Error("stream header answer: reserved field is " + hex32(reserved) + ", must be 0");
    if (verdict > static_cast<std::uint32_t>(HeaderVerdict::tls_required))
        throw Error("stream header answer: unknown verdict " + std::to_string(verdict));
    answer.verdict = static_cast<HeaderVerdict>(verdict);
    return answer;
}

void validate_stream_header(const StreamHeader& header) {
    check_version(header.version);
    if (!known_backend(static_cast<std::uint32_t>(header.backend)))
        throw Error("stream header: unknown backend kind " + std::to_string(static_cast<std::uint32_t>(header.backend)));
    check_page_size(header.page_size);
    check_region_count(header.regions.size());
    for (std::size_t i = 0; i < header.regions.size(); ++i) {
        const MemoryRegion& r = header.regions[i];
        const std::string which = "stream header: region " + std::to_string(i) + " (first pfn " +
                                  std::to_string(r.first.value) + ", " + std::to_string(r.pages) + " pages)";
        if (r.pages == 0) throw Error(which + " is empty");
        if (r.first.value > kMaxPfn || r.pages > kMaxPfn + 1 - r.first.value)
            throw Error(which + " extends past the 64-bit guest-physical address space");
        if (i > 0 && r.first < header.regions[i - 1].end())
            throw Error(which + " overlaps or precedes the region before it (regions must be sorted)");
    }
}

std::vector<std::byte> encode_stream_header(const StreamHeader& header) {
    validate_stream_header(header);
    std::vector<std::byte> out;
    out.reserve(kStreamHeaderFixedBytes + 16 * header.regions.size() + 8);
    for (char c : kStreamMagic) out.push_back(static_cast<std::byte>(c));
    append_u32(out, header.version);
    append_u32(out, static_cast<std::uint32_t>(header.backend));
    append_u32(out, header.page_size);
    append_u32(out, static_cast<std::uint32_t>(header.regions.size()));
    for (const MemoryRegion& r : header.regions) {
        append_u64(out, r.first.value);
        append_u64(out, r.pages);
    }
    append_u32(out, crc32c(out));
    append_u32(out, 0);
    return out;
}

void write_header(ByteSink& sink, const StreamHeader& header) {
    sink.write_all(encode_stream_header(header));
}

bool may_start_stream_header(std::span<const std::byte> bytes) {
    const std::size_t n = std::min(bytes.size(), kStreamMagic.size());
    return std::equal(kStreamMagic.begin(), kStreamMagic.begin() + static_cast<std::ptrdiff_t>(n), bytes.begin(),
                      [](char c, std::byte b) { return static_cast<std::byte>(c) == b; });
}

std::size_t stream_header_length(std::span<const std::byte> bytes) {
    if (bytes.size() < kStreamHeaderFixedBytes || !has_magic(bytes, kStreamMagic))
        throw Error("not a colo-replicate stream (bad magic)");
    LittleEndianReader fixed{bytes.subspan(kStreamMagic.size(), kStreamHeaderFixedBytes - kStreamMagic.size()),
                             "stream header"};
    check_version(fixed.u32());
    const std::uint32_t backend = fixed.u32();
    if (!known_backend(backend)) throw Error("stream header: unknown backend kind " + std::to_string(backend));
    check_page_size(fixed.u32());
    const std::uint32_t count = fixed.u32();
    check_region_count(count);
    return kStreamHeaderFixedBytes + 16 * std::size_t{count} + 8;
}

StreamHeader read_header(ByteSource& source) {
    std::vector<std::byte> bytes(kStreamHeaderFixedBytes);
    source.read_exact(bytes);
    const std::size_t length = stream_header_length(bytes);
    LittleEndianReader fixed{std::span(bytes).subspan(kStreamMagic.size()), "stream header"};
    StreamHeader header;
    header.version = fixed.u32();
    header.backend = static_cast<BackendKind>(fixed.u32());
    header.page_size = fixed.u32();
    const std::uint32_t count = fixed.u32();

    bytes.resize(length);
    source.read_exact(std::span(bytes).subspan(kStreamHeaderFixedBytes));
    const std::size_t covered = bytes.size() - 8;
    LittleEndianReader rest{std::span(bytes).subspan(kStreamHeaderFixedBytes), "stream header"};
    header.regions.resize(count);
    for (MemoryRegion& r : header.regions) {
        r.first = Pfn{rest.u64()};
        r.pages = rest.u64();
    }
    const std::uint32_t stored = rest.u32();
    const std::uint32_t computed = crc32c(std::span(bytes).first(covered));
    if (stored != computed)
        throw Error("stream header: checksum mismatch (stored " + hex32(stored) + ", computed " +
                    hex32(computed) + ")");
    if (const std::uint32_t reserved = rest.u32(); reserved != 0)
        throw Error("stream header: reserved field is " + hex32(reserved) + ", must be 0");
    validate_stream_header(header);
    return header;
}

}  // namespace colo::protocol
