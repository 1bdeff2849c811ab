#include "kvm/devices/port_io_bus.hpp"

#include <cstring>
#include <string>

#include "backends/error.hpp"

namespace colo::kvm {

void PortIoBus::add(std::uint16_t base, std::uint16_t length, PortIoDevice& device) {
    const std::uint32_t end = std::uint32_t{base} + length;
    for (const auto& r : ranges_) {
        if (base < r.base + r.length && r.base < end) {
            throw Error("port range " + std::to_string(base) + "+" + std::to_string(length) + " overlaps another device");
        }
    }
    ranges_.push_back(Range{base, length, &device});
}

void PortIoBus::dispatch(std::uint16_t port, bool is_write, unsigned width, std::uint32_t count,
                         std::span<std::byte> data) {
    if (width != 1 && width != 2 && width != 4) throw Error("port I/O of width " + std::to_string(width));
    if (data.size() < std::size_t{count} * width) throw Error("port I/O data shorter than count * width");
    PortIoDevice* device = nullptr;
    std::uint16_t offset = 0;
    for (const auto& r : ranges_) {
        if (port >= r.base && port - r.base < r.length) {
            device = r.device;
            offset = static_cast<std::uint16_t>(port - r.base);
            break;
        }
    }
    for (std::uint32_t i = 0; i < count; ++i) {
        std::byte* item = data.data() + std::size_t{i} * width;
        if (device == nullptr) {
            unclaimed_.fetch_add(1, std::memory_order_relaxed);
            if (!is_write) std::memset(item, 0xff, width);
            continue;
        }
        if (is_write) {
            std::uint32_t value = 0;
            std::memcpy(&value, item, width);
            device->write(offset, width, value);
        } else {
            const std::uint32_t value = device->read(offset, width);
            std::memcpy(item, &value, width);
        }
    }
}

}  // namespace colo::kvm
