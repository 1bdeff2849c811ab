// A virtio 1.x split virtqueue as the device sees it (virtio spec 2.7): the descriptor table,
// the driver ("available") ring and the device ("used") ring, all in guest memory, reached
// through DeviceMemory so that the logic runs over plain memory in unit tests.
//
// Everything the guest supplies is checked: ring and buffer addresses must lie in guest RAM,
// descriptor indices inside the table, and a chain may not be longer than the queue (which also
// ends a loop). A violation throws VirtqueueError; the device then sets DEVICE_NEEDS_RESET and
// stops using the queue (a hostile guest breaks its own NIC, never the VMM). Indirect
// descriptors are not offered, so a descriptor that says it is one is an error too.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "backends/error.hpp"

namespace colo::kvm {

class VirtqueueError : public Error {
public:
    using Error::Error;
};

// How a device reaches guest memory. map() throws colo::Error for a range outside guest RAM;
// written() records a range the device wrote (it is dirty for the next checkpoint).
class DeviceMemory {
public:
    virtual ~DeviceMemory() = default;
    [[nodiscard]] virtual std::span<std::byte> map(std::uint64_t gpa, std::uint64_t bytes) = 0;
    virtual void written(std::uint64_t gpa, std::uint64_t bytes) = 0;
};

// One queue's registers and the device's own position in it: this is its migratable state.
struct QueueState {
    std::uint16_t size = 0;  // QueueNum, set by the driver (a power of two up to kMaxQueueSize)
    bool ready = false;
    std::uint64_t desc = 0, driver = 0, device = 0;  // guest-physical ring addresses
    std::uint16_t next_avail = 0;  // next driver-ring entry the device takes
    std::uint16_t next_used = 0;   // next device-ring entry the device fills
    bool operator==(const QueueState&) const = default;
};

inline constexpr std::uint16_t kMaxQueueSize = 256;

struct Segment {
    std::uint64_t gpa = 0;
    std::uint32_t length = 0;
    bool device_writable = false;
};

struct Chain {
    std::uint16_t head = 0;
    std::vector<Segment> segments;
};

// Throws VirtqueueError when the queue's size or ring addresses are unusable.
void check_queue(DeviceMemory& memory, const QueueState& queue);
// The next chain the driver made available, or nullopt when there is none.
[[nodiscard]] std::optional<Chain> pop_chain(DeviceMemory& memory, QueueState& queue);
// Hands a chain back to the driver with `written` bytes of it filled.
void push_used(DeviceMemory& memory, QueueState& queue, std::uint16_t head, std::uint32_t written);
// Whether the driver wants an interrupt for used buffers (VIRTQ_AVAIL_F_NO_INTERRUPT clear).
[[nodiscard]] bool wants_interrupt(DeviceMemory& memory, const QueueState& queue);

}  // namespace colo::kvm
