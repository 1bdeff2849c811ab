#include <doctest/doctest.h>

#include <numeric>

#include "backends/error.hpp"
#include "kvm/linux/acpi_tables.hpp"
#include "tests/unit/linux_test_images.hpp"

using colo::kvm::build_acpi_tables;
using linux_test::get;

namespace {

constexpr std::uint64_t kAt = 0xe0000;

unsigned byte_sum(std::span<const std::byte> bytes) {
    return std::accumulate(bytes.begin(), bytes.end(), 0u,
                           [](unsigned s, std::byte b) { return s + std::to_integer<unsigned>(b); }) &
           0xff;
}

std::string text(std::span<const std::byte> b, std::size_t at, std::size_t n) {
    return std::string(reinterpret_cast<const char*>(b.data() + at), n);
}

// The table at guest address `gpa` inside the block, as its own header's length says.
std::span<const std::byte> table_at(const std::vector<std::byte>& block, std::uint64_t gpa) {
    REQUIRE(gpa >= kAt);
    const std::size_t offset = gpa - kAt;
    REQUIRE(offset + 36 <= block.size());
    const std::size_t length = get(block, offset + 4, 4);
    REQUIRE(offset + length <= block.size());
    return std::span(block).subspan(offset, length);
}

}  // namespace

TEST_CASE("linux acpi: RSDP -> XSDT -> MADT as Linux walks them, for 1, 2 and 8 vCPUs") {
    for (unsigned vcpus : {1u, 2u, 8u}) {
        CAPTURE(vcpus);
        const auto block = build_acpi_tables(vcpus, kAt);
        const std::span<const std::byte> rsdp(block.data(), 36);
        CHECK(text(rsdp, 0, 8) == "RSD PTR ");
        CHECK(byte_sum(rsdp.first(20)) == 0);
        CHECK(byte_sum(rsdp) == 0);
        CHECK(get(rsdp, 15, 1) == 2);
        CHECK(get(rsdp, 16, 4) == 0);  // no RSDT
        CHECK(get(rsdp, 20, 4) == 36);

        const auto xsdt = table_at(block, get(rsdp, 24, 8));
        CHECK(text(xsdt, 0, 4) == "XSDT");
        CHECK(byte_sum(xsdt) == 0);
        REQUIRE(xsdt.size() == 36 + 8);

        const auto madt = table_at(block, get(xsdt, 36, 8));
        CHECK(text(madt, 0, 4) == "APIC");
        CHECK(byte_sum(madt) == 0);
        CHECK(get(madt, 36, 4) == 0xfee00000);
        CHECK(get(madt, 40, 4) == 1);  // PCAT_COMPAT

        // Walk the interrupt controller structures by their own lengths.
        std::vector<unsigned> apic_ids;
        unsigned ioapics = 0;
        for (std::size_t at = 44; at < madt.size();) {
            const auto type = get(madt, at, 1), length = get(madt, at + 1, 1);
            REQUIRE(length >= 2);
            if (type == 0) {
                CHECK(length == 8);
                CHECK(get(madt, at + 2, 1) == apic_ids.size());  // processor UID
                apic_ids.push_back(static_cast<unsigned>(get(madt, at + 3, 1)));
                CHECK(get(madt, at + 4, 4) == 1);  // enabled
            } else if (type == 1) {
                CHECK(length == 12);
                ++ioapics;
                CHECK(get(madt, at + 2, 1) == vcpus);
                CHECK(get(madt, at + 4, 4) == 0xfec00000);
                CHECK(get(madt, at + 8, 4) == 0);
            } else {
                FAIL("unexpected MADT entry type " << type);
            }
            at += length;
            CHECK(at <= madt.size());
        }
        REQUIRE(apic_ids.size() == vcpus);
        for (unsigned i = 0; i < vcpus; ++i) CHECK(apic_ids[i] == i);
        CHECK(ioapics == 1);
    }
}

TEST_CASE("linux acpi: tables are placed relative to the given address") {
    const auto block = build_acpi_tables(2, 0x12340);
    const std::uint64_t xsdt = get(block, 24, 8);
    CHECK(xsdt >= 0x12340 + 36);
    CHECK(xsdt % 16 == 0);
    const std::uint64_t madt = get(block, xsdt - 0x12340 + 36, 8);
    CHECK(text(block, madt - 0x12340, 4) == "APIC");
}

TEST_CASE("linux acpi: any corrupted byte breaks a checksum") {
    const auto block = build_acpi_tables(2, kAt);
    const std::uint64_t xsdt = get(block, 24, 8) - kAt;
    const std::uint64_t madt = get(block, xsdt + 36, 8) - kAt;
    std::size_t covered = 0;
    for (std::size_t i = 0; i < block.size(); ++i) {
        const bool in_rsdp = i < 36, in_xsdt = i >= xsdt && i < xsdt + 44, in_madt = i >= madt;
        if (!in_rsdp && !in_xsdt && !in_madt) continue;  // alignment padding between tables
        ++covered;
        auto bad = block;
        bad[i] ^= std::byte{0x10};
        const bool all_ok = byte_sum(std::span(bad).first(36)) == 0 &&
                            byte_sum(std::span(bad).subspan(xsdt, 44)) == 0 &&
                            byte_sum(std::span(bad).subspan(madt)) == 0;
        CHECK_FALSE(all_ok);
    }
    CHECK(covered == 36 + 44 + (block.size() - madt));
}

TEST_CASE("linux acpi: vCPU counts outside 1..254 are errors") {
    CHECK_THROWS_WITH_AS((void)build_acpi_tables(0, kAt), "ACPI tables: 0 vCPUs (expected 1..254)", colo::Error);
    CHECK_THROWS_WITH_AS((void)build_acpi_tables(255, kAt), "ACPI tables: 255 vCPUs (expected 1..254)", colo::Error);
    CHECK_THROWS_AS((void)build_acpi_tables(1, 0xffffff80), colo::Error);
}
