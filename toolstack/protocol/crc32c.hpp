// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of every stream header and
// record (man colo-replicate(7)). Chosen over CRC32 because x86 computes it in hardware
// (SSE4.2 crc32), which keeps the checksum far below the cost of copying a page batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace colo::protocol {

// The CRC32C of `bytes`, continuing from `previous` (the CRC32C of the bytes before them), so
// crc32c(b, crc32c(a)) == crc32c(a followed by b). crc32c("123456789") == 0xE3069283.
// Uses the SSE4.2 instruction when the CPU has it, the portable table otherwise.
[[nodiscard]] std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t previous = 0);

// The same function, always computed with the portable table (for tests and for comparison).
[[nodiscard]] std::uint32_t crc32c_portable(std::span<const std::byte> bytes, std::uint32_t previous = 0);

// Whether crc32c() uses the SSE4.2 instruction on this CPU.
[[nodiscard]] bool crc32c_uses_hardware() noexcept;

}  // namespace colo::protocol
