#include <doctest/doctest.h>

#include <numeric>

#include "backends/error.hpp"
#include "kvm/linux/mp_table.hpp"
#include "tests/unit/linux_test_images.hpp"

using colo::kvm::build_mp_table;
using linux_test::get;

namespace {

unsigned byte_sum(std::span<const std::byte> bytes) {
    return std::accumulate(bytes.begin(), bytes.end(), 0u,
                           [](unsigned s, std::byte b) { return s + std::to_integer<unsigned>(b); }) &
           0xff;
}

bool text_at(std::span<const std::byte> b, std::size_t at, const std::string& s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (b[at + i] != static_cast<std::byte>(s[i])) return false;
    }
    return true;
}

// What Linux's mpparse reads from the table, decoded from the raw bytes.
struct Decoded {
    unsigned processors = 0, bsp_count = 0, buses = 0, ioapics = 0, lints = 0;
    std::vector<unsigned> apic_ids;
    unsigned ioapic_id = 0;
    std::uint64_t ioapic_address = 0;
    std::vector<std::pair<unsigned, unsigned>> isa_irq_to_pin;  // (source IRQ, IOAPIC pin)
};

Decoded decode(std::span<const std::byte> t) {
    Decoded d;
    const std::size_t count = get(t, 34, 2);
    std::size_t at = 44;
    for (std::size_t i = 0; i < count; ++i) {
        const auto type = std::to_integer<unsigned>(t[at]);
        if (type == 0) {
            ++d.processors;
            d.apic_ids.push_back(std::to_integer<unsigned>(t[at + 1]));
            const auto flags = std::to_integer<unsigned>(t[at + 3]);
            CHECK((flags & 1) == 1);  // enabled
            d.bsp_count += (flags & 2) ? 1 : 0;
            if (flags & 2) CHECK(d.apic_ids.back() == 0);
            at += 20;
            continue;
        }
        if (type == 1) {
            ++d.buses;
            CHECK(text_at(t, at + 2, "ISA   "));
        } else if (type == 2) {
            ++d.ioapics;
            d.ioapic_id = std::to_integer<unsigned>(t[at + 1]);
            CHECK((std::to_integer<unsigned>(t[at + 3]) & 1) == 1);
            d.ioapic_address = get(t, at + 4, 4);
        } else if (type == 3) {
            CHECK(std::to_integer<unsigned>(t[at + 6]) == d.ioapic_id);
            d.isa_irq_to_pin.emplace_back(std::to_integer<unsigned>(t[at + 5]), std::to_integer<unsigned>(t[at + 7]));
        } else if (type == 4) {
            ++d.lints;
        } else {
            FAIL("unknown MP entry type " << type);
        }
        at += 8;
    }
    CHECK(at == t.size());
    return d;
}

}  // namespace

TEST_CASE("linux mp table: structure and checksums for 1, 2 and 8 vCPUs") {
    for (unsigned vcpus : {1u, 2u, 8u}) {
        CAPTURE(vcpus);
        const auto mp = build_mp_table(vcpus, 0x9fc00);
        REQUIRE(mp.size() > 16 + 44);
        const std::span<const std::byte> fp(mp.data(), 16);
        const std::span<const std::byte> table(mp.data() + 16, mp.size() - 16);
        CHECK(text_at(fp, 0, "_MP_"));
        CHECK(get(fp, 4, 4) == 0x9fc00 + 16);
        CHECK(get(fp, 8, 1) == 1);
        CHECK(get(fp, 9, 1) == 4);
        CHECK(get(fp, 11, 1) == 0);  // a configuration table follows, no default config
        CHECK(byte_sum(fp) == 0);

        CHECK(text_at(table, 0, "PCMP"));
        CHECK(get(table, 4, 2) == table.size());
        CHECK(byte_sum(table) == 0);
        CHECK(get(table, 36, 4) == 0xfee00000);

        const Decoded d = decode(table);
        CHECK(d.processors == vcpus);
        CHECK(d.bsp_count == 1);
        for (unsigned i = 0; i < vcpus; ++i) CHECK(d.apic_ids[i] == i);
        CHECK(d.buses == 1);
        CHECK(d.ioapics == 1);
        CHECK(d.ioapic_id == vcpus);  // distinct from every local APIC id
        CHECK(d.ioapic_address == 0xfec00000);
        CHECK(d.lints == 2);
        REQUIRE(d.isa_irq_to_pin.size() == 16);
        for (unsigned irq = 0; irq < 16; ++irq) CHECK(d.isa_irq_to_pin[irq] == std::pair{irq, irq});
        CHECK(mp.size() <= 0x400);  // fits the KiB Linux scans
    }
}

TEST_CASE("linux mp table: any corrupted byte breaks a checksum") {
    const auto mp = build_mp_table(2, 0x9fc00);
    for (std::size_t i = 0; i < mp.size(); ++i) {
        auto bad = mp;
        bad[i] ^= std::byte{0x01};
        const bool fp_ok = byte_sum(std::span(bad).first(16)) == 0;
        const bool table_ok = byte_sum(std::span(bad).subspan(16)) == 0;
        CHECK_FALSE((fp_ok && table_ok));
    }
}

TEST_CASE("linux mp table: vCPU counts outside 1..254 are errors") {
    CHECK_THROWS_WITH_AS((void)build_mp_table(0, 0x9fc00), "MP table: 0 vCPUs (expected 1..254)", colo::Error);
    CHECK_THROWS_WITH_AS((void)build_mp_table(255, 0x9fc00), "MP table: 255 vCPUs (expected 1..254)", colo::Error);
    CHECK_THROWS_AS((void)build_mp_table(1, 0xfffffff0), colo::Error);
}
