// A device on the guest-physical MMIO bus (kvm/devices/mmio_bus.hpp): registers addressed by
// offset from the device's base address.
//
// Threading: the bus calls read/write from the vCPU thread that took the exit.
#pragma once

#include <cstdint>

namespace colo::kvm {

class MmioDevice {
public:
    virtual ~MmioDevice() = default;
    // width is 1, 2, 4 or 8 bytes.
    [[nodiscard]] virtual std::uint64_t read(std::uint64_t offset, unsigned width) = 0;
    virtual void write(std::uint64_t offset, unsigned width, std::uint64_t value) = 0;
};

}  // namespace colo::kvm
