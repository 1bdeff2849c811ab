#include "kvm/linux/aml.hpp"

#include <cstdio>
#include <string>

#include "backends/error.hpp"

namespace colo::kvm::aml {

namespace {

// Opcodes and prefixes (ACPI 6.5 §20.2).
constexpr std::uint8_t kZeroOp = 0x00, kOneOp = 0x01, kNameOp = 0x08, kBytePrefix = 0x0a, kWordPrefix = 0x0b,
                       kDWordPrefix = 0x0c, kStringPrefix = 0x0d, kQWordPrefix = 0x0e, kScopeOp = 0x10,
                       kBufferOp = 0x11, kDualNamePrefix = 0x2e, kMultiNamePrefix = 0x2f, kExtOpPrefix = 0x5b,
                       kDeviceOp = 0x82, kRootChar = '\\', kParentPrefixChar = '^', kNullName = 0x00;
// Resource descriptor tags (§6.4): small ones carry their length in the tag byte.
constexpr std::uint8_t kIrqNoFlagsTag = 0x22, kIoPortTag = 0x47, kEndTag = 0x79, kMemory32FixedTag = 0x86,
                       kExtendedInterruptTag = 0x89;
constexpr std::size_t kMaxPkgLength = (std::size_t{1} << 28) - 1;  // 4 bytes: 4 + 3*8 bits

void put(Bytes& out, std::uint8_t b) { out.push_back(std::byte{b}); }

template <typename T>
void put_le(Bytes& out, T value) {
    for (std::size_t i = 0; i < sizeof(T); ++i) put(out, static_cast<std::uint8_t>(value >> (8 * i)));
}

void append(Bytes& out, std::span<const std::byte> bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }

bool is_lead_char(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_lead_char(c) || (c >= '0' && c <= '9'); }

void put_name_seg(Bytes& out, std::string_view seg, std::string_view path) {
    bool ok = !seg.empty() && seg.size() <= 4 && is_lead_char(seg.front());
    for (char c : seg) ok = ok && is_name_char(c);
    if (!ok) {
        throw Error("AML name '" + std::string(path) + "': segment '" + std::string(seg) +
                    "' is not 1-4 characters of A-Z, 0-9, _ starting with a letter or _");
    }
    for (std::size_t i = 0; i < 4; ++i) put(out, static_cast<std::uint8_t>(i < seg.size() ? seg[i] : '_'));
}

// OPCODE PkgLength content, for the ops whose PkgLength covers everything after it.
Bytes package(std::initializer_list<std::uint8_t> opcode, std::span<const std::byte> content) {
    Bytes out;
    for (std::uint8_t b : opcode) put(out, b);
    append(out, pkg_length(content.size()));
    append(out, content);
    return out;
}

unsigned hex_digit(char c) {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    return 16;
}

}  // namespace

Bytes pkg_length(std::size_t content) {
    // One byte holds a length up to 63 in its low 6 bits. Longer ones put the count of following
    // bytes (1-3) in bits 7-6 and the length's low nibble in bits 3-0, then 8 bits per byte.
    Bytes out;
    if (content + 1 <= 0x3f) {
        put(out, static_cast<std::uint8_t>(content + 1));
        return out;
    }
    for (std::size_t n = 2; n <= 4; ++n) {
        const std::size_t total = content + n;
        if (total < (std::size_t{1} << (4 + 8 * (n - 1)))) {
            put(out, static_cast<std::uint8_t>(((n - 1) << 6) | (total & 0x0f)));
            for (std::size_t i = 1; i < n; ++i) put(out, static_cast<std::uint8_t>(total >> (4 + 8 * (i - 1))));
            return out;
        }
    }
    throw Error("AML package of " + std::to_string(content) + " bytes is over the " + std::to_string(kMaxPkgLength) +
                "-byte limit of a PkgLength");
}

Bytes name_string(std::string_view path) {
    Bytes out;
    std::string_view rest = path;
    if (!rest.empty() && rest.front() == kRootChar) {
        put(out, kRootChar);
        rest.remove_prefix(1);
    } else {
        while (!rest.empty() && rest.front() == kParentPrefixChar) {
            put(out, kParentPrefixChar);
            rest.remove_prefix(1);
        }
    }
    std::vector<std::string_view> segs;
    while (!rest.empty()) {
        const std::size_t dot = rest.find('.');
        segs.push_back(rest.substr(0, dot));
        rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
        if (dot != std::string_view::npos && rest.empty()) segs.push_back(rest);  // trailing '.': caught below
    }
    if (segs.empty()) {
        if (out.empty()) throw Error("AML name '': empty");
        put(out, kNullName);
        return out;
    }
    if (segs.size() > 255) throw Error("AML name '" + std::string(path) + "': more than 255 segments");
    if (segs.size() == 2) put(out, kDualNamePrefix);
    if (segs.size() > 2) {
        put(out, kMultiNamePrefix);
        put(out, static_cast<std::uint8_t>(segs.size()));
    }
    for (std::string_view seg : segs) put_name_seg(out, seg, path);
    return out;
}

Bytes integer(std::uint64_t value) {
    Bytes out;
    if (value == 0) {
        put(out, kZeroOp);
    } else if (value == 1) {
        put(out, kOneOp);
    } else if (value <= 0xff) {
        put(out, kBytePrefix);
        put_le<std::uint8_t>(out, static_cast<std::uint8_t>(value));
    } else if (value <= 0xffff) {
        put(out, kWordPrefix);
        put_le<std::uint16_t>(out, static_cast<std::uint16_t>(value));
    } else if (value <= 0xffffffff) {
        put(out, kDWordPrefix);
        put_le<std::uint32_t>(out, static_cast<std::uint32_t>(value));
    } else {
        put(out, kQWordPrefix);
        put_le<std::uint64_t>(out, value);
    }
    return out;
}

Bytes string(std::string_view text) {
    Bytes out;
    put(out, kStringPrefix);
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte == 0 || byte > 0x7f) {
            // The text itself is not quoted: the bad byte may be a NUL or half a UTF-8 sequence.
            char code[8];
            std::snprintf(code, sizeof code, "0x%02x", byte);
            throw Error("AML string: byte " + std::string(code) + " at offset " + std::to_string(i) +
                        " is not ASCII 0x01..0x7f");
        }
        put(out, byte);
    }
    put(out, 0);
    return out;
}

