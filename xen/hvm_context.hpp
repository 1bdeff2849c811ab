// The HVM context blob (xc_domain_hvm_getcontext) as the Xen backend's one StateRecord: every
// vCPU's registers, LAPIC, MTRRs, XSAVE area, and the platform devices Xen emulates for an HVM or
// PVH guest, in Xen's own save format. The backend passes it through; it checks only the framing
// before handing a blob to xc_domain_hvm_setcontext, so a corrupt or foreign blob fails with one
// clear line here rather than an EINVAL from Xen with the domain half-restored.
//
// Framing (public/arch-x86/hvm/save.h): a sequence of {u16 typecode, u16 instance, u32 length}
// descriptors each followed by `length` bytes; the first is the HEADER (typecode 1, whose body
// starts with the magic 0x54381286), the last is END (typecode 0, length 0). Little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace colo::xen {

// StateRecord tag and version of the HVM context record (within the Xen backend's tag space).
inline constexpr std::uint32_t kHvmContextTag = 1;
inline constexpr std::uint32_t kHvmContextVersion = 1;
// The HVM params record (hvm_params.hpp) that follows it since colo-replicate carries them; a
// state of the context record alone (from before) is still accepted.
inline constexpr std::uint32_t kHvmParamsTag = 2;
inline constexpr std::uint32_t kHvmParamsVersion = 1;

inline constexpr std::uint16_t kHvmSaveCodeEnd = 0;
inline constexpr std::uint16_t kHvmSaveCodeHeader = 1;
inline constexpr std::uint32_t kHvmSaveMagic = 0x54381286;
inline constexpr std::size_t kHvmSaveDescriptorSize = 8;
inline constexpr std::size_t kHvmSaveHeaderSize = 24;  // magic, version, changeset, cpuid, gtsc_khz

// Throws colo::Error naming what is wrong (too short, no header, bad magic, a descriptor running
// past the end, no END descriptor).
void check_hvm_context(std::span<const std::byte> context);

}  // namespace colo::xen
