#include "kvm/linux/mp_table.hpp"

#include <cstring>
#include <numeric>
#include <span>
#include <string>

#include "backends/error.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/little_endian.hpp"

namespace colo::kvm {

namespace {

using namespace mp_table;

constexpr std::uint8_t kSpecRevision = 4;  // MP spec 1.4
constexpr std::uint8_t kCpuEnabled = 1, kCpuBootProcessor = 2;
constexpr std::uint8_t kIoApicEnabled = 1;
constexpr std::uint8_t kIntTypeInt = 0, kIntTypeNmi = 1, kIntTypeExtInt = 3;
constexpr std::uint16_t kIrqFlagsConforming = 0;  // polarity and trigger "as the bus says"
constexpr std::uint8_t kIsaBusId = 0;
constexpr std::uint8_t kAllLocalApics = 0xff;
// CPUID.1 signature and feature bits a processor entry advertises; Linux takes the real values
// from CPUID and only checks that these look sane (family 6, FPU + APIC present).
constexpr std::uint32_t kCpuSignature = 0x600;
constexpr std::uint32_t kCpuFeatureFpu = 1u << 0, kCpuFeatureApic = 1u << 9;

// The byte that makes bytes[begin, end) sum to zero, given that it is itself zero now.
std::byte checksum(std::span<const std::byte> bytes) {
    const unsigned sum = std::accumulate(bytes.begin(), bytes.end(), 0u,
                                         [](unsigned s, std::byte b) { return s + std::to_integer<unsigned>(b); });
    return static_cast<std::byte>((0x100 - (sum & 0xff)) & 0xff);
}

class Writer {
public:
    explicit Writer(std::vector<std::byte>& out) : out_(out) {}
    void u8(std::uint8_t v) { out_.push_back(static_cast<std::byte>(v)); }
    void u16(std::uint16_t v) { grow(2), store_le<std::uint16_t>(out_, out_.size() - 2, v); }
    void u32(std::uint32_t v) { grow(4), store_le<std::uint32_t>(out_, out_.size() - 4, v); }
    void text(const char* s, std::size_t width) {  // space-padded, not NUL-terminated
        const std::size_t n = std::strlen(s);
        for (std::size_t i = 0; i < width; ++i) u8(i < n ? static_cast<std::uint8_t>(s[i]) : ' ');
    }

private:
    void grow(std::size_t n) { out_.resize(out_.size() + n); }
    std::vector<std::byte>& out_;
};

}  // namespace

std::vector<std::byte> build_mp_table(unsigned vcpus, std::uint64_t gpa) {
    if (vcpus == 0 || vcpus > kMaxVcpus) {
        throw Error("MP table: " + std::to_string(vcpus) + " vCPUs (expected 1.." + std::to_string(kMaxVcpus) + ")");
    }
    const std::size_t entries = vcpus + 1 /*bus*/ + 1 /*IOAPIC*/ + kIsaIrqs + 2 /*LINT0, LINT1*/;
    const std::size_t table_size = kHeaderSize + vcpus * kProcessorEntrySize + (entries - vcpus) * kEntrySize;
    if (gpa + kFloatingPointerSize + table_size > (std::uint64_t{1} << 32)) {
        throw Error("MP table at guest address " + std::to_string(gpa) + " would not lie below 4 GiB");
    }
    const auto ioapic_id = static_cast<std::uint8_t>(vcpus);
    const auto table_gpa = static_cast<std::uint32_t>(gpa + kFloatingPointerSize);

    std::vector<std::byte> out;
    out.reserve(kFloatingPointerSize + table_size);
    Writer w(out);

    // Floating pointer.
    w.text("_MP_", 4);
    w.u32(table_gpa);
    w.u8(1);  // length in 16-byte units
    w.u8(kSpecRevision);
    w.u8(0);  // checksum, set below
    w.u8(0);  // feature byte 1: 0 = a configuration table is present (no default configuration)
    w.u8(0), w.u8(0), w.u8(0), w.u8(0);  // feature bytes 2..5: no IMCR, PIC mode not used

    // Configuration table header.
    const std::size_t header = out.size();
    w.text("PCMP", 4);
    w.u16(static_cast<std::uint16_t>(table_size));
    w.u8(kSpecRevision);
    w.u8(0);  // checksum, set below
    w.text("COLO", 8);         // OEM id
    w.text("COLO-REPL", 12);   // product id
    w.u32(0), w.u16(0);        // no OEM table
    w.u16(static_cast<std::uint16_t>(entries));
    w.u32(static_cast<std::uint32_t>(boot_layout::kLocalApic.value));
    w.u16(0), w.u8(0), w.u8(0);  // no extended table, its checksum, reserved

    for (unsigned cpu = 0; cpu < vcpus; ++cpu) {
        w.u8(processor);
        w.u8(static_cast<std::uint8_t>(cpu));
        w.u8(kApicVersion);
        w.u8(static_cast<std::uint8_t>(kCpuEnabled | (cpu == 0 ? kCpuBootProcessor : 0)));
        w.u32(kCpuSignature);
        w.u32(kCpuFeatureFpu | kCpuFeatureApic);
        w.u32(0), w.u32(0);  // reserved
    }
    w.u8(bus);
    w.u8(kIsaBusId);
    w.text("ISA", 6);
    w.u8(io_apic);
    w.u8(ioapic_id);
    w.u8(kIoApicVersion);
    w.u8(kIoApicEnabled);
    w.u32(static_cast<std::uint32_t>(boot_layout::kIoApic.value));
    for (unsigned irq = 0; irq < kIsaIrqs; ++irq) {
        w.u8(io_interrupt);
        w.u8(kIntTypeInt);
        w.u16(kIrqFlagsConforming);
        w.u8(kIsaBusId);
        w.u8(static_cast<std::uint8_t>(irq));
        w.u8(ioapic_id);
        w.u8(static_cast<std::uint8_t>(irq));
    }
    for (const auto& [type, lint] : {std::pair{kIntTypeExtInt, 0}, std::pair{kIntTypeNmi, 1}}) {
        w.u8(local_interrupt);
        w.u8(type);
        w.u16(kIrqFlagsConforming);
        w.u8(kIsaBusId);
        w.u8(0);
        w.u8(kAllLocalApics);
        w.u8(static_cast<std::uint8_t>(lint));
    }

    out[header + 7] = checksum(std::span(out).subspan(header));
    out[10] = checksum(std::span(out).first(kFloatingPointerSize));
    return out;
}

}  // namespace colo::kvm
