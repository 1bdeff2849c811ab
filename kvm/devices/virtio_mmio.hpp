// What every virtio-mmio device (virtio 1.x, MMIO version 2: virtio spec 4.2.2) has in common,
// shared by virtio-net (kvm/devices/virtio_net.hpp) and virtio-blk (kvm/devices/virtio_blk.hpp):
// the register block below the device's config space, its queues' registers, and the versioned
// state helpers.
//
// The register rules both devices keep: a ready queue's size and ring addresses do not change (a
// driver sets them while the queue is not ready, virtio spec 4.2.3.2), and were checked when it
// became ready (check_queue); a queue that fails that check sets DEVICE_NEEDS_RESET, which only a
// reset (Status = 0) clears. Features the driver acks are masked with what the device offers.
//
// Not thread-safe: the device holds its own lock around every call.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "backends/error.hpp"
#include "kvm/devices/virtqueue.hpp"

namespace colo::kvm::virtio_mmio {

// Register offsets (virtio spec 4.2.2).
enum : std::uint64_t {
    kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
    kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024,
    kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038, kQueueReady = 0x044, kQueueNotify = 0x050,
    kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070,
    kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094,
    kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4, kConfigGeneration = 0x0fc, kConfig = 0x100,
};
inline constexpr std::uint32_t kMagicValue = 0x74726976;  // "virt"
inline constexpr std::uint32_t kVendor = 0x4f4c4f43;      // "COLO"
inline constexpr std::uint64_t kFeatureVersion1 = 1ull << 32;
inline constexpr std::uint32_t kStatusDriverOk = 4;
inline constexpr std::uint32_t kStatusNeedsReset = 64;
inline constexpr std::uint32_t kInterruptUsed = 1;
inline constexpr std::uint32_t kInterruptConfig = 2;
inline constexpr std::uint64_t kRegisterBytes = 0x1000;
inline constexpr unsigned kMaxQueues = 2;

// A device's state record, written field by field in host (x86-64: little-endian) order.
class StateWriter {
public:
    template <typename T>
    void put(const T& v) {
        const auto* p = reinterpret_cast<const std::byte*>(&v);
        out.insert(out.end(), p, p + sizeof v);
    }
    std::vector<std::byte> out;
};

// Reads a record back; `what` names it in errors ("virtio-net state: cut short").
class StateReader {
public:
    StateReader(std::span<const std::byte> in, std::string what) : in_(in), what_(std::move(what)) {}
    template <typename T>
    T get() {
        if (in_.size() - at_ < sizeof(T)) fail("cut short");
        T v;
        std::memcpy(&v, in_.data() + at_, sizeof v);
        at_ += sizeof v;
        return v;
    }
    std::vector<std::byte> bytes(std::size_t n);
    [[nodiscard]] bool done() const { return at_ == in_.size(); }
    [[noreturn]] void fail(const std::string& why) const { throw Error(what_ + ": " + why); }

private:
    std::span<const std::byte> in_;
    std::string what_;
    std::size_t at_ = 0;
};

// The common registers of one device with `queue_count` queues.
class Registers {
public:
    Registers(std::uint32_t device_id, std::uint64_t offered, unsigned queue_count);

    // A register below kConfig (32-bit access; other widths read 0).
    [[nodiscard]] std::uint32_t read(std::uint64_t offset) const;

    // What a write asks of the device beyond the registers.
    enum class Effect {
        none,
        notify,  // QueueNotify: serve queue `value` (not handled here)
        reset,   // Status = 0: the registers are reset; the device drops its own state
        status,  // another Status write: the device may have become ready
        broken,  // a queue failed its check: DEVICE_NEEDS_RESET is set; pulse the interrupt
    };
    [[nodiscard]] Effect write(DeviceMemory& memory, std::uint64_t offset, std::uint32_t value);

    [[nodiscard]] bool running() const {
        return (status_ & kStatusDriverOk) != 0 && (status_ & kStatusNeedsReset) == 0;
    }
    [[nodiscard]] std::uint32_t status() const { return status_; }
    [[nodiscard]] std::uint64_t driver_features() const { return driver_features_; }
    [[nodiscard]] unsigned queue_count() const { return queue_count_; }
    [[nodiscard]] QueueState& queue(unsigned i) { return queues_[i]; }
    // The guest broke a queue: stop using the queues until it resets the device. The caller
    // pulses the interrupt (the config-change cause is set here).
    void set_needs_reset();
    // Sets an interrupt cause; the caller pulses the line.
    void raise(std::uint32_t cause) { interrupt_status_ |= cause; }

    // {u64 driver features, u32 device/driver features select, queue select, status, interrupt
    // status, config generation; per queue {u16 size, next avail, next used, ready; u64 desc,
    // driver, device}}.
    void save(StateWriter& w) const;
    // Reads what save wrote into this (a scratch object: on error the device's own stays as it
    // was), checking the features and every ready queue against `memory`.
    void load(StateReader& r, DeviceMemory& memory);

private:
    std::uint32_t device_id_;
    std::uint64_t offered_;
    unsigned queue_count_;
    std::uint64_t driver_features_ = 0;
    std::uint32_t device_features_sel_ = 0, driver_features_sel_ = 0, queue_sel_ = 0;
    std::uint32_t status_ = 0, interrupt_status_ = 0, config_generation_ = 0;
    std::array<QueueState, kMaxQueues> queues_{};
};

}  // namespace colo::kvm::virtio_mmio
