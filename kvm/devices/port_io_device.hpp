// A device on the x86 port-I/O bus (STYLE §8): registers addressed by offset from the device's
// base port. Saving and restoring device state is per device (each has its own format).
//
// Threading: the bus calls read/write from the vCPU thread that took the exit; a device that is
// also driven from elsewhere (console input) says so in its own header.
#pragma once

#include <cstdint>

namespace colo::kvm {

class PortIoDevice {
public:
    virtual ~PortIoDevice() = default;
    // width is 1, 2 or 4 bytes.
    [[nodiscard]] virtual std::uint32_t read(std::uint16_t offset, unsigned width) = 0;
    virtual void write(std::uint16_t offset, unsigned width, std::uint32_t value) = 0;
};

}  // namespace colo::kvm
