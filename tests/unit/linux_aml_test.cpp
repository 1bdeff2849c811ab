#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "backends/error.hpp"
#include "kvm/linux/aml.hpp"

namespace aml = colo::kvm::aml;

namespace {

// The expected encodings below are written from ACPI 6.5 §20.2 (AML grammar) and §6.4 (resource
// descriptors), and agree with what `iasl` emits for the ASL quoted next to them.
std::vector<unsigned> u(const aml::Bytes& bytes) {
    std::vector<unsigned> out;
    for (std::byte b : bytes) out.push_back(std::to_integer<unsigned>(b));
    return out;
}

aml::Bytes filler(std::size_t n) { return aml::Bytes(n, std::byte{0xaa}); }

}  // namespace

TEST_CASE("aml: PkgLength takes 1 byte up to 63, then 2, 3 and 4 bytes, counting itself") {
    using V = std::vector<unsigned>;
    CHECK(u(aml::pkg_length(0)) == V{0x01});
    CHECK(u(aml::pkg_length(62)) == V{0x3f});             // 62 + 1 = 63: the largest one-byte length
    CHECK(u(aml::pkg_length(63)) == V{0x41, 0x04});       // 63 + 2 = 65 = 0x041
    CHECK(u(aml::pkg_length(4093)) == V{0x4f, 0xff});     // 4095: the largest two-byte length
    CHECK(u(aml::pkg_length(4094)) == V{0x81, 0x00, 0x01});        // 4097 = 0x1001
    CHECK(u(aml::pkg_length(0xffffc)) == V{0x8f, 0xff, 0xff});     // 0xfffff
    CHECK(u(aml::pkg_length(0xffffd)) == V{0xc1, 0x00, 0x00, 0x01});  // 0x100001
    CHECK(u(aml::pkg_length(0xffffffb)) == V{0xcf, 0xff, 0xff, 0xff});  // 0xfffffff
    CHECK_THROWS_AS((void)aml::pkg_length(0xffffffc), colo::Error);
}

