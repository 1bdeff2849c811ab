#include "kvm/linux/acpi_tables.hpp"

#include <cstring>
#include <numeric>
#include <span>
#include <string>

#include "backends/error.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/little_endian.hpp"

namespace colo::kvm {

namespace {

using namespace acpi;

constexpr std::uint8_t kRsdpRevision = 2;  // ACPI 2.0+: has the XSDT address
constexpr std::uint8_t kXsdtRevision = 1;
constexpr std::uint8_t kMadtRevision = 4;
constexpr std::uint32_t kMadtPcatCompat = 1u << 0;
constexpr std::uint8_t kMadtTypeLocalApic = 0, kMadtTypeIoApic = 1;
constexpr std::uint32_t kLocalApicEnabled = 1u << 0;

std::byte checksum(std::span<const std::byte> bytes) {
    const unsigned sum = std::accumulate(bytes.begin(), bytes.end(), 0u,
                                         [](unsigned s, std::byte b) { return s + std::to_integer<unsigned>(b); });
    return static_cast<std::byte>((0x100 - (sum & 0xff)) & 0xff);
}

void put_text(std::span<std::byte> out, std::size_t at, const char* text, std::size_t width) {
    const std::size_t n = std::strlen(text);
    for (std::size_t i = 0; i < width; ++i) out[at + i] = static_cast<std::byte>(i < n ? text[i] : ' ');
}

// The common System Description Table header; the checksum is filled in by finish_table.
void put_header(std::span<std::byte> table, const char* signature, std::uint8_t revision) {
    put_text(table, 0, signature, 4);
    store_le<std::uint32_t>(table, 4, static_cast<std::uint32_t>(table.size()));
    table[8] = std::byte{revision};
    put_text(table, 10, "COLO", 6);        // OEM id
    put_text(table, 16, "COLOREPL", 8);    // OEM table id
    store_le<std::uint32_t>(table, 24, 1);  // OEM revision
    put_text(table, 28, "COLO", 4);        // creator id
    store_le<std::uint32_t>(table, 32, 1);  // creator revision
}

void finish_table(std::span<std::byte> table) { table[9] = checksum(table); }

constexpr std::size_t align16(std::size_t n) { return (n + 15) & ~std::size_t{15}; }

}  // namespace

std::vector<std::byte> build_acpi_tables(unsigned vcpus, std::uint64_t gpa) {
    if (vcpus == 0 || vcpus > kMaxVcpus) {
        throw Error("ACPI tables: " + std::to_string(vcpus) + " vCPUs (expected 1.." + std::to_string(kMaxVcpus) + ")");
    }
    const std::size_t xsdt_size = kHeaderSize + 8;  // one entry: the MADT
    const std::size_t madt_size = kHeaderSize + 8 + vcpus * kMadtLocalApicSize + kMadtIoApicSize;
    const std::size_t xsdt_at = align16(kRsdpSize);
    const std::size_t madt_at = align16(xsdt_at + xsdt_size);
    const std::size_t total = madt_at + madt_size;
    if (gpa + total > (std::uint64_t{1} << 32)) {
        throw Error("ACPI tables at guest address " + std::to_string(gpa) + " would not lie below 4 GiB");
    }
    std::vector<std::byte> out(total, std::byte{0});
    const std::span<std::byte> all(out);

    // MADT.
    const auto madt = all.subspan(madt_at, madt_size);
    put_header(madt, "APIC", kMadtRevision);
    store_le<std::uint32_t>(madt, 36, static_cast<std::uint32_t>(boot_layout::kLocalApic.value));
    store_le<std::uint32_t>(madt, 40, kMadtPcatCompat);
    std::size_t at = 44;
    for (unsigned cpu = 0; cpu < vcpus; ++cpu, at += kMadtLocalApicSize) {
        madt[at] = std::byte{kMadtTypeLocalApic};
        madt[at + 1] = std::byte{kMadtLocalApicSize};
        madt[at + 2] = static_cast<std::byte>(cpu);  // ACPI processor UID
        madt[at + 3] = static_cast<std::byte>(cpu);  // APIC id
        store_le<std::uint32_t>(madt, at + 4, kLocalApicEnabled);
    }
    madt[at] = std::byte{kMadtTypeIoApic};
    madt[at + 1] = std::byte{kMadtIoApicSize};
    madt[at + 2] = static_cast<std::byte>(vcpus);  // I/O APIC id, after every local APIC id
    store_le<std::uint32_t>(madt, at + 4, static_cast<std::uint32_t>(boot_layout::kIoApic.value));
    store_le<std::uint32_t>(madt, at + 8, 0);      // global system interrupt base
    finish_table(madt);

    // XSDT: one 64-bit pointer, to the MADT.
    const auto xsdt = all.subspan(xsdt_at, xsdt_size);
    put_header(xsdt, "XSDT", kXsdtRevision);
    store_le<std::uint64_t>(xsdt, 36, gpa + madt_at);
    finish_table(xsdt);

    // RSDP.
    const auto rsdp = all.first(kRsdpSize);
    put_text(rsdp, 0, "RSD PTR ", 8);
    put_text(rsdp, 9, "COLO", 6);
    rsdp[15] = std::byte{kRsdpRevision};
    store_le<std::uint32_t>(rsdp, 16, 0);  // no RSDT: 64-bit XSDT only
    store_le<std::uint32_t>(rsdp, 20, static_cast<std::uint32_t>(kRsdpSize));
    store_le<std::uint64_t>(rsdp, 24, gpa + xsdt_at);
    rsdp[8] = checksum(rsdp.first(20));
    rsdp[32] = checksum(rsdp);
    return out;
}

}  // namespace colo::kvm
