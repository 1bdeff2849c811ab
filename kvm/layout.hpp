// Every fixed guest-physical address the KVM VMM uses (STYLE §8), in one place. Linux-specific
// addresses (zero page, command line, kernel, initrd, MP table) live in kvm/linux/ and must stay
// out of [kVmmTablesBegin, kVmmTablesEnd) and, for the built-in guest, of its range below.
//
//   0x0000_0000  page 0: left unused (a null pointer in the guest faults into the log, not data)
//   0x0000_1000  GDT (null, null, kernel code 0x10 / data 0x18 as the Linux 64-bit boot protocol
//                wants them (__BOOT_CS, __BOOT_DS), user data/code, 64-bit TSS descriptor)
//   0x0000_2000  IDT (256 gates; present only when the guest image brings handlers)
//   0x0000_3000  TSS (RSP0 = kRing0StackTop: where a fault from ring 3 switches stacks)
//   0x0000_4000  PML4, 0x5000 PDPT, 0x6000..0x9fff four PDs: 2 MiB pages identity-mapping 4 GiB
//   0x0000_a000  ring-0 stack, 16 KiB, top at 0xe000
//   0x0001_0000  built-in guest: parameters page (kvm/builtin_guest/params.h)
//   0x0001_1000  built-in guest: its stall statistics (params.h, struct colo_builtin_stats; 1 page)
//   0x0002_0000  built-in guest: network area (rings and buffers of its NIC, 288 KiB; params.h
//                COLO_BUILTIN_NET_*), up to 0x6_8000
//   0x0007_0000  built-in guest: disk area (ring, request header, two block buffers, 24 KiB;
//                params.h COLO_BUILTIN_DISK_*)
//   0x0010_0000  built-in guest: image (header, code, data, bss), at most 512 KiB
//   0x0018_0000  built-in guest: user stack, top at 0x20_0000
//   0x0020_0000  built-in guest: generation table (u32 per working-set page), then working set,
//                then (with a disk) the disk's generation table (u64 per block)
//   0xc000_0000  PCI hole up to 4 GiB; the built-in guest with a NIC maps all of it to ring 3
//                (its driver programs the NIC and the IOAPIC at 0xfec0_0000 from ring 3)
//   0xd000_0000  virtio-mmio devices, 4 KiB each (slot N at base + N * 4 KiB, GSI kVirtioFirstGsi + N):
//                NICs first, in vif order, then disks; RAM beyond 3 GiB continues at 4 GiB (kHighRamBegin)
//   0xfffb_d000  KVM's real-mode TSS (three pages, KVM_SET_TSS_ADDR; used by VMX only)
#pragma once

#include <cstdint>

#include "backends/guest_address.hpp"

namespace colo::kvm::layout {

inline constexpr Gpa kGdt{0x1000};
inline constexpr Gpa kIdt{0x2000};
inline constexpr Gpa kTss{0x3000};
inline constexpr Gpa kPml4{0x4000};
inline constexpr Gpa kPdpt{0x5000};
inline constexpr Gpa kPageDirectories{0x6000};
inline constexpr std::uint64_t kPageDirectoryCount = 4;  // 4 x 1 GiB
inline constexpr std::uint64_t kMaxIdentityMapBytes = kPageDirectoryCount << 30;
inline constexpr Gpa kRing0StackBottom{0xa000};
inline constexpr Gpa kRing0StackTop{0xe000};
inline constexpr Gpa kVmmTablesBegin = kGdt;
inline constexpr Gpa kVmmTablesEnd{0x10000};

// GDT selectors (index * 8 | RPL). Kernel code and data are Linux's __BOOT_CS and __BOOT_DS
// (Documentation/arch/x86/boot.rst, 64-bit boot protocol); user data sits just below user code
// so SYSRET's selector arithmetic would work too.
inline constexpr std::uint16_t kKernelCodeSelector = 0x10;
inline constexpr std::uint16_t kKernelDataSelector = 0x18;
inline constexpr std::uint16_t kUserDataSelector = 0x20 | 3;
inline constexpr std::uint16_t kUserCodeSelector = 0x28 | 3;
inline constexpr std::uint16_t kTssSelector = 0x30;
inline constexpr std::uint64_t kGdtEntries = 8;  // the TSS descriptor takes two slots

// Built-in test guest.
inline constexpr Gpa kBuiltinParams{0x10000};
inline constexpr Gpa kBuiltinStats{0x11000};
inline constexpr Gpa kBuiltinImage{0x100000};
inline constexpr std::uint64_t kBuiltinImageMaxBytes = 0x80000;
inline constexpr Gpa kBuiltinStackTop{0x200000};
inline constexpr Gpa kBuiltinGenerationTable{0x200000};
inline constexpr Gpa kBuiltinNetArea{0x20000};
inline constexpr Gpa kBuiltinDiskArea{0x70000};
inline constexpr Gpa kIoapic{0xfec00000};  // KVM's in-kernel IOAPIC (its default base)

// RAM and the hole below 4 GiB.
inline constexpr std::uint64_t kLowRamEnd = std::uint64_t{3} << 30;
inline constexpr Gpa kHighRamBegin{std::uint64_t{4} << 30};
inline constexpr Gpa kKvmRealModeTss{0xfffbd000};

// virtio-mmio (virtio 1.x, MMIO version 2) devices.
inline constexpr Gpa kVirtioMmioBase{0xd0000000};
inline constexpr std::uint64_t kVirtioMmioSlotBytes = 0x1000;
inline constexpr unsigned kVirtioMmioSlots = 8;
inline constexpr unsigned kVirtioFirstGsi = 16;  // IOAPIC pins 16..23: no ISA device uses them

}  // namespace colo::kvm::layout
