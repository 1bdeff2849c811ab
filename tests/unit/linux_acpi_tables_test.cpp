#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "kvm/layout.hpp"
#include "kvm/linux/acpi_tables.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/linux_loader.hpp"
#include "tests/unit/linux_test_images.hpp"

using colo::kvm::AcpiMmioDevice;
using colo::kvm::build_acpi_tables;
using colo::kvm::build_dsdt;
using colo::kvm::build_fadt;
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

// The table at guest address `gpa` inside a block placed at `base`, as its own header's length says.
std::span<const std::byte> table_at(std::span<const std::byte> block, std::uint64_t gpa, std::uint64_t base = kAt) {
    REQUIRE(gpa >= base);
    const std::size_t offset = gpa - base;
    REQUIRE(offset + 36 <= block.size());
    const std::size_t length = get(block, offset + 4, 4);
    REQUIRE(offset + length <= block.size());
    return block.subspan(offset, length);
}

// Every table as Linux reaches it: RSDP -> XSDT -> each entry by signature, FADT -> DSDT.
struct Walk {
    std::span<const std::byte> rsdp, xsdt, fadt, dsdt, madt;
    std::map<std::string, std::uint64_t> offsets;  // signature -> offset in the block (RSDP too)
};

Walk walk(std::span<const std::byte> block, std::uint64_t base = kAt) {
    Walk w;
    w.rsdp = block.first(36);
    w.offsets["RSDP"] = 0;
    w.xsdt = table_at(block, get(w.rsdp, 24, 8), base);
    w.offsets["XSDT"] = get(w.rsdp, 24, 8) - base;
    for (std::size_t at = 36; at + 8 <= w.xsdt.size(); at += 8) {
        const std::uint64_t gpa = get(w.xsdt, at, 8);
        const auto table = table_at(block, gpa, base);
        const std::string sig = text(table, 0, 4);
        CHECK(w.offsets.count(sig) == 0);
        w.offsets[sig] = gpa - base;
        if (sig == "FACP") w.fadt = table;
        if (sig == "APIC") w.madt = table;
    }
    REQUIRE(w.fadt.size() == 276);
    w.dsdt = table_at(block, get(w.fadt, 140, 8), base);  // X_DSDT
    w.offsets["DSDT"] = get(w.fadt, 140, 8) - base;
    return w;
}

std::vector<AcpiMmioDevice> nics(unsigned n) {
    std::vector<AcpiMmioDevice> out;
    for (unsigned i = 0; i < n; ++i) out.push_back({0xd0000000u + i * 0x1000u, 0x1000, 16 + i});
    return out;
}

bool contains(std::span<const std::byte> haystack, const std::vector<std::uint8_t>& needle) {
    std::vector<std::byte> n;
    for (auto b : needle) n.push_back(std::byte{b});
    return std::search(haystack.begin(), haystack.end(), n.begin(), n.end()) != haystack.end();
}

// The AML `iasl -oa` (acpica-tools 20200925) makes of this ASL, after the 36-byte header:
//   Scope (\_SB) {
//     Device (COM1) { Name (_HID, EisaId ("PNP0501")) Name (_UID, Zero)
//       Name (_CRS, ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08) IRQNoFlags () {4} }) }
//     Device (V000) { Name (_HID, "LNRO0005") Name (_UID, Zero)
//       Name (_CRS, ResourceTemplate () { Memory32Fixed (ReadWrite, 0xD0000000, 0x00001000)
//                                         Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {16} }) }
//     Device (V001) { ... _UID One, 0xD0001000, {17} } }
const std::vector<std::uint8_t> kIaslTwoNics = {
    0x10, 0x4c, 0x0a, 0x5c, 0x5f, 0x53, 0x42, 0x5f, 0x5b, 0x82, 0x2b, 0x43, 0x4f, 0x4d, 0x31, 0x08,
    0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0, 0x05, 0x01, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x08,
    0x5f, 0x43, 0x52, 0x53, 0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
    0x22, 0x10, 0x00, 0x79, 0x00, 0x5b, 0x82, 0x3a, 0x56, 0x30, 0x30, 0x30, 0x08, 0x5f, 0x48, 0x49,
    0x44, 0x0d, 0x4c, 0x4e, 0x52, 0x4f, 0x30, 0x30, 0x30, 0x35, 0x00, 0x08, 0x5f, 0x55, 0x49, 0x44,
    0x00, 0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x1a, 0x0a, 0x17, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
    0x00, 0xd0, 0x00, 0x10, 0x00, 0x00, 0x89, 0x06, 0x00, 0x03, 0x01, 0x10, 0x00, 0x00, 0x00, 0x79,
    0x00, 0x5b, 0x82, 0x3a, 0x56, 0x30, 0x30, 0x31, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0d, 0x4c, 0x4e,
    0x52, 0x4f, 0x30, 0x30, 0x30, 0x35, 0x00, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x01, 0x08, 0x5f, 0x43,
    0x52, 0x53, 0x11, 0x1a, 0x0a, 0x17, 0x86, 0x09, 0x00, 0x01, 0x00, 0x10, 0x00, 0xd0, 0x00, 0x10,
    0x00, 0x00, 0x89, 0x06, 0x00, 0x03, 0x01, 0x11, 0x00, 0x00, 0x00, 0x79, 0x00,
};

}  // namespace