Bytes eisa_id(std::string_view id) {
    // Three letters of 5 bits each ('A' = 1), then four hex digits, stored big-endian in a DWord.
    bool ok = id.size() == 7;
    for (std::size_t i = 0; ok && i < 3; ++i) ok = id[i] >= 'A' && id[i] <= 'Z';
    for (std::size_t i = 3; ok && i < 7; ++i) ok = hex_digit(id[i]) < 16;
    if (!ok) throw Error("EISA id '" + std::string(id) + "' is not three capital letters and four hex digits");
    const auto letter = [&](std::size_t i) { return static_cast<std::uint32_t>(id[i] - 'A' + 1); };
    const std::uint32_t big = (letter(0) << 26) | (letter(1) << 21) | (letter(2) << 16) | (hex_digit(id[3]) << 12) |
                              (hex_digit(id[4]) << 8) | (hex_digit(id[5]) << 4) | hex_digit(id[6]);
    Bytes out;
    put(out, kDWordPrefix);
    for (int shift = 24; shift >= 0; shift -= 8) put(out, static_cast<std::uint8_t>(big >> shift));
    return out;
}

Bytes name(std::string_view path, std::span<const std::byte> object) {
    Bytes out;
    put(out, kNameOp);
    append(out, name_string(path));
    append(out, object);
    return out;
}

Bytes scope(std::string_view path, std::span<const std::byte> body) {
    return package({kScopeOp}, join({name_string(path), body}));
}

Bytes device(std::string_view name, std::span<const std::byte> body) {
    return package({kExtOpPrefix, kDeviceOp}, join({name_string(name), body}));
}

Bytes buffer(std::span<const std::byte> bytes) {
    return package({kBufferOp}, join({integer(bytes.size()), bytes}));
}

Bytes resource_template(std::span<const std::byte> descriptors) {
    Bytes body(descriptors.begin(), descriptors.end());
    put(body, kEndTag);
    put(body, 0);  // checksum 0: the descriptors are not summed
    return buffer(body);
}

Bytes io_port(std::uint16_t min, std::uint16_t max, std::uint8_t alignment, std::uint8_t length) {
    Bytes out;
    put(out, kIoPortTag);
    put(out, 1);  // decodes 16 address bits
    put_le(out, min);
    put_le(out, max);
    put(out, alignment);
    put(out, length);
    return out;
}

Bytes irq_no_flags(unsigned irq) {
    if (irq > 15) throw Error("IRQNoFlags: IRQ " + std::to_string(irq) + " is not an ISA IRQ (0..15)");
    Bytes out;
    put(out, kIrqNoFlagsTag);
    put_le(out, static_cast<std::uint16_t>(1u << irq));
    return out;
}

Bytes memory32_fixed_read_write(std::uint32_t base, std::uint32_t length) {
    Bytes out;
    put(out, kMemory32FixedTag);
    put_le<std::uint16_t>(out, 9);  // length of what follows
    put(out, 1);                    // read-write
    put_le(out, base);
    put_le(out, length);
    return out;
}

Bytes interrupt_edge_high(std::uint32_t gsi) {
    constexpr std::uint8_t kConsumer = 1u << 0, kEdge = 1u << 1;  // active-high, exclusive: bits 2, 3 clear
    Bytes out;
    put(out, kExtendedInterruptTag);
    put_le<std::uint16_t>(out, 6);  // flags, count, one 32-bit interrupt
    put(out, kConsumer | kEdge);
    put(out, 1);
    put_le(out, gsi);
    return out;
}

Bytes join(std::initializer_list<std::span<const std::byte>> parts) {
    Bytes out;
    for (const auto& part : parts) append(out, part);
    return out;
}

}  // namespace colo::kvm::aml
