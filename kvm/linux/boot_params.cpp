#include "kvm/linux/boot_params.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "backends/error.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/bzimage.hpp"
#include "kvm/linux/little_endian.hpp"

namespace colo::kvm {

std::vector<E820Entry> guest_e820_map(std::uint64_t ram_bytes) {
    using namespace boot_layout;
    if (ram_bytes <= kHighMemoryStart.value) {
        throw Error("a Linux guest needs more than 1 MiB of RAM (has " + std::to_string(ram_bytes) + " bytes)");
    }
    const std::uint64_t low_end = low_ram_bytes(ram_bytes);
    std::vector<E820Entry> map{
        {0, kBaseMemoryEnd.value, E820Type::ram},
        // EBDA (our MP table), VGA window, option and BIOS ROM area: never RAM to an OS.
        {kBaseMemoryEnd.value, kHighMemoryStart.value - kBaseMemoryEnd.value, E820Type::reserved},
        {kHighMemoryStart.value, low_end - kHighMemoryStart.value, E820Type::ram},
        {kIoApic.value, kPageSize, E820Type::reserved},
        {kLocalApic.value, kPageSize, E820Type::reserved},
    };
    if (ram_bytes > low_end) map.push_back({kHighRamStart.value, ram_bytes - low_end, E820Type::ram});
    return map;
}

ZeroPage build_boot_params(const BootParamsInput& in) {
    using namespace zero_page;
    namespace hdr = setup_header;
    ZeroPage page{};
    const std::span<std::byte> zp(page);

    if (in.setup_header.empty()) {
        // An ELF vmlinux carries no setup header; the kernel still checks for a plausible one.
        store_le<std::uint16_t>(zp, hdr::kBootFlag, hdr::kBootFlagValue);
        store_le<std::uint32_t>(zp, hdr::kMagic, hdr::kMagicValue);
        store_le<std::uint16_t>(zp, hdr::kVersion, hdr::kMinVersion);
        store_le<std::uint32_t>(zp, hdr::kKernelAlignment, 0x200000);
        store_le<std::uint16_t>(zp, hdr::kXLoadFlags, hdr::kXlfKernel64);
    } else {
        if (in.setup_header.size() > hdr::kLimit - hdr::kStart) {
            throw Error("setup header of " + std::to_string(in.setup_header.size()) +
                        " bytes does not fit in the zero page");
        }
        std::memcpy(page.data() + hdr::kStart, in.setup_header.data(), in.setup_header.size());
    }

    page[hdr::kTypeOfLoader] = std::byte{kLoaderUndefined};
    // LOADED_HIGH: the protected-mode kernel is at or above 1 MiB (always, for a 64-bit entry).
    page[hdr::kLoadFlags] |= std::byte{hdr::kLoadedHigh};

    store_le<std::uint32_t>(zp, hdr::kCmdLinePtr, static_cast<std::uint32_t>(in.cmd_line_gpa));
    store_le<std::uint32_t>(zp, kExtCmdLinePtr, static_cast<std::uint32_t>(in.cmd_line_gpa >> 32));
    store_le<std::uint32_t>(zp, hdr::kRamdiskImage, static_cast<std::uint32_t>(in.ramdisk_gpa));
    store_le<std::uint32_t>(zp, kExtRamdiskImage, static_cast<std::uint32_t>(in.ramdisk_gpa >> 32));
    store_le<std::uint32_t>(zp, hdr::kRamdiskSize, static_cast<std::uint32_t>(in.ramdisk_size));
    store_le<std::uint32_t>(zp, kExtRamdiskSize, static_cast<std::uint32_t>(in.ramdisk_size >> 32));

    store_le<std::uint64_t>(zp, kAcpiRsdpAddr, in.acpi_rsdp);

    if (in.e820.size() > kE820Max) {
        throw Error(std::to_string(in.e820.size()) + " e820 entries (the zero page holds " +
                    std::to_string(kE820Max) + ")");
    }
    page[kE820Entries] = static_cast<std::byte>(in.e820.size());
    for (std::size_t i = 0; i < in.e820.size(); ++i) {
        const std::size_t at = kE820Table + i * kE820EntrySize;
        store_le<std::uint64_t>(zp, at, in.e820[i].addr);
        store_le<std::uint64_t>(zp, at + 8, in.e820[i].size);
        store_le<std::uint32_t>(zp, at + 16, static_cast<std::uint32_t>(in.e820[i].type));
    }
    return page;
}

}  // namespace colo::kvm
