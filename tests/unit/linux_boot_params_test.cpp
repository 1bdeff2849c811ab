#include <doctest/doctest.h>

#include <algorithm>

#include "backends/error.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/boot_params.hpp"
#include "kvm/linux/bzimage.hpp"
#include "tests/unit/linux_test_images.hpp"

using colo::kvm::BootParamsInput;
using colo::kvm::build_boot_params;
using colo::kvm::E820Entry;
using colo::kvm::E820Type;
using colo::kvm::guest_e820_map;
using linux_test::get;

TEST_CASE("linux e820: a 128 MiB guest") {
    const std::vector<E820Entry> expected{
        {0, 0x9fc00, E820Type::ram},
        {0x9fc00, 0x100000 - 0x9fc00, E820Type::reserved},
        {0x100000, (128u << 20) - 0x100000, E820Type::ram},
        {0xfec00000, 0x1000, E820Type::reserved},
        {0xfee00000, 0x1000, E820Type::reserved},
    };
    CHECK(guest_e820_map(128u << 20) == expected);
}

TEST_CASE("linux e820: RAM beyond the 32-bit hole continues at 4 GiB") {
    const auto map = guest_e820_map(std::uint64_t{4} << 30);
    REQUIRE(map.size() == 6);
    CHECK(map[2] == E820Entry{0x100000, 0xc0000000 - 0x100000, E820Type::ram});
    CHECK(map[5] == E820Entry{std::uint64_t{1} << 32, std::uint64_t{1} << 30, E820Type::ram});
    CHECK(colo::kvm::boot_layout::low_ram_bytes(std::uint64_t{4} << 30) == 0xc0000000);
    CHECK(colo::kvm::boot_layout::low_ram_bytes(64u << 20) == 64u << 20);
    CHECK_THROWS_WITH_AS((void)guest_e820_map(1u << 20), "a Linux guest needs more than 1 MiB of RAM (has 1048576 bytes)",
                         colo::Error);
}

TEST_CASE("linux zero page: bzImage header copy plus the loader's fields") {
    const auto bz = colo::kvm::parse_bzimage(linux_test::make_bzimage(), "k");
    BootParamsInput in;
    in.setup_header = bz.header;
    in.cmd_line_gpa = 0x20000;
    in.ramdisk_gpa = 0x3f00000;
    in.ramdisk_size = 0x12345;
    in.acpi_rsdp = 0xe0000;
    in.e820 = guest_e820_map(64u << 20);
    const auto page = build_boot_params(in);

    CHECK(get(page, 0x1fe, 2) == 0xaa55);
    CHECK(get(page, 0x202, 4) == 0x53726448);
    CHECK(get(page, 0x206, 2) == 0x020f);
    CHECK(get(page, 0x258, 8) == 0x1000000);  // pref_address survives the copy
    CHECK(get(page, 0x210, 1) == 0xff);       // type_of_loader
    CHECK((get(page, 0x211, 1) & 1) == 1);    // LOADED_HIGH
    CHECK(get(page, 0x228, 4) == 0x20000);
    CHECK(get(page, 0x0c8, 4) == 0);
    CHECK(get(page, 0x218, 4) == 0x3f00000);
    CHECK(get(page, 0x21c, 4) == 0x12345);
    CHECK(get(page, 0x0c0, 4) == 0);
    CHECK(get(page, 0x0c4, 4) == 0);
    CHECK(get(page, 0x070, 8) == 0xe0000);    // acpi_rsdp_addr
    CHECK(get(page, 0x1ef, 1) == 0);  // sentinel: a loader that zeroes the page leaves it 0
    REQUIRE(get(page, 0x1e8, 1) == 5);
    for (std::size_t i = 0; i < in.e820.size(); ++i) {
        const std::size_t at = 0x2d0 + 20 * i;
        CHECK(get(page, at, 8) == in.e820[i].addr);
        CHECK(get(page, at + 8, 8) == in.e820[i].size);
        CHECK(get(page, at + 16, 4) == static_cast<std::uint32_t>(in.e820[i].type));
    }
    // Nothing after the last entry.
    CHECK(get(page, 0x2d0 + 20 * 5, 8) == 0);
    CHECK(get(page, 0x2d0 + 20 * 5 + 8, 8) == 0);
    CHECK(get(page, 0x2d0 + 20 * 5 + 16, 4) == 0);
}

TEST_CASE("linux zero page: a vmlinux gets a synthesized header and 64-bit addresses use ext_*") {
    BootParamsInput in;
    in.cmd_line_gpa = 0x1'0002'0000;
    in.ramdisk_gpa = 0x2'0000'0000;
    in.ramdisk_size = 0x1'0000'1000;
    in.e820 = guest_e820_map(256u << 20);
    const auto page = build_boot_params(in);
    CHECK(get(page, 0x1fe, 2) == 0xaa55);
    CHECK(get(page, 0x202, 4) == 0x53726448);
    CHECK(get(page, 0x206, 2) == 0x020c);
    CHECK((get(page, 0x236, 2) & 1) == 1);  // XLF_KERNEL_64
    CHECK(get(page, 0x228, 4) == 0x20000);
    CHECK(get(page, 0x0c8, 4) == 1);
    CHECK(get(page, 0x218, 4) == 0);
    CHECK(get(page, 0x0c0, 4) == 2);
    CHECK(get(page, 0x21c, 4) == 0x1000);
    CHECK(get(page, 0x0c4, 4) == 1);
}

TEST_CASE("linux zero page: limits are errors") {
    BootParamsInput in;
    in.e820.resize(129);
    CHECK_THROWS_WITH_AS((void)build_boot_params(in), "129 e820 entries (the zero page holds 128)", colo::Error);
    std::vector<std::byte> long_header(0x290 - 0x1f1 + 1);
    BootParamsInput in2;
    in2.setup_header = long_header;
    CHECK_THROWS_WITH_AS((void)build_boot_params(in2), "setup header of 160 bytes does not fit in the zero page",
                         colo::Error);
}
