#include "kvm/devices/virtio_mmio.hpp"

#include <algorithm>

namespace colo::kvm::virtio_mmio {

namespace {
std::uint32_t low(std::uint64_t v) { return static_cast<std::uint32_t>(v); }
std::uint32_t high(std::uint64_t v) { return static_cast<std::uint32_t>(v >> 32); }
void set_low(std::uint64_t& v, std::uint64_t x) { v = (v & 0xffffffff00000000ull) | (x & 0xffffffffull); }
void set_high(std::uint64_t& v, std::uint64_t x) { v = (v & 0xffffffffull) | (x << 32); }
}  // namespace

std::vector<std::byte> StateReader::bytes(std::size_t n) {
    if (in_.size() - at_ < n) fail("cut short");
    std::vector<std::byte> out(in_.begin() + static_cast<std::ptrdiff_t>(at_),
                               in_.begin() + static_cast<std::ptrdiff_t>(at_ + n));
    at_ += n;
    return out;
}

Registers::Registers(std::uint32_t device_id, std::uint64_t offered, unsigned queue_count)
    : device_id_(device_id), offered_(offered), queue_count_(std::min(queue_count, kMaxQueues)) {}

std::uint32_t Registers::read(std::uint64_t offset) const {
    const bool valid_queue = queue_sel_ < queue_count_;
    const QueueState& q = queues_[valid_queue ? queue_sel_ : 0];
    switch (offset) {
        case kMagic: return kMagicValue;
        case kVersion: return 2;
        case kDeviceId: return device_id_;
        case kVendorId: return kVendor;
        case kDeviceFeatures: return device_features_sel_ == 0 ? low(offered_) : device_features_sel_ == 1 ? high(offered_) : 0;
        case kQueueNumMax: return valid_queue ? kMaxQueueSize : 0;
        case kQueueReady: return valid_queue && q.ready ? 1 : 0;
        case kInterruptStatus: return interrupt_status_;
        case kStatus: return status_;
        case kConfigGeneration: return config_generation_;
        default: return 0;
    }
}

void Registers::set_needs_reset() {
    status_ |= kStatusNeedsReset;
    interrupt_status_ |= kInterruptConfig;
}

Registers::Effect Registers::write(DeviceMemory& memory, std::uint64_t offset, std::uint32_t v) {
    QueueState* q = queue_sel_ < queue_count_ ? &queues_[queue_sel_] : nullptr;
    // A ready queue's size and rings were checked when it became ready (alignment, inside RAM):
    // a driver may change them only with the queue not ready (virtio spec 4.2.3.2), so later
    // writes are ignored instead of letting unchecked rings in.
    QueueState* layout = q != nullptr && !q->ready ? q : nullptr;
    switch (offset) {
        case kQueueNotify: return Effect::notify;
        case kDeviceFeaturesSel: device_features_sel_ = v; break;
        case kDriverFeaturesSel: driver_features_sel_ = v; break;
        case kDriverFeatures:
            if (driver_features_sel_ == 0) set_low(driver_features_, v & low(offered_));
            else if (driver_features_sel_ == 1) set_high(driver_features_, v & high(offered_));
            break;
        case kQueueSel: queue_sel_ = v; break;
        case kQueueNum: if (layout) layout->size = static_cast<std::uint16_t>(std::min<std::uint32_t>(v, 0xffff)); break;
        case kQueueReady:
            if (!q) break;
            if (v == 1) {
                try {
                    check_queue(memory, *q);
                    q->ready = true;
                } catch (const Error&) {
                    set_needs_reset();
                    return Effect::broken;
                }
            } else {
                q->ready = false;
            }
            break;
        case kInterruptAck: interrupt_status_ &= ~v; break;
        case kStatus:
            if (v == 0) {
                *this = Registers(device_id_, offered_, queue_count_);
                return Effect::reset;
            }
            // DEVICE_NEEDS_RESET is the device's to set and only a reset clears it: a driver
            // writing its status bits back must not bring the broken queues into use again.
            status_ = v | (status_ & kStatusNeedsReset);
            return Effect::status;
        case kQueueDescLow: if (layout) set_low(layout->desc, v); break;
        case kQueueDescHigh: if (layout) set_high(layout->desc, v); break;
        case kQueueDriverLow: if (layout) set_low(layout->driver, v); break;
        case kQueueDriverHigh: if (layout) set_high(layout->driver, v); break;
        case kQueueDeviceLow: if (layout) set_low(layout->device, v); break;
        case kQueueDeviceHigh: if (layout) set_high(layout->device, v); break;
        default: break;
    }
    return Effect::none;
}

void Registers::save(StateWriter& w) const {
    w.put(driver_features_);
    w.put(device_features_sel_);
    w.put(driver_features_sel_);
    w.put(queue_sel_);
    w.put(status_);
    w.put(interrupt_status_);
    w.put(config_generation_);
    for (unsigned i = 0; i < queue_count_; ++i) {
        const QueueState& q = queues_[i];
        w.put(q.size);
        w.put(q.next_avail);
        w.put(q.next_used);
        w.put(static_cast<std::uint16_t>(q.ready ? 1 : 0));
        w.put(q.desc);
        w.put(q.driver);
        w.put(q.device);
    }
}

void Registers::load(StateReader& r, DeviceMemory& memory) {
    driver_features_ = r.get<std::uint64_t>();
    device_features_sel_ = r.get<std::uint32_t>();
    driver_features_sel_ = r.get<std::uint32_t>();
    queue_sel_ = r.get<std::uint32_t>();
    status_ = r.get<std::uint32_t>();
    interrupt_status_ = r.get<std::uint32_t>();
    config_generation_ = r.get<std::uint32_t>();
    if ((driver_features_ & ~offered_) != 0) r.fail("features this device does not offer");
    for (unsigned i = 0; i < queue_count_; ++i) {
        QueueState& q = queues_[i];
        q.size = r.get<std::uint16_t>();
        q.next_avail = r.get<std::uint16_t>();
        q.next_used = r.get<std::uint16_t>();
        const auto ready = r.get<std::uint16_t>();
        if (ready > 1) r.fail("queue ready is " + std::to_string(ready));
        q.ready = ready == 1;
        q.desc = r.get<std::uint64_t>();
        q.driver = r.get<std::uint64_t>();
        q.device = r.get<std::uint64_t>();
        if (q.ready) check_queue(memory, q);
    }
}

}  // namespace colo::kvm::virtio_mmio
