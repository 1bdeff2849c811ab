#include "kvm/devices/virtqueue.hpp"

#include <atomic>
#include <cstring>
#include <string>

namespace colo::kvm {

namespace {

constexpr std::uint16_t kDescNext = 1;
constexpr std::uint16_t kDescWrite = 2;
constexpr std::uint16_t kDescIndirect = 4;
constexpr std::uint16_t kAvailNoInterrupt = 1;

struct Descriptor {
    std::uint64_t addr;
    std::uint32_t len;
    std::uint16_t flags;
    std::uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

template <typename T>
T load(DeviceMemory& memory, std::uint64_t gpa) {
    T value;
    std::memcpy(&value, memory.map(gpa, sizeof value).data(), sizeof value);
    return value;
}

template <typename T>
void store(DeviceMemory& memory, std::uint64_t gpa, const T& value) {
    std::memcpy(memory.map(gpa, sizeof value).data(), &value, sizeof value);
    memory.written(gpa, sizeof value);
}

std::uint64_t table_bytes(const QueueState& q) { return std::uint64_t{16} * q.size; }
std::uint64_t driver_bytes(const QueueState& q) { return 6 + std::uint64_t{2} * q.size; }
std::uint64_t device_bytes(const QueueState& q) { return 6 + std::uint64_t{8} * q.size; }

}  // namespace

void check_queue(DeviceMemory& memory, const QueueState& queue) {
    if (queue.size == 0 || queue.size > kMaxQueueSize || (queue.size & (queue.size - 1)) != 0) {
        throw VirtqueueError("virtqueue size " + std::to_string(queue.size) + " is not a power of two up to " +
                             std::to_string(kMaxQueueSize));
    }
    if (queue.desc % 16 != 0 || queue.driver % 2 != 0 || queue.device % 4 != 0) {
        throw VirtqueueError("virtqueue rings are misaligned");
    }
    try {
        (void)memory.map(queue.desc, table_bytes(queue));
        (void)memory.map(queue.driver, driver_bytes(queue));
        (void)memory.map(queue.device, device_bytes(queue));
    } catch (const Error& e) {
        throw VirtqueueError(std::string("virtqueue ring: ") + e.what());
    }
}

std::optional<Chain> pop_chain(DeviceMemory& memory, QueueState& queue) {
    // Acquire: the ring entries the driver published before this index are read after it.
    const auto avail_idx = std::atomic_ref<std::uint16_t>(
        *reinterpret_cast<std::uint16_t*>(memory.map(queue.driver + 2, 2).data())).load(std::memory_order_acquire);
    if (avail_idx == queue.next_avail) return std::nullopt;
    if (static_cast<std::uint16_t>(avail_idx - queue.next_avail) > queue.size) {
        throw VirtqueueError("the driver made " + std::to_string(static_cast<std::uint16_t>(avail_idx - queue.next_avail)) +
                             " buffers available in a queue of " + std::to_string(queue.size));
    }
    const auto head = load<std::uint16_t>(memory, queue.driver + 4 + 2 * static_cast<std::uint64_t>(queue.next_avail % queue.size));
    ++queue.next_avail;
    Chain chain;
    chain.head = head;
    std::uint16_t index = head;
    for (unsigned n = 0;; ++n) {
        if (index >= queue.size) throw VirtqueueError("descriptor " + std::to_string(index) + " is outside the table");
        if (n >= queue.size) throw VirtqueueError("a descriptor chain is longer than its queue (a loop?)");
        const auto d = load<Descriptor>(memory, queue.desc + 16 * std::uint64_t{index});
        if ((d.flags & kDescIndirect) != 0) throw VirtqueueError("an indirect descriptor, which was not offered");
        try {
            (void)memory.map(d.addr, d.len);
        } catch (const Error& e) {
            throw VirtqueueError(std::string("descriptor buffer: ") + e.what());
        }
        chain.segments.push_back(Segment{d.addr, d.len, (d.flags & kDescWrite) != 0});
        if ((d.flags & kDescNext) == 0) break;
        index = d.next;
    }
    return chain;
}

void push_used(DeviceMemory& memory, QueueState& queue, std::uint16_t head, std::uint32_t written) {
    const std::uint64_t entry = queue.device + 4 + 8 * static_cast<std::uint64_t>(queue.next_used % queue.size);
    store(memory, entry, std::uint32_t{head});
    store(memory, entry + 4, written);
    ++queue.next_used;
    // The entry is visible before the index that publishes it (release), and the index before
    // wants_interrupt reads the driver's flags (sequentially consistent: a store-load order, a
    // full fence on x86). A driver that re-enables interrupts clears the flag, fences and then
    // reads this index (Linux's virtqueue_enable_cb); without our side of that order both could
    // read the old values and the interrupt for this buffer would be lost. check_queue made the
    // ring 4-byte aligned, so the index is 2-byte aligned.
    std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(memory.map(queue.device + 2, 2).data()))
        .store(queue.next_used, std::memory_order_seq_cst);
    memory.written(queue.device + 2, 2);
}

bool wants_interrupt(DeviceMemory& memory, const QueueState& queue) {
    // Sequentially consistent: ordered after push_used's index store (see there). The driver
    // ring is 2-byte aligned (check_queue).
    const auto flags = std::atomic_ref<std::uint16_t>(
        *reinterpret_cast<std::uint16_t*>(memory.map(queue.driver, 2).data())).load(std::memory_order_seq_cst);
    return (flags & kAvailNoInterrupt) == 0;
}

}  // namespace colo::kvm
