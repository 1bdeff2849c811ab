#include <doctest/doctest.h>

#include <algorithm>

#include "backends/error.hpp"
#include "kvm/linux/bzimage.hpp"
#include "tests/unit/linux_test_images.hpp"

using colo::kvm::parse_bzimage;
using linux_test::BzImageSpec;
using linux_test::make_bzimage;

namespace {
std::string error_of(const std::vector<std::byte>& image) {
    try {
        (void)parse_bzimage(image, "/x/y");
    } catch (const colo::Error& e) {
        return e.what();
    }
    return "(no error)";
}
}  // namespace

TEST_CASE("linux bzimage: a valid header is parsed field by field") {
    BzImageSpec spec;
    spec.setup_sects = 3;
    spec.init_size = 0x555000;
    spec.initrd_addr_max = 0x37ffffff;
    spec.cmdline_size = 4095;
    const auto image = make_bzimage(spec);
    const auto bz = parse_bzimage(image, "k");
    CHECK(bz.protocol_version == 0x020f);
    CHECK(bz.setup_sects == 3);
    CHECK(bz.kernel_offset == 4 * 512);
    CHECK(bz.kernel_size == spec.kernel_bytes);
    CHECK(bz.payload_offset == spec.payload_offset);
    CHECK(bz.payload_length == spec.kernel_bytes - spec.payload_offset);
    CHECK(bz.pref_address == 0x1000000);
    CHECK(bz.init_size == 0x555000);
    CHECK(bz.kernel_alignment == 0x200000);
    CHECK(bz.relocatable);
    CHECK(bz.initrd_addr_max == 0x37ffffff);
    CHECK(bz.cmdline_size == 4095);
    // The header copy runs from 0x1f1 to where the jump at 0x200 lands (0x26c).
    REQUIRE(bz.header.size() == 0x26c - 0x1f1);
    CHECK(bz.header[0x202 - 0x1f1] == std::byte{'H'});
    CHECK(std::equal(bz.header.begin(), bz.header.end(), image.begin() + 0x1f1));
    CHECK(bz.load_address() == 0x1000000);
    CHECK(bz.entry64() == 0x1000200);
}

TEST_CASE("linux bzimage: setup_sects 0 means 4 sectors") {
    BzImageSpec spec;
    spec.setup_sects = 0;
    const auto bz = parse_bzimage(make_bzimage(spec), "k");
    CHECK(bz.setup_sects == 4);
    CHECK(bz.kernel_offset == 5 * 512);
}

TEST_CASE("linux bzimage: load address honours pref_address and kernel_alignment") {
    BzImageSpec spec;
    spec.pref_address = 0x1100000;  // not 2 MiB aligned: a relocatable kernel goes to 16 MiB instead
    CHECK(parse_bzimage(make_bzimage(spec), "k").load_address() == 0x1000000);
    spec.pref_address = 0x2000000;
    CHECK(parse_bzimage(make_bzimage(spec), "k").load_address() == 0x2000000);
    spec.kernel_alignment = 0x4000000;  // 64 MiB alignment: 0x2000000 is not aligned
    CHECK(parse_bzimage(make_bzimage(spec), "k").load_address() == 0x4000000);
    spec.relocatable = 0;  // a fixed kernel goes exactly where it asks
    spec.pref_address = 0x1100000;
    CHECK(parse_bzimage(make_bzimage(spec), "k").load_address() == 0x1100000);
    spec.pref_address = 0x10000;
    CHECK(error_of(make_bzimage(spec)) == "/x/y: non-relocatable kernel wants to be loaded at 0x10000, below 1 MiB");
}

TEST_CASE("linux bzimage: bad images give one-line errors naming the file") {
    auto image = make_bzimage();
    image[0x202] = std::byte{'X'};
    CHECK(error_of(image) == "/x/y: not a Linux bzImage (no HdrS signature)");

    image = make_bzimage();
    image[0x1fe] = std::byte{0};
    CHECK(error_of(image) == "/x/y: not a Linux bzImage (no 0xAA55 boot flag)");

    CHECK(error_of(std::vector<std::byte>(100)) == "/x/y: not a Linux bzImage (only 100 bytes)");

    BzImageSpec old;
    old.version = 0x020b;
    CHECK(error_of(make_bzimage(old)) == "/x/y: boot protocol 2.11 is too old (the 64-bit entry needs 2.12 or later)");

    BzImageSpec no64;
    no64.xloadflags = 0x2;
    CHECK(error_of(make_bzimage(no64)) == "/x/y: kernel has no 64-bit entry point (XLF_KERNEL_64 is not set)");

    BzImageSpec short_header;
    short_header.header_end_jump = 0x40;
    CHECK(error_of(make_bzimage(short_header)) == "/x/y: setup header ends at 0x242, before its 2.12 fields");

    BzImageSpec small_init;
    small_init.init_size = 0x1000;
    CHECK(error_of(make_bzimage(small_init)) ==
          "/x/y: init_size (4096) is smaller than the kernel itself (12288 bytes)");

    BzImageSpec bad_align;
    bad_align.kernel_alignment = 0x300000;
    CHECK(error_of(make_bzimage(bad_align)) == "/x/y: kernel_alignment 0x300000 is not a power of two of at least 4096");

    image = make_bzimage();
    image[0x1f1] = std::byte{200};  // 200 sectors of setup code in a 4.5 KiB file
    CHECK(error_of(image) == "/x/y: setup code (200 sectors) runs past the end of the file");

    image = make_bzimage();
    linux_test::put(image, 0x24c, 0xffffffff, 4);
    CHECK(error_of(image) == "/x/y: compressed payload (offset 0x400, 4294967295 bytes) lies outside the kernel");
}

TEST_CASE("linux bzimage: every truncation is rejected with colo::Error") {
    // The payload runs to the end of the file, so no prefix is a complete kernel.
    const auto image = make_bzimage();
    for (std::size_t n = 0; n < image.size(); ++n) {
        const std::vector<std::byte> cut(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_THROWS_AS((void)parse_bzimage(cut, "k"), colo::Error);
    }
}

TEST_CASE("linux bzimage: looks_like_bzimage tells a bzImage from other files") {
    CHECK(colo::kvm::looks_like_bzimage(make_bzimage()));
    CHECK_FALSE(colo::kvm::looks_like_bzimage(linux_test::make_elf()));
    CHECK_FALSE(colo::kvm::looks_like_bzimage(std::vector<std::byte>(10)));
}
