#include "toolstack/protocol/record.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>

#include "backends/error.hpp"
#include "toolstack/protocol/crc32c.hpp"
#include "toolstack/protocol/little_endian.hpp"
#include "toolstack/protocol/record_types.hpp"

namespace colo::protocol {

namespace {

// Bodies are read in pieces of this size; large ones grow their buffer only as data arrives.
constexpr std::size_t kReadChunk = 1024 * 1024;
constexpr std::size_t kExactReserve = 8 * 1024 * 1024;

std::string hex32(std::uint32_t v) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", v);
    return text;
}

std::uint32_t limit_for(std::uint32_t type) {
    const RecordTypeInfo* info = find_record_type(type);
    return info ? info->max_body : kMaxRecordBody;
}

void check_length(std::uint32_t type, std::size_t length) {
    const std::uint32_t limit = limit_for(type);
    if (length > limit)
        throw Error("record " + record_type_name(type) + ": body length " + std::to_string(length) +
                    " exceeds the limit of " + std::to_string(limit) + " bytes");
}

void check_trailer(std::uint32_t type, std::span<const std::byte, kRecordTrailerBytes> trailer,
                   std::uint32_t computed) {
    const std::uint32_t stored = load_u32(trailer.first<4>());
    if (stored != computed)
        throw Error("record " + record_type_name(type) + ": checksum mismatch (stored " + hex32(stored) +
                    ", computed " + hex32(computed) + ")");
    const std::uint32_t reserved = load_u32(trailer.last<4>());
    if (reserved != 0)
        throw Error("record " + record_type_name(type) + ": reserved trailer field is " + hex32(reserved) +
                    ", must be 0");
}

// Reads and checks a record this build does not know; its body is never kept.
void skip_optional(ByteSource& source, std::uint32_t type, std::uint32_t length, std::uint32_t crc) {
    std::vector<std::byte> chunk(std::min<std::size_t>(padded_body_length(length), 64 * 1024));
    std::size_t left = padded_body_length(length);
    while (left > 0) {
        const std::span<std::byte> part(chunk.data(), std::min(left, chunk.size()));
        source.read_exact(part);
        crc = crc32c(part, crc);
        left -= part.size();
    }
    std::array<std::byte, kRecordTrailerBytes> trailer;
    source.read_exact(trailer);
    check_trailer(type, trailer, crc);
}

}  // namespace

std::string record_type_name(std::uint32_t type) {
    if (const RecordTypeInfo* info = find_record_type(type)) return info->name;
    return hex32(type);
}

RecordWriter::RecordWriter(std::vector<std::byte>& out, std::uint32_t type)
    : out_(out), type_(type), start_(out.size()) {
    append_u32(out_, type);
    append_u32(out_, 0);  // length, filled in by finish()
}

void RecordWriter::finish() {
    const std::size_t length = out_.size() - start_ - kRecordHeaderBytes;
    try {
        check_length(type_, length);
    } catch (...) {
        out_.resize(start_);
        throw;
    }
    const auto length32 = static_cast<std::uint32_t>(length);
    for (int i = 0; i < 4; ++i) out_[start_ + 4 + i] = static_cast<std::byte>(length32 >> (8 * i));
    out_.resize(start_ + kRecordHeaderBytes + padded_body_length(length), std::byte{0});
    const std::uint32_t crc = crc32c(std::span(out_).subspan(start_));
    append_u32(out_, crc);
    append_u32(out_, 0);
}

void append_record(std::vector<std::byte>& out, std::uint32_t type, std::span<const std::byte> body) {
    check_length(type, body.size());  // before copying a body that would be refused anyway
    RecordWriter writer(out, type);
    out.insert(out.end(), body.begin(), body.end());
    writer.finish();
}

Record read_record(ByteSource& source) {
    for (;;) {
        std::array<std::byte, kRecordHeaderBytes> head;
        source.read_exact(head);
        const std::uint32_t type = load_u32(std::span(head).first<4>());
        const std::uint32_t length = load_u32(std::span(head).last<4>());
        const bool known = find_record_type(type) != nullptr;
        if (!known && !is_optional_record(type))
            throw Error("unknown mandatory record type " + hex32(type) +
                        " (the sender speaks a newer stream version; cannot continue)");
        check_length(type, length);
        const std::uint32_t head_crc = crc32c(head);
        if (!known) {
            skip_optional(source, type, length, head_crc);
            continue;
        }

        Record record{type, {}};
        const std::size_t padded = padded_body_length(length);
        // Up to kExactReserve the body gets its whole buffer at once (a full page batch is
        // 4 MiB: growing it step by step would copy it several times); past that, the buffer at
        // most doubles what has arrived.
        record.body.reserve(padded <= kExactReserve ? padded : kReadChunk);
        while (record.body.size() < padded) {
            const std::size_t done = record.body.size();
            const std::size_t step = std::min(kReadChunk, padded - done);
            if (done + step > record.body.capacity())
                record.body.reserve(std::min(padded, std::max(done + step, 2 * record.body.capacity())));
            record.body.resize(done + step);
            source.read_exact(std::span(record.body).subspan(done));
        }
        std::array<std::byte, kRecordTrailerBytes> trailer;
        source.read_exact(trailer);
        check_trailer(type, trailer, crc32c(record.body, head_crc));
        if (std::any_of(record.body.begin() + length, record.body.end(),
                        [](std::byte b) { return b != std::byte{0}; }))
            throw Error("record " + record_type_name(type) + ": non-zero padding after the body");
        record.body.resize(length);
        return record;
    }
}

}  // namespace colo::protocol
