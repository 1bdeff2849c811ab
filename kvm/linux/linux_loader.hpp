// Loads a Linux guest into guest RAM for the 64-bit boot protocol and says where the boot vCPU
// starts (kvm/entry_state.hpp). Addresses: kvm/linux/boot_layout.hpp.
//
// What goes where:
//   kernel     an ELF vmlinux at its segments' physical addresses, entry e_entry (startup_64);
//              or a bzImage's protected-mode part at BzImage::load_address(), entry +0x200
//   initramfs  page-aligned at the top of low RAM (below initrd_addr_max), above the kernel's
//              boot-time footprint (bzImage: load address + init_size)
//   cmdline    kCommandLine: the default console/boot options, then config.extra
//   zero page  kZeroPage, passed in rsi
//   MP table   kMpTable, one processor entry per config.vcpus (for kernels with MPPARSE)
//   ACPI       kAcpiTables: RSDP, XSDT, FADT, DSDT (COM1 and one virtio-mmio device per
//              config.vifs entry), MADT with one local APIC per config.vcpus
//
// What the VMM must do besides (kvm/ core): identity-map at least low RAM, enter long mode at
// EntryState.rip with rsi as given and interrupts off on the boot vCPU only (the others stay in
// their reset state until Linux sends INIT/SIPI); in-kernel irqchip + PIT; the 8250 on IRQ 4;
// CPUID from KVM_GET_SUPPORTED_CPUID with the hypervisor bit (leaf 1 ECX bit 31) set, so Linux
// finds KVM's paravirtual clock (without it, it tries to calibrate the TSC against the PIT), and
// each vCPU's APIC id (leaf 1 EBX[31:24], leaf 0xb EDX) equal to its index, as the MADT says.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "backends/guest_config.hpp"
#include "kvm/entry_state.hpp"

namespace colo::kvm {

// Options every Linux guest of ours needs: the console on the 8250, no PCI or keyboard
// controller to probe, reboot through the triple-fault path so a panic ends the VM. Our VMM has
// no CMOS RTC: with ports 0x70/0x71 unanswered, rtc_cmos's probe polls for an update-in-progress
// bit that never clears (36 s in a nested guest), so its initcall is skipped; kvm-clock gives
// Linux the wall-clock time instead.
inline constexpr const char* kDefaultLinuxCommandLine =
    "console=ttyS0 reboot=t panic=-1 pci=off i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd "
    "initcall_blacklist=cmos_init";

// kDefaultLinuxCommandLine followed by config.extra (when set).
[[nodiscard]] std::string linux_command_line(const GuestConfig& config);

// Reads config.kernel (ELF vmlinux or bzImage, told apart by their magic) and config.ramdisk
// (optional), and writes kernel, initramfs, command line, zero page, MP table and ACPI tables into low_ram,
// which is the host mapping of guest-physical [0, boot_layout::low_ram_bytes(ram_bytes)).
// Throws colo::Error with a one-line message naming the file: missing or unreadable, not a
// kernel, too big for the guest's memory, initramfs too big, command line too long.
[[nodiscard]] EntryState load_linux(const GuestConfig& config, std::span<std::byte> low_ram,
                                    std::uint64_t ram_bytes);

}  // namespace colo::kvm
