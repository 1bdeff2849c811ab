// The zero page (struct boot_params, Documentation/arch/x86/zero-page.rst) that a 64-bit entry
// hands the kernel in %rsi: a copy of the image's setup header with the loader's fields filled in
// (who loaded it, where the command line and initramfs are) and the e820 memory map.
//
// Fields are written at their documented offsets, little-endian, into a page-sized buffer: no
// host struct is copied, so the layout cannot drift with the compiler.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace colo::kvm {

enum class E820Type : std::uint32_t { ram = 1, reserved = 2 };

struct E820Entry {
    std::uint64_t addr = 0;
    std::uint64_t size = 0;
    E820Type type = E820Type::ram;
    bool operator==(const E820Entry&) const = default;
};

// The memory map of a guest with ram_bytes of RAM laid out as kvm/linux/boot_layout.hpp says:
// RAM below the EBDA, the reserved legacy area up to 1 MiB, RAM from 1 MiB to the lower of the
// RAM's end and the 32-bit hole, the IOAPIC/LAPIC pages reserved, RAM from 4 GiB for the rest.
[[nodiscard]] std::vector<E820Entry> guest_e820_map(std::uint64_t ram_bytes);

namespace zero_page {
inline constexpr std::size_t kSize = 4096;
inline constexpr std::size_t kAcpiRsdpAddr = 0x070;
inline constexpr std::size_t kExtRamdiskImage = 0x0c0;
inline constexpr std::size_t kExtRamdiskSize = 0x0c4;
inline constexpr std::size_t kExtCmdLinePtr = 0x0c8;
inline constexpr std::size_t kE820Entries = 0x1e8;
inline constexpr std::size_t kE820Table = 0x2d0;
inline constexpr std::size_t kE820EntrySize = 20;
inline constexpr std::size_t kE820Max = 128;
inline constexpr std::uint8_t kLoaderUndefined = 0xff;  // type_of_loader: "no registered id"
}  // namespace zero_page

struct BootParamsInput {
    // The image's setup header from offset 0x1f1 (BzImage::header). Empty for an ELF vmlinux,
    // which has none: a minimal header is synthesized (boot flag, HdrS, version 2.12).
    std::span<const std::byte> setup_header;
    std::uint64_t cmd_line_gpa = 0;
    std::uint64_t ramdisk_gpa = 0;  // 0 with ramdisk_size 0: no initramfs
    std::uint64_t ramdisk_size = 0;
    std::uint64_t acpi_rsdp = 0;  // 0: none given (the kernel scans for one)
    std::vector<E820Entry> e820;
};

using ZeroPage = std::array<std::byte, zero_page::kSize>;

// Addresses above 4 GiB go into the ext_* fields. Throws colo::Error for a setup header longer
// than its slot in the zero page or more than 128 e820 entries.
[[nodiscard]] ZeroPage build_boot_params(const BootParamsInput& input);

}  // namespace colo::kvm