TEST_CASE("linux acpi: RSDP -> XSDT -> FADT, MADT; FADT -> DSDT, as Linux walks them") {
    for (unsigned vcpus : {1u, 2u, 8u}) {
        for (unsigned n : {0u, 1u, 4u}) {
            CAPTURE(vcpus);
            CAPTURE(n);
            const auto block = build_acpi_tables(vcpus, nics(n), kAt);
            const Walk w = walk(block);
            CHECK(text(w.rsdp, 0, 8) == "RSD PTR ");
            CHECK(byte_sum(w.rsdp.first(20)) == 0);
            CHECK(byte_sum(w.rsdp) == 0);
            CHECK(get(w.rsdp, 15, 1) == 2);
            CHECK(get(w.rsdp, 16, 4) == 0);  // no RSDT
            CHECK(get(w.rsdp, 20, 4) == 36);

            CHECK(text(w.xsdt, 0, 4) == "XSDT");
            CHECK(w.xsdt.size() == 36 + 2 * 8);
            CHECK(w.offsets.size() == 5);  // RSDP, XSDT, FACP, APIC, DSDT
            for (const auto& [sig, offset] : w.offsets) {
                CAPTURE(sig);
                CHECK(offset % 16 == 0);
                if (sig != "RSDP") CHECK(byte_sum(table_at(block, kAt + offset)) == 0);
            }

            // FADT: revision 6, hardware-reduced, no legacy PM hardware at all.
            CHECK(get(w.fadt, 8, 1) == 6);
            CHECK(get(w.fadt, 131, 1) == 5);                  // minor version
            CHECK(get(w.fadt, 112, 4) == (1u << 20));         // HW_REDUCED_ACPI only
            CHECK(get(w.fadt, 109, 2) == ((1u << 2) | (1u << 3) | (1u << 5)));  // no VGA, MSI, CMOS RTC; no 8042
            CHECK(get(w.fadt, 40, 4) == 0);                   // 32-bit DSDT unused
            CHECK(get(w.fadt, 46, 2) == 0);                   // no SCI
            CHECK(get(w.fadt, 48, 4) == 0);                   // no SMI command port
            for (std::size_t at = 56; at < 88; at += 4) CHECK(get(w.fadt, at, 4) == 0);  // PM1a..GPE1 blocks
            for (std::size_t at = 148; at < 268; ++at) CHECK(get(w.fadt, at, 1) == 0);   // X_ blocks, sleep regs

            CHECK(text(w.dsdt, 0, 4) == "DSDT");
            CHECK(get(w.dsdt, 8, 1) == 2);
            for (unsigned i = 0; i < n; ++i) {
                CAPTURE(i);
                const std::uint32_t base = 0xd0000000u + i * 0x1000u;
                CHECK(contains(w.dsdt, {'V', '0', '0', static_cast<std::uint8_t>('0' + i), 0x08, '_', 'H', 'I', 'D', 0x0d,
                                        'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00}));
                CHECK(contains(w.dsdt, {0x86, 0x09, 0x00, 0x01, static_cast<std::uint8_t>(base), static_cast<std::uint8_t>(base >> 8),
                                        static_cast<std::uint8_t>(base >> 16), static_cast<std::uint8_t>(base >> 24), 0x00,
                                        0x10, 0x00, 0x00}));
                CHECK(contains(w.dsdt, {0x89, 0x06, 0x00, 0x03, 0x01, static_cast<std::uint8_t>(16 + i), 0x00, 0x00, 0x00}));
            }
            CHECK_FALSE(contains(w.dsdt, {'V', '0', '0', static_cast<std::uint8_t>('0' + n)}));

            CHECK(text(w.madt, 0, 4) == "APIC");
            CHECK(get(w.madt, 36, 4) == 0xfee00000);
            CHECK(get(w.madt, 40, 4) == 1);  // PCAT_COMPAT

            // Walk the interrupt controller structures by their own lengths.
            std::vector<unsigned> apic_ids;
            unsigned ioapics = 0;
            for (std::size_t at = 44; at < w.madt.size();) {
                const auto type = get(w.madt, at, 1), length = get(w.madt, at + 1, 1);
                REQUIRE(length >= 2);
                if (type == 0) {
                    CHECK(length == 8);
                    CHECK(get(w.madt, at + 2, 1) == apic_ids.size());  // processor UID
                    apic_ids.push_back(static_cast<unsigned>(get(w.madt, at + 3, 1)));
                    CHECK(get(w.madt, at + 4, 4) == 1);  // enabled
                } else if (type == 1) {
                    CHECK(length == 12);
                    ++ioapics;
                    CHECK(get(w.madt, at + 2, 1) == vcpus);
                    CHECK(get(w.madt, at + 4, 4) == 0xfec00000);
                    CHECK(get(w.madt, at + 8, 4) == 0);
                } else {
                    FAIL("unexpected MADT entry type " << type);
                }
                at += length;
                CHECK(at <= w.madt.size());
            }
            REQUIRE(apic_ids.size() == vcpus);
            for (unsigned i = 0; i < vcpus; ++i) CHECK(apic_ids[i] == i);
            CHECK(ioapics == 1);
        }
    }
}

TEST_CASE("linux acpi: the DSDT's AML is byte for byte what iasl compiles from the same ASL") {
    const auto dsdt = build_dsdt(nics(2));
    REQUIRE(dsdt.size() == 36 + kIaslTwoNics.size());
    CHECK(get(dsdt, 4, 4) == dsdt.size());
    CHECK(byte_sum(dsdt) == 0);
    std::vector<std::uint8_t> aml;
    for (std::size_t i = 36; i < dsdt.size(); ++i) aml.push_back(std::to_integer<std::uint8_t>(dsdt[i]));
    CHECK(aml == kIaslTwoNics);
}

TEST_CASE("linux acpi: the FADT alone") {
    const auto fadt = build_fadt(0x12345670);
    REQUIRE(fadt.size() == 276);
    CHECK(text(fadt, 0, 4) == "FACP");
    CHECK(get(fadt, 4, 4) == 276);
    CHECK(byte_sum(fadt) == 0);
    CHECK(get(fadt, 140, 8) == 0x12345670);
}

TEST_CASE("linux acpi: tables are placed relative to the given address") {
    const std::uint64_t base = 0x12340;
    const auto block = build_acpi_tables(2, nics(1), base);
    const Walk w = walk(block, base);
    CHECK(get(block, 24, 8) >= base + 36);
    CHECK(text(w.madt, 0, 4) == "APIC");
    CHECK(text(w.dsdt, 0, 4) == "DSDT");
    CHECK(w.offsets.at("DSDT") + base == get(w.fadt, 140, 8));
}

TEST_CASE("linux acpi: any corrupted byte of any table breaks a checksum") {
    const auto block = build_acpi_tables(2, nics(2), kAt);
    const Walk w = walk(block);
    const std::vector<std::pair<std::size_t, std::size_t>> tables = {
        {w.offsets.at("RSDP"), 36},          {w.offsets.at("XSDT"), w.xsdt.size()}, {w.offsets.at("FACP"), w.fadt.size()},
        {w.offsets.at("DSDT"), w.dsdt.size()}, {w.offsets.at("APIC"), w.madt.size()}};
    const auto all_ok = [&](const std::vector<std::byte>& b) {
        for (const auto& [at, size] : tables) {
            if (byte_sum(std::span(b).subspan(at, size)) != 0) return false;
        }
        return byte_sum(std::span(b).first(20)) == 0;
    };
    REQUIRE(all_ok(block));
    std::size_t covered = 0;
    for (const auto& [at, size] : tables) {
        for (std::size_t i = at; i < at + size; ++i, ++covered) {
            auto bad = block;
            bad[i] ^= std::byte{0x10};
            CHECK_FALSE(all_ok(bad));
        }
    }
    CHECK(covered == 36 + w.xsdt.size() + 276 + w.dsdt.size() + w.madt.size());
}

TEST_CASE("linux acpi: vCPU counts outside 1..254 and too many devices are errors") {
    CHECK_THROWS_WITH_AS((void)build_acpi_tables(0, {}, kAt), "ACPI tables: 0 vCPUs (expected 1..254)", colo::Error);
    CHECK_THROWS_WITH_AS((void)build_acpi_tables(255, {}, kAt), "ACPI tables: 255 vCPUs (expected 1..254)", colo::Error);
    CHECK_THROWS_AS((void)build_acpi_tables(1, {}, 0xffffff80), colo::Error);
    CHECK_THROWS_WITH_AS((void)build_dsdt(nics(1001)), "ACPI DSDT: 1001 virtio-mmio devices (at most 1000)", colo::Error);
}

namespace {

// The DSDT load_linux writes for a guest with `vifs` NICs and `disks` disks.
std::vector<std::byte> dsdt_for(std::size_t vifs, std::size_t disks) {
    namespace boot = colo::kvm::boot_layout;
    linux_test::TempDir dir;
    colo::GuestConfig c;
    c.name = "lx";
    c.guest = colo::GuestKind::linux_kernel;
    c.memory_mib = 64;
    c.vcpus = 1;
    c.kernel = dir.write("vmlinux", linux_test::make_elf());
    c.vifs.resize(vifs);
    for (std::size_t i = 0; i < disks; ++i) {
        c.disks.push_back(colo::DiskConfig{"/d" + std::to_string(i) + ".img", std::string("xvd") + char('a' + i), false});
    }
    std::vector<std::byte> ram(64u << 20);
    (void)colo::kvm::load_linux(c, ram, ram.size());
    const std::span<const std::byte> block = std::span<const std::byte>(ram).subspan(boot::kAcpiTables.value, boot::kAcpiTablesCapacity);
    const auto dsdt = walk(block, boot::kAcpiTables.value).dsdt;
    return {dsdt.begin(), dsdt.end()};
}

// Whether the DSDT holds virtio-mmio slot N's window and interrupt.
bool describes_slot(const std::vector<std::byte>& dsdt, unsigned slot) {
    namespace layout = colo::kvm::layout;
    const auto base = static_cast<std::uint32_t>(layout::kVirtioMmioBase.value + slot * layout::kVirtioMmioSlotBytes);
    return contains(dsdt, {0x86, 0x09, 0x00, 0x01, static_cast<std::uint8_t>(base), static_cast<std::uint8_t>(base >> 8),
                           static_cast<std::uint8_t>(base >> 16), static_cast<std::uint8_t>(base >> 24), 0x00, 0x10, 0x00, 0x00}) &&
           contains(dsdt, {0x89, 0x06, 0x00, 0x03, 0x01, static_cast<std::uint8_t>(colo::kvm::layout::kVirtioFirstGsi + slot), 0x00,
                           0x00, 0x00});
}

}  // namespace

TEST_CASE("linux acpi: load_linux describes each vif's virtio-mmio slot in the DSDT it writes") {
    const auto dsdt = dsdt_for(3, 0);
    for (unsigned slot : {0u, 1u, 2u}) CHECK(describes_slot(dsdt, slot));
    CHECK_FALSE(describes_slot(dsdt, 3));
    CHECK_FALSE(contains(dsdt, {'V', '0', '0', '3'}));
}

TEST_CASE("linux acpi: load_linux describes each disk at virtio-mmio slot kMaxVifs + N, after the vifs") {
    const auto dsdt = dsdt_for(1, 2);
    for (unsigned slot : {0u, 4u, 5u}) CHECK(describes_slot(dsdt, slot));
    // Three LNRO0005 devices, V000..V002, and no slot between the NIC and the first disk.
    CHECK(contains(dsdt, {'V', '0', '0', '2'}));
    CHECK_FALSE(contains(dsdt, {'V', '0', '0', '3'}));
    for (unsigned slot : {1u, 2u, 3u, 6u}) CHECK_FALSE(describes_slot(dsdt, slot));
}
