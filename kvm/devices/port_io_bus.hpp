// Dispatches a vCPU's port-I/O exits to the device registered for the port range. A port no
// device claims reads as all ones and ignores writes, as on a PC with nothing there; those
// accesses are counted so a test (or a log) can tell the guest poked at nothing.
//
// Threading: add() before any vCPU runs; dispatch() from vCPU threads (devices serialise
// themselves); the registry itself is immutable once vCPUs run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>
#include <atomic>

#include "kvm/devices/port_io_device.hpp"

namespace colo::kvm {

class PortIoBus {
public:
    // `device` must outlive the bus. Throws colo::Error when the range overlaps another.
    void add(std::uint16_t base, std::uint16_t length, PortIoDevice& device);

    // One KVM_EXIT_IO: `count` accesses of `width` bytes each at `port`, data in `data`
    // (count * width bytes; filled in for reads).
    void dispatch(std::uint16_t port, bool is_write, unsigned width, std::uint32_t count, std::span<std::byte> data);

    [[nodiscard]] std::uint64_t unclaimed_accesses() const noexcept { return unclaimed_.load(); }

private:
    struct Range {
        std::uint16_t base;
        std::uint16_t length;
        PortIoDevice* device;
    };
    std::vector<Range> ranges_;
    std::atomic<std::uint64_t> unclaimed_{0};
};

}  // namespace colo::kvm
