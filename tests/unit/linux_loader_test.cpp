#include <doctest/doctest.h>

#include <algorithm>

#include <cstring>

#include "backends/error.hpp"
#include "kvm/layout.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/linux_loader.hpp"
#include "tests/unit/linux_test_images.hpp"

namespace layout = colo::kvm::boot_layout;
using colo::kvm::load_linux;
using linux_test::get;
using linux_test::TempDir;

namespace {

constexpr std::uint64_t kRam = 64u << 20;

colo::GuestConfig linux_config(const std::filesystem::path& kernel, const std::filesystem::path& ramdisk = {}) {
    colo::GuestConfig c;
    c.name = "lx";
    c.guest = colo::GuestKind::linux_kernel;
    c.memory_mib = kRam >> 20;
    c.vcpus = 2;
    c.kernel = kernel;
    c.ramdisk = ramdisk;
    c.extra = "root=/dev/ram0 quiet";
    return c;
}

std::string cstring_at(std::span<const std::byte> ram, std::size_t at) {
    return std::string(reinterpret_cast<const char*>(ram.data() + at));
}

std::string load_error(const colo::GuestConfig& c, std::uint64_t ram_bytes = kRam) {
    std::vector<std::byte> ram(colo::kvm::boot_layout::low_ram_bytes(ram_bytes));
    try {
        (void)load_linux(c, ram, ram_bytes);
    } catch (const colo::Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("linux loader: vmlinux + initramfs land where the layout says") {
    TempDir dir;
    const auto kernel = dir.write("vmlinux", linux_test::make_elf());
    const auto initrd_bytes = linux_test::pattern(100'000, 0x77);
    const auto initrd = dir.write("initrd", initrd_bytes);
    std::vector<std::byte> ram(kRam);

    const auto entry = load_linux(linux_config(kernel, initrd), ram, kRam);
    CHECK(entry.rip == 0x1000000);
    CHECK(entry.rsi == layout::kZeroPage.value);
    CHECK(entry.rsp == layout::kBootStackTop.value);
    CHECK_FALSE(entry.user_mode);
    CHECK((entry.rflags & 0x200) == 0);  // interrupts off
    CHECK(entry.identity_map_bytes >= kRam);

    const auto text = linux_test::pattern(0x2000, 0x10);
    CHECK(std::equal(text.begin(), text.end(), ram.begin() + 0x1000000));

    const std::span<const std::byte> zp(ram.data() + layout::kZeroPage.value, 4096);
    CHECK(get(zp, 0x202, 4) == 0x53726448);
    CHECK(get(zp, 0x210, 1) == 0xff);
    CHECK(get(zp, 0x228, 4) == layout::kCommandLine.value);
    CHECK(cstring_at(ram, layout::kCommandLine.value) ==
          std::string(colo::kvm::kDefaultLinuxCommandLine) + " root=/dev/ram0 quiet");

    // The initramfs sits page-aligned at the top of RAM, byte for byte.
    const std::uint64_t initrd_at = get(zp, 0x218, 4);
    CHECK(get(zp, 0x21c, 4) == initrd_bytes.size());
    CHECK(initrd_at % 4096 == 0);
    CHECK(initrd_at + initrd_bytes.size() <= kRam);
    CHECK(initrd_at + initrd_bytes.size() + 4096 > kRam);
    CHECK(std::equal(initrd_bytes.begin(), initrd_bytes.end(), ram.begin() + static_cast<std::ptrdiff_t>(initrd_at)));

    CHECK(get(zp, 0x1e8, 1) == 5);  // the e820 map of a 64 MiB guest
    CHECK(get(zp, 0x2d0 + 2 * 20 + 8, 8) == kRam - 0x100000);

    CHECK(get(zp, 0x070, 8) == layout::kAcpiTables.value);  // acpi_rsdp_addr
    CHECK(std::memcmp(ram.data() + layout::kAcpiTables.value, "RSD PTR ", 8) == 0);
    CHECK(std::memcmp(ram.data() + layout::kMpTable.value, "_MP_", 4) == 0);
    CHECK(std::memcmp(ram.data() + layout::kMpTable.value + 16, "PCMP", 4) == 0);
    CHECK(get(std::span(ram).subspan(layout::kMpTable.value + 16), 34, 2) == 2 + 1 + 1 + 16 + 2);
}

TEST_CASE("linux loader: a bzImage is loaded at its preferred address with the 64-bit entry at +0x200") {
    TempDir dir;
    linux_test::BzImageSpec spec;
    spec.initrd_addr_max = 0x2ffffff;  // initramfs must end below 48 MiB
    const auto image = linux_test::make_bzimage(spec);
    const auto kernel = dir.write("bzImage", image);
    const auto initrd = dir.write("initrd", linux_test::pattern(5000, 1));
    std::vector<std::byte> ram(kRam);
    auto config = linux_config(kernel, initrd);
    config.extra.clear();

    const auto entry = load_linux(config, ram, kRam);
    CHECK(entry.rip == 0x1000200);
    const std::size_t kernel_offset = 3 * 512;
    CHECK(std::equal(image.begin() + kernel_offset, image.end(), ram.begin() + 0x1000000));
    const std::span<const std::byte> zp(ram.data() + layout::kZeroPage.value, 4096);
    CHECK(get(zp, 0x258, 8) == 0x1000000);  // the header copy
    CHECK(get(zp, 0x260, 4) == spec.init_size);
    CHECK(get(zp, 0x210, 1) == 0xff);
    const std::uint64_t initrd_at = get(zp, 0x218, 4);
    CHECK(initrd_at + 5000 <= 0x3000000);
    CHECK(initrd_at + 5000 + 4096 > 0x3000000);
    CHECK(cstring_at(ram, layout::kCommandLine.value) == colo::kvm::kDefaultLinuxCommandLine);
}

TEST_CASE("linux loader: the boot data stays clear of the kernel and each other") {
    // [begin, end) of everything at a fixed address, in order.
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges{
        {layout::kBootStackBottom.value, layout::kBootStackTop.value},
        {layout::kZeroPage.value, layout::kZeroPage.value + 4096},
        {layout::kCommandLine.value, layout::kCommandLine.value + layout::kCommandLineCapacity},
        {layout::kMpTable.value, layout::kMpTable.value + layout::kMpTableCapacity},
        {layout::kAcpiTables.value, layout::kAcpiTables.value + layout::kAcpiTablesCapacity},
        {layout::kDefaultKernelLoad.value, layout::kLowRamLimit},
    };
    for (std::size_t i = 1; i < ranges.size(); ++i) CHECK(ranges[i - 1].second <= ranges[i].first);
    CHECK(layout::kMpTable.value >= layout::kBaseMemoryEnd.value);  // reserved, not RAM, in e820
    CHECK(layout::kAcpiTables.value + layout::kAcpiTablesCapacity <= layout::kHighMemoryStart.value);
    // Nothing of ours inside the VMM's own GDT/TSS/page-table area (kvm/layout.hpp).
    for (const auto& [begin, end] : ranges) {
        CHECK((end <= colo::kvm::layout::kVmmTablesBegin.value || begin >= colo::kvm::layout::kVmmTablesEnd.value));
    }
    CHECK(layout::kLowRamLimit == colo::kvm::layout::kLowRamEnd);
}

TEST_CASE("linux loader: errors name the file and what is wrong") {
    TempDir dir;
    const auto kernel = dir.write("vmlinux", linux_test::make_elf());

    CHECK(load_error(linux_config(dir.path() / "missing")) ==
          "kernel " + (dir.path() / "missing").string() + ": open: No such file or directory (errno 2)");
    CHECK(load_error(linux_config(kernel, dir.path() / "nope")) ==
          "initramfs " + (dir.path() / "nope").string() + ": open: No such file or directory (errno 2)");
    CHECK(load_error(linux_config(dir.path())) == "kernel " + dir.path().string() + ": not a regular file");

    const auto junk = dir.write("junk", linux_test::pattern(8192, 3));
    CHECK(load_error(linux_config(junk)) == junk.string() + ": not a Linux kernel (neither an ELF vmlinux nor a bzImage)");

    linux_test::ElfSpec big;
    big.segments = {{1, 0, 0x1000000, 0x1000, 0x3000000}};  // needs memory up to 64 MiB
    const auto big_kernel = dir.write("big", linux_test::make_elf(big));
    CHECK(load_error(linux_config(big_kernel), 32u << 20) ==
          big_kernel.string() + ": kernel needs memory up to 0x4000000, more than the guest's 32 MiB of low memory");

    linux_test::ElfSpec low;
    low.entry = 0x80000;
    low.segments = {{1, 0, 0x80000, 0x1000, 0x1000}};
    const auto low_kernel = dir.write("low", linux_test::make_elf(low));
    CHECK(load_error(linux_config(low_kernel)) ==
          low_kernel.string() + ": kernel segment at 0x80000 overlaps the boot data below 1 MiB");

    linux_test::BzImageSpec hungry;
    hungry.init_size = 0x4000000;  // 64 MiB from 16 MiB: more than a 64 MiB guest has
    const auto hungry_kernel = dir.write("hungry", linux_test::make_bzimage(hungry));
    CHECK(load_error(linux_config(hungry_kernel)) ==
          hungry_kernel.string() + ": kernel needs memory up to 0x5000000 to boot, more than the guest's 64 MiB of low memory");

    const auto fat = dir.write("fat", std::vector<std::byte>(60u << 20));
    CHECK(load_error(linux_config(kernel, fat)) ==
          "initramfs " + fat.string() + " (60 MiB) is too big: only 45 MiB are free between the kernel and 0x4000000");
    const auto huge = dir.write("huge", std::vector<std::byte>(65u << 20));
    CHECK(load_error(linux_config(kernel, huge)) ==
          "initramfs " + huge.string() + " (65 MiB) is too big for the guest's 64 MiB of memory");

    auto chatty = linux_config(kernel);
    chatty.extra = std::string(3000, 'x');
    CHECK(load_error(chatty) == "kernel command line is " +
                                    std::to_string(std::strlen(colo::kvm::kDefaultLinuxCommandLine) + 3001) +
                                    " bytes; " + kernel.string() + " accepts at most 2047");

    std::vector<std::byte> wrong(1u << 20);
    CHECK_THROWS_WITH_AS((void)load_linux(linux_config(kernel), wrong, kRam),
                         "load_linux: low RAM mapping is 1048576 bytes, expected 67108864 for 64 MiB", colo::Error);
}