TEST_CASE("aml: NameString: segments padded with _, root and parent prefixes, dual and multi names") {
    using V = std::vector<unsigned>;
    CHECK(u(aml::name_string("_HID")) == V{'_', 'H', 'I', 'D'});
    CHECK(u(aml::name_string("_SB")) == V{'_', 'S', 'B', '_'});
    CHECK(u(aml::name_string("\\_SB")) == V{'\\', '_', 'S', 'B', '_'});
    CHECK(u(aml::name_string("\\")) == V{'\\', 0x00});
    CHECK(u(aml::name_string("^^V0")) == V{'^', '^', 'V', '0', '_', '_'});
    CHECK(u(aml::name_string("\\_SB.V000")) == V{'\\', 0x2e, '_', 'S', 'B', '_', 'V', '0', '0', '0'});
    CHECK(u(aml::name_string("A.B.C")) == V{0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'});
}

TEST_CASE("aml: bad names are errors that quote them") {
    CHECK_THROWS_WITH_AS((void)aml::name_string("_hid"),
                         "AML name '_hid': segment '_hid' is not 1-4 characters of A-Z, 0-9, _ starting with a letter or _",
                         colo::Error);
    CHECK_THROWS_WITH_AS((void)aml::name_string("0ABC"),
                         "AML name '0ABC': segment '0ABC' is not 1-4 characters of A-Z, 0-9, _ starting with a letter or _",
                         colo::Error);
    CHECK_THROWS_AS((void)aml::name_string("TOOLONG"), colo::Error);
    CHECK_THROWS_AS((void)aml::name_string("A..B"), colo::Error);
    CHECK_THROWS_AS((void)aml::name_string("A."), colo::Error);
    CHECK_THROWS_WITH_AS((void)aml::name_string(""), "AML name '': empty", colo::Error);
}

TEST_CASE("aml: integers take the shortest encoding") {
    using V = std::vector<unsigned>;
    CHECK(u(aml::integer(0)) == V{0x00});                                  // Zero
    CHECK(u(aml::integer(1)) == V{0x01});                                  // One
    CHECK(u(aml::integer(2)) == V{0x0a, 0x02});
    CHECK(u(aml::integer(0xff)) == V{0x0a, 0xff});
    CHECK(u(aml::integer(0x100)) == V{0x0b, 0x00, 0x01});
    CHECK(u(aml::integer(0xd0000000)) == V{0x0c, 0x00, 0x00, 0x00, 0xd0});
    CHECK(u(aml::integer(0x123456789)) == V{0x0e, 0x89, 0x67, 0x45, 0x23, 0x01, 0x00, 0x00, 0x00});
}

TEST_CASE("aml: strings and EISA ids") {
    using V = std::vector<unsigned>;
    CHECK(u(aml::string("LNRO0005")) == V{0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00});
    CHECK(u(aml::string("")) == V{0x0d, 0x00});
    CHECK_THROWS_WITH_AS((void)aml::string(std::string("a\0b", 3)),
                         "AML string: byte 0x00 at offset 1 is not ASCII 0x01..0x7f", colo::Error);
    CHECK_THROWS_WITH_AS((void)aml::string("caf\xc3\xa9"), "AML string: byte 0xc3 at offset 3 is not ASCII 0x01..0x7f",
                         colo::Error);
    CHECK(u(aml::eisa_id("PNP0501")) == V{0x0c, 0x41, 0xd0, 0x05, 0x01});  // EisaId ("PNP0501") = 0x0105D041
    CHECK(u(aml::eisa_id("PNP0A03")) == V{0x0c, 0x41, 0xd0, 0x0a, 0x03});
    CHECK_THROWS_WITH_AS((void)aml::eisa_id("pnp0501"), "EISA id 'pnp0501' is not three capital letters and four hex digits",
                         colo::Error);
    CHECK_THROWS_AS((void)aml::eisa_id("PNP050"), colo::Error);
    CHECK_THROWS_AS((void)aml::eisa_id("PNP050G"), colo::Error);
}

TEST_CASE("aml: Name, Device and Scope wrap their bodies with the right PkgLength") {
    using V = std::vector<unsigned>;
    // Name (_UID, 0x07)
    CHECK(u(aml::name("_UID", aml::integer(7))) == V{0x08, '_', 'U', 'I', 'D', 0x0a, 0x07});
    // Device (V000) { Name (_UID, Zero) }
    const auto dev = aml::device("V000", aml::name("_UID", aml::integer(0)));
    CHECK(u(dev) == V{0x5b, 0x82, 0x0b, 'V', '0', '0', '0', 0x08, '_', 'U', 'I', 'D', 0x00});
    // Scope (\_SB) { Device (V000) {...} }
    const auto sb = aml::scope("\\_SB", dev);
    CHECK(u(sb).size() == 2 + 5 + dev.size());
    CHECK(u(aml::Bytes(sb.begin(), sb.begin() + 7)) == V{0x10, 0x13, '\\', '_', 'S', 'B', '_'});
    CHECK(aml::Bytes(sb.begin() + 7, sb.end()) == dev);
    // A body long enough for a two-byte PkgLength: 0x5b 0x82, then 100 + 4 + 2 = 106 = 0x06a.
    const auto big = aml::device("BIG", filler(100));
    CHECK(u(aml::Bytes(big.begin(), big.begin() + 8)) == V{0x5b, 0x82, 0x4a, 0x06, 'B', 'I', 'G', '_'});
    CHECK(big.size() == 2 + 2 + 4 + 100);
}

TEST_CASE("aml: Buffer and ResourceTemplate with its End Tag") {
    using V = std::vector<unsigned>;
    // Buffer () { 0x01, 0x02, 0x03 }
    CHECK(u(aml::buffer(aml::Bytes{std::byte{1}, std::byte{2}, std::byte{3}})) ==
          V{0x11, 0x06, 0x0a, 0x03, 0x01, 0x02, 0x03});
    // ResourceTemplate () {} is a two-byte buffer: the End Tag and its checksum.
    CHECK(u(aml::resource_template({})) == V{0x11, 0x05, 0x0a, 0x02, 0x79, 0x00});
}

TEST_CASE("aml: resource descriptors") {
    using V = std::vector<unsigned>;
    // IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
    CHECK(u(aml::io_port(0x3f8, 0x3f8, 1, 8)) == V{0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08});
    // IRQNoFlags () {4}
    CHECK(u(aml::irq_no_flags(4)) == V{0x22, 0x10, 0x00});
    CHECK(u(aml::irq_no_flags(15)) == V{0x22, 0x00, 0x80});
    CHECK_THROWS_WITH_AS((void)aml::irq_no_flags(16), "IRQNoFlags: IRQ 16 is not an ISA IRQ (0..15)", colo::Error);
    // Memory32Fixed (ReadWrite, 0xD0001000, 0x00001000)
    CHECK(u(aml::memory32_fixed_read_write(0xd0001000, 0x1000)) ==
          V{0x86, 0x09, 0x00, 0x01, 0x00, 0x10, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00});
    // Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) {17}
    CHECK(u(aml::interrupt_edge_high(17)) == V{0x89, 0x06, 0x00, 0x03, 0x01, 0x11, 0x00, 0x00, 0x00});
    // A whole template: the buffer's size counts both descriptors and the End Tag (12 + 9 + 2 = 23).
    const auto crs = aml::resource_template(aml::join({aml::memory32_fixed_read_write(0xd0000000, 0x1000),
                                                        aml::interrupt_edge_high(16)}));
    CHECK(u(aml::Bytes(crs.begin(), crs.begin() + 4)) == V{0x11, 0x1a, 0x0a, 0x17});
    CHECK(crs.size() == 4 + 23);
    CHECK(u(aml::Bytes(crs.end() - 2, crs.end())) == V{0x79, 0x00});
}
