// Every fixed guest-physical address a Linux guest is booted with (STYLE §8: one layout header).
//
//   0x0000_0000  real-mode IVT / BIOS data area (zeroed; Linux only reads it)
//   0x0000_1000 .. 0x0001_0000  the VMM's GDT, TSS, page tables, stack (kvm/layout.hpp)
//   0x0001_7000  boot stack (grows down from kBootStackTop); the kernel replaces it at once
//   0x0001_8000  zero page (struct boot_params)                  kZeroPage
//   0x0002_0000  kernel command line, NUL-terminated             kCommandLine
//   0x0009_fc00  MP floating pointer + MP configuration table    kMpTable
//                (Linux scans the last KiB of base memory for "_MP_")
//   0x0009_fc00 .. 0x0010_0000  reserved in the e820 map (EBDA, VGA hole, BIOS ROM area)
//   0x000e_0000  ACPI RSDP, XSDT, FADT, DSDT, MADT               kAcpiTables
//                (where Linux scans for "RSD PTR "; also passed in boot_params.acpi_rsdp_addr)
//   0x0100_0000  kernel: an ELF vmlinux at its own physical addresses (16 MiB on x86-64);
//                a bzImage's protected-mode payload at its pref_address
//   top of low RAM, page-aligned: the initramfs
//   0xc000_0000 .. 0x1_0000_0000  hole for the IOAPIC (0xfec00000) and the local APICs (0xfee00000)
//   0x1_0000_0000  RAM above kLowRamLimit continues here
//
// The VMM core (kvm/layout.hpp) owns [kVmmTablesBegin, kVmmTablesEnd) for the GDT and page tables
// of the 64-bit entry; nothing here may overlap it (a unit test checks). Linux may reuse all of it
// once it runs: the e820 map calls the low 639 KiB RAM.
#pragma once

#include <cstdint>

#include "backends/guest_address.hpp"

namespace colo::kvm::boot_layout {

inline constexpr Gpa kBootStackTop{0x18000};
inline constexpr Gpa kBootStackBottom{0x17000};
inline constexpr Gpa kZeroPage{0x18000};
inline constexpr Gpa kCommandLine{0x20000};
inline constexpr std::uint64_t kCommandLineCapacity = 0x10000;  // bytes reserved at kCommandLine
inline constexpr Gpa kMpTable{0x9fc00};
inline constexpr std::uint64_t kMpTableCapacity = 0x400;  // Linux scans this one KiB
inline constexpr Gpa kAcpiTables{0xe0000};
inline constexpr std::uint64_t kAcpiTablesCapacity = 0x10000;
inline constexpr Gpa kBaseMemoryEnd{0x9fc00};             // end of the first RAM range in e820
inline constexpr Gpa kHighMemoryStart{0x100000};          // 1 MiB: start of the second RAM range
inline constexpr Gpa kDefaultKernelLoad{0x1000000};       // where x86-64 kernels are linked to run

// Guest RAM below the 32-bit hole; the rest of the guest's RAM starts at kHighRamStart.
inline constexpr std::uint64_t kLowRamLimit = 0xc0000000;
inline constexpr Gpa kHighRamStart{std::uint64_t{1} << 32};

inline constexpr Gpa kIoApic{0xfec00000};
inline constexpr Gpa kLocalApic{0xfee00000};

// How many bytes of guest RAM live below the hole for a guest of ram_bytes in all: the size of
// the `low_ram` mapping the loader expects.
[[nodiscard]] constexpr std::uint64_t low_ram_bytes(std::uint64_t ram_bytes) {
    return ram_bytes < kLowRamLimit ? ram_bytes : kLowRamLimit;
}

}  // namespace colo::kvm::boot_layout
