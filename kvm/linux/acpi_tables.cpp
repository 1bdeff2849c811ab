#include "kvm/linux/acpi_tables.hpp"

#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>

#include "backends/error.hpp"
#include "kvm/devices/uart_8250.hpp"
#include "kvm/linux/aml.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/little_endian.hpp"

namespace colo::kvm {

namespace {

using namespace acpi;

constexpr std::uint8_t kRsdpRevision = 2;  // ACPI 2.0+: has the XSDT address
constexpr std::uint8_t kXsdtRevision = 1;
constexpr std::uint8_t kMadtRevision = 4;
constexpr std::uint8_t kFadtRevision = 6, kFadtMinorRevision = 5;  // ACPI 6.5's layout, 276 bytes
constexpr std::uint8_t kDsdtRevision = 2;                         // 2: AML integers are 64-bit
constexpr std::uint32_t kMadtPcatCompat = 1u << 0;
constexpr std::uint8_t kMadtTypeLocalApic = 0, kMadtTypeIoApic = 1;
constexpr std::uint32_t kLocalApicEnabled = 1u << 0;

// FADT fields (ACPI 6.5 §5.2.9, offsets from the table's start) and flags.
constexpr std::size_t kFadtIapcBootArch = 109, kFadtFlags = 112, kFadtMinorVersion = 131, kFadtXDsdt = 140;
constexpr std::uint16_t kIapcVgaNotPresent = 1u << 2, kIapcMsiNotSupported = 1u << 3,
                        kIapcCmosRtcNotPresent = 1u << 5;
constexpr std::uint32_t kFadtHwReducedAcpi = 1u << 20;

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

std::size_t madt_size(unsigned vcpus) { return kHeaderSize + 8 + vcpus * kMadtLocalApicSize + kMadtIoApicSize; }

void put_madt(std::span<std::byte> madt, unsigned vcpus) {
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
}

// Device (COM1): the one 8250 the VMM has.
aml::Bytes com1_device() {
    using namespace aml;
    const std::uint16_t base = Uart8250::kCom1Base;
    return device("COM1", join({name("_HID", eisa_id("PNP0501")), name("_UID", integer(0)),
                                name("_CRS", resource_template(join({io_port(base, base, 1, Uart8250::kPorts),
                                                                     irq_no_flags(Uart8250::kCom1Irq)})))}));
}

aml::Bytes virtio_mmio_device(unsigned index, const AcpiMmioDevice& dev) {
    using namespace aml;
    char device_name[8];
    std::snprintf(device_name, sizeof device_name, "V%03u", index);
    return device(device_name,
                  join({name("_HID", string("LNRO0005")), name("_UID", integer(index)),
                        name("_CRS", resource_template(join({memory32_fixed_read_write(dev.base, dev.size),
                                                             interrupt_edge_high(dev.gsi)})))}));
}

}  // namespace

std::vector<std::byte> build_dsdt(std::span<const AcpiMmioDevice> devices) {
    if (devices.size() > kMaxMmioDevices) {
        throw Error("ACPI DSDT: " + std::to_string(devices.size()) + " virtio-mmio devices (at most " +
                    std::to_string(kMaxMmioDevices) + ")");
    }
    aml::Bytes body = com1_device();
    for (std::size_t i = 0; i < devices.size(); ++i) {
        const aml::Bytes dev = virtio_mmio_device(static_cast<unsigned>(i), devices[i]);
        body.insert(body.end(), dev.begin(), dev.end());
    }
    const aml::Bytes aml = aml::scope("\\_SB", body);
    std::vector<std::byte> dsdt(kHeaderSize + aml.size(), std::byte{0});
    std::memcpy(dsdt.data() + kHeaderSize, aml.data(), aml.size());
    put_header(dsdt, "DSDT", kDsdtRevision);
    finish_table(dsdt);
    return dsdt;
}

std::vector<std::byte> build_fadt(std::uint64_t dsdt_gpa) {
    // Every PM register block, the SCI, SMI command port, reset register and sleep registers stay
    // zero: a hardware-reduced platform has none (see the header for why that is what Linux needs).
    std::vector<std::byte> fadt(kFadtSize, std::byte{0});
    put_header(fadt, "FACP", kFadtRevision);
    store_le<std::uint16_t>(fadt, kFadtIapcBootArch, kIapcVgaNotPresent | kIapcMsiNotSupported | kIapcCmosRtcNotPresent);
    store_le<std::uint32_t>(fadt, kFadtFlags, kFadtHwReducedAcpi);
    fadt[kFadtMinorVersion] = std::byte{kFadtMinorRevision};
    store_le<std::uint64_t>(fadt, kFadtXDsdt, dsdt_gpa);  // the 32-bit DSDT field stays 0: X_DSDT wins
    finish_table(fadt);
    return fadt;
}

std::vector<std::byte> build_acpi_tables(unsigned vcpus, std::span<const AcpiMmioDevice> devices, std::uint64_t gpa) {
    if (vcpus == 0 || vcpus > kMaxVcpus) {
        throw Error("ACPI tables: " + std::to_string(vcpus) + " vCPUs (expected 1.." + std::to_string(kMaxVcpus) + ")");
    }
    const std::vector<std::byte> dsdt_bytes = build_dsdt(devices);
    const std::size_t xsdt_size = kHeaderSize + 2 * 8;  // the FADT and the MADT
    const std::size_t xsdt_at = align16(kRsdpSize);
    const std::size_t fadt_at = align16(xsdt_at + xsdt_size);
    const std::size_t dsdt_at = align16(fadt_at + kFadtSize);
    const std::size_t madt_at = align16(dsdt_at + dsdt_bytes.size());
    const std::size_t total = madt_at + madt_size(vcpus);
    if (gpa + total > (std::uint64_t{1} << 32)) {
        throw Error("ACPI tables at guest address " + std::to_string(gpa) + " would not lie below 4 GiB");
    }
    std::vector<std::byte> out(total, std::byte{0});
    const std::span<std::byte> all(out);

    put_madt(all.subspan(madt_at, madt_size(vcpus)), vcpus);
    std::memcpy(out.data() + dsdt_at, dsdt_bytes.data(), dsdt_bytes.size());
    const std::vector<std::byte> fadt = build_fadt(gpa + dsdt_at);
    std::memcpy(out.data() + fadt_at, fadt.data(), fadt.size());

    const auto xsdt = all.subspan(xsdt_at, xsdt_size);
    put_header(xsdt, "XSDT", kXsdtRevision);
    store_le<std::uint64_t>(xsdt, 36, gpa + fadt_at);
    store_le<std::uint64_t>(xsdt, 44, gpa + madt_at);
    finish_table(xsdt);

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
