// Dispatches a vCPU's MMIO exits (KVM_EXIT_MMIO) to the device registered for the address range.
// An address no device claims reads as all ones and ignores writes, as on a PC with nothing
// there; those accesses are counted.
//
// Threading: add() before any vCPU runs; dispatch() from vCPU threads (devices serialise
// themselves).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "kvm/devices/mmio_device.hpp"

namespace colo::kvm {

class MmioBus {
public:
    // `device` must outlive the bus. Throws colo::Error when the range overlaps another.
    void add(std::uint64_t base, std::uint64_t length, MmioDevice& device);
    // One KVM_EXIT_MMIO: `data` is the access (1..8 bytes, little-endian), filled in for reads.
    void dispatch(std::uint64_t address, bool is_write, std::span<std::uint8_t> data);
    [[nodiscard]] std::uint64_t unclaimed_accesses() const noexcept { return unclaimed_.load(); }

private:
    struct Range {
        std::uint64_t base;
        std::uint64_t length;
        MmioDevice* device;
    };
    std::vector<Range> ranges_;
    std::atomic<std::uint64_t> unclaimed_{0};
};

}  // namespace colo::kvm
