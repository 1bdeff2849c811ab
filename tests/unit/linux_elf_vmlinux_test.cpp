#include <doctest/doctest.h>

#include <algorithm>

#include <random>

#include "backends/error.hpp"
#include "kvm/linux/elf_vmlinux.hpp"
#include "tests/unit/linux_test_images.hpp"

using colo::kvm::load_elf_segments;
using colo::kvm::parse_elf_vmlinux;
using linux_test::ElfSpec;
using linux_test::make_elf;

namespace {
std::string error_of(const std::vector<std::byte>& image) {
    try {
        (void)parse_elf_vmlinux(image, "/x/vmlinux");
    } catch (const colo::Error& e) {
        return e.what();
    }
    return "(no error)";
}
}  // namespace

TEST_CASE("linux elf: PT_LOAD segments are found, sorted, and the entry is physical") {
    ElfSpec spec;
    std::swap(spec.segments[0], spec.segments[2]);  // out of order in the file
    const auto elf = parse_elf_vmlinux(make_elf(spec), "k");
    REQUIRE(elf.segments.size() == 2);  // the PT_NOTE is not loaded
    CHECK(elf.segments[0].paddr == 0x1000000);
    CHECK(elf.segments[0].mem_size == 0x2000);
    CHECK(elf.segments[1].paddr == 0x1200000);
    CHECK(elf.segments[1].file_size == 0x1800);
    CHECK(elf.segments[1].mem_size == 0x5000);
    CHECK(elf.entry == 0x1000000);
    CHECK(elf.lowest_address() == 0x1000000);
    CHECK(elf.end_address() == 0x1205000);
}

TEST_CASE("linux elf: a virtual e_entry is translated through its segment") {
    ElfSpec spec;
    spec.entry = 0xffffffff81000100;
    CHECK(parse_elf_vmlinux(make_elf(spec), "k").entry == 0x1000100);
}

TEST_CASE("linux elf: loading copies file bytes and zero-fills the rest of each segment") {
    const ElfSpec spec;
    const auto image = make_elf(spec);
    const auto elf = parse_elf_vmlinux(image, "k");
    std::vector<std::byte> ram(0x1400000, std::byte{0xaa});
    load_elf_segments(elf, image, ram, "k");

    const auto first = linux_test::pattern(0x2000, 0x10);
    CHECK(std::equal(first.begin(), first.end(), ram.begin() + 0x1000000));
    const auto third = linux_test::pattern(0x1800, 0x12);
    CHECK(std::equal(third.begin(), third.end(), ram.begin() + 0x1200000));
    CHECK(std::all_of(ram.begin() + 0x1201800, ram.begin() + 0x1205000, [](std::byte b) { return b == std::byte{0}; }));
    // Bytes outside every segment are left alone (the PT_NOTE at 0x1002000 is not copied).
    CHECK(ram[0x1002000] == std::byte{0xaa});
    CHECK(ram[0x1205000] == std::byte{0xaa});
    CHECK(ram[0xffffff] == std::byte{0xaa});

    std::vector<std::byte> small(0x1201000);
    CHECK_THROWS_WITH_AS(load_elf_segments(elf, image, small, "/x/vmlinux"),
                         "/x/vmlinux: kernel segment at 0x1200000 (20480 bytes) does not fit in the guest's "
                         "18 MiB of low memory",
                         colo::Error);
}

