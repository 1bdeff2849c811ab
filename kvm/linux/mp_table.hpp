// An Intel MultiProcessor Specification 1.4 table: how a Linux guest without ACPI learns its CPUs,
// its IOAPIC and which IOAPIC pin each ISA interrupt arrives on (IRQ 4 for the UART at 0x3f8).
//
// Layout, as built: the 16-byte floating pointer ("_MP_") immediately followed by the
// configuration table ("PCMP"): header, one processor entry per vCPU (APIC id = vCPU index, the
// first is the boot processor), one ISA bus, one IOAPIC (id = vcpus, at kIoApic), an I/O
// interrupt entry per ISA IRQ 0..15 to the same-numbered IOAPIC pin (KVM's default routing), and
// the local interrupts (LINT0 = ExtINT from the PIC, LINT1 = NMI). Both structures carry a
// checksum that makes their bytes sum to zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace colo::kvm {

namespace mp_table {
inline constexpr std::size_t kFloatingPointerSize = 16;
inline constexpr std::size_t kHeaderSize = 44;
inline constexpr std::size_t kProcessorEntrySize = 20;
inline constexpr std::size_t kEntrySize = 8;  // bus, IOAPIC, I/O and local interrupt entries
inline constexpr unsigned kIsaIrqs = 16;
inline constexpr std::uint8_t kApicVersion = 0x14;    // an integrated local APIC
inline constexpr std::uint8_t kIoApicVersion = 0x11;  // KVM's in-kernel IOAPIC
inline constexpr unsigned kMaxVcpus = 254;            // APIC ids 0..253, the IOAPIC takes the next

enum EntryType : std::uint8_t { processor = 0, bus = 1, io_apic = 2, io_interrupt = 3, local_interrupt = 4 };
}  // namespace mp_table

// The floating pointer and the configuration table, to be placed at guest-physical `gpa` (the
// pointer's physical address field points at gpa + 16). Throws colo::Error for vcpus outside
// 1..kMaxVcpus or a table that would not lie below 4 GiB.
[[nodiscard]] std::vector<std::byte> build_mp_table(unsigned vcpus, std::uint64_t gpa);

}  // namespace colo::kvm
