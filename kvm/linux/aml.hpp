// A small encoder for ACPI Machine Language (ACPI 6.5 §20.2), just enough to describe fixed
// platform devices in a DSDT: scopes, devices, names whose values are integers, strings, EISA ids
// and resource templates (I/O ports, IRQNoFlags, Memory32Fixed, extended Interrupt).
//
// Each function returns the encoded bytes of one AML term; terms nest by passing one function's
// bytes into another (a Device's body is the concatenation of its Names). Nothing here is
// interpreted: the bytes are what iasl would emit for the same ASL, which the unit tests check
// byte for byte (tests/unit/linux_aml_test.cpp).
//
// Errors (a name segment that is not 1-4 characters of [A-Z0-9_] starting with a letter or '_', a
// string with a byte outside 0x01..0x7f, a package over 2^28 bytes, an EISA id not of the form
// "ABC0123") throw colo::Error with the bad value in the message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace colo::kvm::aml {

using Bytes = std::vector<std::byte>;

// PkgLength for a package whose content (everything after the PkgLength) is `content` bytes: the
// encoded length counts its own 1-4 bytes too.
[[nodiscard]] Bytes pkg_length(std::size_t content);

// A NameString: "\\" for the root prefix, "^" for each parent prefix, then segments separated by
// '.', each padded with '_' to 4 characters ("_SB" -> "_SB_"); two segments use DualNamePrefix,
// more MultiNamePrefix. "\\" alone is the root (a NullName after the prefix).
[[nodiscard]] Bytes name_string(std::string_view path);

// The shortest of ZeroOp, OneOp, BytePrefix, WordPrefix, DWordPrefix, QWordPrefix for `value`.
[[nodiscard]] Bytes integer(std::uint64_t value);

// StringPrefix, the ASCII bytes, NUL.
[[nodiscard]] Bytes string(std::string_view text);

// ASL's EisaId("PNP0501"): the compressed 32-bit id as a DWordPrefix integer (always 4 bytes, as
// iasl writes it, even where a shorter integer would do).
[[nodiscard]] Bytes eisa_id(std::string_view id);

// Name (NAME, object).
[[nodiscard]] Bytes name(std::string_view path, std::span<const std::byte> object);

// Scope (PATH) { body } and Device (NAME) { body }.
[[nodiscard]] Bytes scope(std::string_view path, std::span<const std::byte> body);
[[nodiscard]] Bytes device(std::string_view name, std::span<const std::byte> body);

// Buffer () { bytes }: BufferOp, PkgLength, the size as an integer, the bytes.
[[nodiscard]] Bytes buffer(std::span<const std::byte> bytes);

// ResourceTemplate () { descriptors }: a Buffer holding the descriptors and an End Tag (checksum
// byte 0, "no checksum").
[[nodiscard]] Bytes resource_template(std::span<const std::byte> descriptors);

// Resource descriptors (ACPI 6.5 §6.4), for resource_template.
// IO (Decode16, min, max, alignment, length).
[[nodiscard]] Bytes io_port(std::uint16_t min, std::uint16_t max, std::uint8_t alignment, std::uint8_t length);
// IRQNoFlags () { irq }: edge-triggered, active-high, exclusive ISA interrupt 0..15.
[[nodiscard]] Bytes irq_no_flags(unsigned irq);
// Memory32Fixed (ReadWrite, base, length).
[[nodiscard]] Bytes memory32_fixed_read_write(std::uint32_t base, std::uint32_t length);
// Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }.
[[nodiscard]] Bytes interrupt_edge_high(std::uint32_t gsi);

// Concatenates terms (the body of a Scope or Device, a descriptor list).
[[nodiscard]] Bytes join(std::initializer_list<std::span<const std::byte>> parts);

}  // namespace colo::kvm::aml
