// The port-I/O bus with a recording device and no VM.
#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <vector>

#include "backends/error.hpp"
#include "kvm/devices/port_io_bus.hpp"

using colo::kvm::PortIoBus;
using colo::kvm::PortIoDevice;

namespace {

struct Recorder final : PortIoDevice {
    struct Access {
        bool write;
        std::uint16_t offset;
        unsigned width;
        std::uint32_t value;
    };
    std::vector<Access> log;
    std::uint32_t next_read = 0;
    std::uint32_t read(std::uint16_t offset, unsigned width) override {
        log.push_back({false, offset, width, next_read});
        return next_read++;
    }
    void write(std::uint16_t offset, unsigned width, std::uint32_t value) override {
        log.push_back({true, offset, width, value});
    }
};

}  // namespace

TEST_CASE("port I/O bus: dispatches by range with offsets, string I/O item by item") {
    PortIoBus bus;
    Recorder com1, other;
    bus.add(0x3f8, 8, com1);
    bus.add(0x400, 4, other);

    std::array<std::byte, 3> text = {std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
    bus.dispatch(0x3f8, true, 1, 3, text);  // rep outsb of three bytes
    REQUIRE(com1.log.size() == 3);
    CHECK(com1.log[0].value == 'a');
    CHECK(com1.log[2].value == 'c');
    CHECK(com1.log[2].offset == 0);

    std::array<std::byte, 4> word{};
    com1.next_read = 0x1234;
    bus.dispatch(0x3fd, false, 2, 1, word);
    std::uint16_t got = 0;
    std::memcpy(&got, word.data(), 2);
    CHECK(got == 0x1234);
    CHECK(com1.log.back().offset == 5);
    CHECK(com1.log.back().width == 2);
    CHECK(other.log.empty());
    CHECK(bus.unclaimed_accesses() == 0);
}

TEST_CASE("port I/O bus: nothing at a port reads all ones, ignores writes, and is counted") {
    PortIoBus bus;
    std::array<std::byte, 4> data{};
    bus.dispatch(0x80, false, 4, 1, data);
    for (const auto b : data) CHECK(b == std::byte{0xff});
    bus.dispatch(0x80, true, 1, 1, data);
    CHECK(bus.unclaimed_accesses() == 2);
}

TEST_CASE("port I/O bus: overlapping ranges and bad exits are clear errors") {
    PortIoBus bus;
    Recorder a, b;
    bus.add(0x3f8, 8, a);
    CHECK_THROWS_AS(bus.add(0x3ff, 2, b), colo::Error);
    CHECK_THROWS_AS(bus.add(0x3f0, 9, b), colo::Error);
    CHECK_NOTHROW(bus.add(0x3f0, 8, b));
    std::array<std::byte, 8> data{};
    CHECK_THROWS_AS(bus.dispatch(0x3f8, true, 3, 1, data), colo::Error);
    CHECK_THROWS_AS(bus.dispatch(0x3f8, true, 4, 3, data), colo::Error);  // 12 bytes claimed, 8 given
}