TEST_CASE("linux elf: bad headers give one-line errors naming the file") {
    CHECK(error_of(std::vector<std::byte>(64)) == "/x/vmlinux: not an ELF file (no \\x7fELF magic)");
    auto image = make_elf();
    CHECK(error_of({image.begin(), image.begin() + 40}) == "/x/vmlinux: ELF header is truncated (40 bytes)");

    ElfSpec s32;
    s32.elf_class = 1;
    CHECK(error_of(make_elf(s32)) == "/x/vmlinux: not a 64-bit little-endian ELF file");
    ElfSpec arm;
    arm.machine = 183;
    CHECK(error_of(make_elf(arm)) == "/x/vmlinux: ELF machine 183 is not x86-64");
    ElfSpec dyn;
    dyn.type = 3;
    CHECK(error_of(make_elf(dyn)) == "/x/vmlinux: ELF file is not an executable (ET_EXEC)");

    ElfSpec none;
    none.segments = {{4, 0, 0x1000000, 0x10, 0x10}};
    CHECK(error_of(make_elf(none)) == "/x/vmlinux: ELF file has nothing to load (no PT_LOAD segment)");

    ElfSpec outside;
    outside.entry = 0x5000000;
    CHECK(error_of(make_elf(outside)) == "/x/vmlinux: entry point 0x5000000 lies in no loaded segment");

    ElfSpec overlap;
    overlap.segments = {{1, 0, 0x1000000, 0x2000, 0x2000}, {1, 0, 0x1001000, 0x100, 0x100}};
    CHECK(error_of(make_elf(overlap)) == "/x/vmlinux: segments at 0x1000000 and 0x1001000 overlap");

    ElfSpec tail;
    tail.segments = {{1, 0, 0x1000000, 0x2000, 0x1000}};
    CHECK(error_of(make_elf(tail)) == "/x/vmlinux: segment 0 has more file bytes than memory bytes");

    ElfSpec wrap;
    wrap.segments = {{1, 0, 0x1000000, 0x10, 0x10}, {1, 0, 0xfffffffffffff000, 0x10, 0x2000}};
    CHECK(error_of(make_elf(wrap)) == "/x/vmlinux: segment 1 wraps around the address space");

    image = make_elf();
    linux_test::put(image, 54, 32, 2);
    CHECK(error_of(image) == "/x/vmlinux: program header size 32 is not 56");
    image = make_elf();
    linux_test::put(image, 56, 0, 2);
    CHECK(error_of(image) == "/x/vmlinux: 0 program headers (expected 1..64)");
    image = make_elf();
    linux_test::put(image, 32, 0xfffffffffffffff0, 8);  // e_phoff that overflows when added to
    CHECK(error_of(image) == "/x/vmlinux: program header table (offset 0xfffffffffffffff0) lies outside the file");
    image = make_elf();
    linux_test::put(image, 64 + 8, 0xffffffffffffff00, 8);  // first segment's p_offset
    CHECK(error_of(image) ==
          "/x/vmlinux: segment 0 (file offset 0xffffffffffffff00, 8192 bytes) lies outside the file");
}

TEST_CASE("linux elf: truncated and bit-flipped images never escape as anything but colo::Error") {
    const auto image = make_elf();
    // Every prefix that cuts into the last segment's data is incomplete and must be refused.
    for (std::size_t n = 0; n < image.size(); ++n) {
        const std::vector<std::byte> cut(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_THROWS_AS((void)parse_elf_vmlinux(cut, "k"), colo::Error);
    }
    // Flipped bits in the headers: parsing and loading into a small RAM either succeed within
    // bounds or throw colo::Error (AddressSanitizer builds catch any stray access).
    std::mt19937 rng(7);
    std::vector<std::byte> ram(0x1400000);
    int parsed = 0;
    for (int round = 0; round < 2000; ++round) {
        auto bad = image;
        const std::size_t at = rng() % (64 + 56 * 3);
        bad[at] ^= static_cast<std::byte>(1u << (rng() % 8));
        try {
            const auto elf = parse_elf_vmlinux(bad, "k");
            ++parsed;
            for (const auto& s : elf.segments) CHECK(s.file_size <= s.mem_size);
            load_elf_segments(elf, bad, ram, "k");
        } catch (const colo::Error&) {
        }
    }
    CHECK(parsed > 0);  // some flips (in vaddr, flags, alignment) are harmless
    CHECK(parsed < 2000);
}
