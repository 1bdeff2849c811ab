#include "kvm/devices/mmio_bus.hpp"

#include <cstring>
#include <string>

#include "backends/error.hpp"

namespace colo::kvm {

void MmioBus::add(std::uint64_t base, std::uint64_t length, MmioDevice& device) {
    for (const auto& range : ranges_) {
        if (base < range.base + range.length && range.base < base + length) {
            throw Error("MMIO range at " + std::to_string(base) + " overlaps a device at " + std::to_string(range.base));
        }
    }
    ranges_.push_back({base, length, &device});
}

void MmioBus::dispatch(std::uint64_t address, bool is_write, std::span<std::uint8_t> data) {
    const unsigned width = static_cast<unsigned>(data.size());
    for (const auto& range : ranges_) {
        if (address < range.base || address - range.base >= range.length) continue;
        const std::uint64_t offset = address - range.base;
        if (is_write) {
            std::uint64_t value = 0;
            std::memcpy(&value, data.data(), std::min<std::size_t>(width, sizeof value));
            range.device->write(offset, width, value);
        } else {
            const std::uint64_t value = range.device->read(offset, width);
            std::memcpy(data.data(), &value, std::min<std::size_t>(width, sizeof value));
        }
        return;
    }
    unclaimed_.fetch_add(1, std::memory_order_relaxed);
    if (!is_write) std::memset(data.data(), 0xff, data.size());
}

}  // namespace colo::kvm
