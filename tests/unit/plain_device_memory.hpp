// "Guest RAM" for device unit tests (virtio-net, virtio-blk): 64 KiB of plain memory at
// guest-physical 0 that remembers every range the device reported written.
#pragma once

#include <cstring>
#include <utility>
#include <vector>

#include "backends/error.hpp"
#include "kvm/devices/virtqueue.hpp"

namespace device_test {

class PlainMemory final : public colo::kvm::DeviceMemory {
public:
    std::vector<std::byte> ram = std::vector<std::byte>(64 * 1024);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> writes;
    std::span<std::byte> map(std::uint64_t gpa, std::uint64_t bytes) override {
        if (gpa > ram.size() || bytes > ram.size() - gpa) throw colo::Error("outside RAM");
        return {ram.data() + gpa, bytes};
    }
    void written(std::uint64_t gpa, std::uint64_t bytes) override { writes.emplace_back(gpa, bytes); }
    template <typename T>
    void put(std::uint64_t gpa, T value) { std::memcpy(ram.data() + gpa, &value, sizeof value); }
    template <typename T>
    T get(std::uint64_t gpa) const {
        T value;
        std::memcpy(&value, ram.data() + gpa, sizeof value);
        return value;
    }
    // Whether every byte of [gpa, gpa + bytes) lies in a range reported written.
    [[nodiscard]] bool reported(std::uint64_t gpa, std::uint64_t bytes) const {
        for (std::uint64_t at = gpa; at < gpa + bytes; ++at) {
            bool found = false;
            for (const auto& [start, length] : writes) found = found || (at >= start && at < start + length);
            if (!found) return false;
        }
        return true;
    }
};

}  // namespace device_test
