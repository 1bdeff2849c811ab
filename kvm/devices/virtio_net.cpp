#include "kvm/devices/virtio_net.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "backends/error.hpp"

namespace colo::kvm {

namespace {

// virtio-mmio version 2 registers (virtio spec 4.2.2).
enum : std::uint64_t {
    kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
    kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024,
    kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038, kQueueReady = 0x044, kQueueNotify = 0x050,
    kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070,
    kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094,
    kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4, kConfigGeneration = 0x0fc, kConfig = 0x100,
};
constexpr std::uint32_t kMagicValue = 0x74726976;  // "virt"
constexpr std::uint32_t kVendor = 0x4f4c4f43;      // "COLO"
constexpr std::uint32_t kNetDevice = 1;
constexpr std::uint64_t kFeatureMac = 1ull << 5;
constexpr std::uint64_t kFeatureVersion1 = 1ull << 32;
constexpr std::uint64_t kOffered = kFeatureMac | kFeatureVersion1;
constexpr std::uint32_t kStatusDriverOk = 4;
constexpr std::uint32_t kStatusNeedsReset = 64;
constexpr std::uint32_t kInterruptUsed = 1;
constexpr std::uint32_t kInterruptConfig = 2;
constexpr std::uint16_t kQueueSize = kMaxQueueSize;
constexpr unsigned kRx = 0, kTx = 1;
constexpr std::size_t kHeaderBytes = 12;  // virtio_net_hdr, version 1
constexpr std::size_t kFrameLimit = kMaxFrameBytes;

std::uint32_t low(std::uint64_t v) { return static_cast<std::uint32_t>(v); }
std::uint32_t high(std::uint64_t v) { return static_cast<std::uint32_t>(v >> 32); }
void set_low(std::uint64_t& v, std::uint64_t x) { v = (v & 0xffffffff00000000ull) | (x & 0xffffffffull); }
void set_high(std::uint64_t& v, std::uint64_t x) { v = (v & 0xffffffffull) | (x << 32); }

class StateWriter {
public:
    template <typename T>
    void put(const T& v) {
        const auto* p = reinterpret_cast<const std::byte*>(&v);
        out.insert(out.end(), p, p + sizeof v);
    }
    std::vector<std::byte> out;
};

class StateReader {
public:
    explicit StateReader(std::span<const std::byte> in) : in_(in) {}
    template <typename T>
    T get() {
        if (in_.size() - at_ < sizeof(T)) throw Error("virtio-net state: cut short");
        T v;
        std::memcpy(&v, in_.data() + at_, sizeof v);
        at_ += sizeof v;
        return v;
    }
    std::vector<std::byte> bytes(std::size_t n) {
        if (in_.size() - at_ < n) throw Error("virtio-net state: cut short");
        std::vector<std::byte> out(in_.begin() + static_cast<std::ptrdiff_t>(at_),
                                   in_.begin() + static_cast<std::ptrdiff_t>(at_ + n));
        at_ += n;
        return out;
    }
    [[nodiscard]] bool done() const { return at_ == in_.size(); }

private:
    std::span<const std::byte> in_;
    std::size_t at_ = 0;
};

}  // namespace

VirtioNet::VirtioNet(VifConfig config, DeviceMemory& memory, std::function<void()> interrupt)
    : config_(std::move(config)), memory_(memory), interrupt_(std::move(interrupt)) {}

VirtioNet::~VirtioNet() { stop_reader(); }

// --- registers

bool VirtioNet::running_locked() const {
    return (regs_.status & kStatusDriverOk) != 0 && (regs_.status & kStatusNeedsReset) == 0;
}

void VirtioNet::reset_locked() {
    regs_ = Registers{};
    backlog_.clear();
}

void VirtioNet::fail_locked(const std::string&) {
    // The guest broke its own queues: stop using them until it resets the device.
    regs_.status |= kStatusNeedsReset;
    raise_locked(kInterruptConfig);
}

void VirtioNet::raise_locked(std::uint32_t cause) {
    regs_.interrupt_status |= cause;
    if (interrupt_) interrupt_();
}

std::uint64_t VirtioNet::read(std::uint64_t offset, unsigned width) {
    std::lock_guard lock(mutex_);
    if (offset >= kConfig) {
        // virtio_net_config: the MAC first; the rest (status, queue pairs) is not offered.
        std::uint64_t value = 0;
        for (unsigned i = 0; i < width && i < 8; ++i) {
            const std::uint64_t at = offset - kConfig + i;
            if (at < config_.mac.size()) value |= std::uint64_t{config_.mac[at]} << (8 * i);
        }
        return value;
    }
    if (width != 4) return 0;
    const QueueState& q = regs_.queues[std::min<std::uint32_t>(regs_.queue_sel, 1)];
    const bool valid_queue = regs_.queue_sel < 2;
    switch (offset) {
        case kMagic: return kMagicValue;
        case kVersion: return 2;
        case kDeviceId: return kNetDevice;
        case kVendorId: return kVendor;
        case kDeviceFeatures: return regs_.device_features_sel == 0 ? low(kOffered) : regs_.device_features_sel == 1 ? high(kOffered) : 0;
        case kQueueNumMax: return valid_queue ? kQueueSize : 0;
        case kQueueReady: return valid_queue && q.ready ? 1 : 0;
        case kInterruptStatus: return regs_.interrupt_status;
        case kStatus: return regs_.status;
        case kConfigGeneration: return regs_.config_generation;
        default: return 0;
    }
}

void VirtioNet::write(std::uint64_t offset, unsigned width, std::uint64_t value) {
    if (width != 4) return;
    const auto v = static_cast<std::uint32_t>(value);
    if (offset == kQueueNotify) {
        if (v == kTx) {
            transmit_from_guest();
        } else if (v == kRx) {
            std::lock_guard lock(mutex_);
            receive_backlog_locked();
        }
        return;
    }
    std::lock_guard lock(mutex_);
    QueueState* q = regs_.queue_sel < 2 ? &regs_.queues[regs_.queue_sel] : nullptr;
    // A ready queue's size and rings were checked when it became ready (alignment, inside RAM):
    // a driver may change them only with the queue not ready (virtio spec 4.2.3.2), so later
    // writes are ignored instead of letting unchecked rings in.
    QueueState* layout = q != nullptr && !q->ready ? q : nullptr;
    switch (offset) {
        case kDeviceFeaturesSel: regs_.device_features_sel = v; break;
        case kDriverFeaturesSel: regs_.driver_features_sel = v; break;
        case kDriverFeatures:
            if (regs_.driver_features_sel == 0) set_low(regs_.driver_features, v & low(kOffered));
            else if (regs_.driver_features_sel == 1) set_high(regs_.driver_features, v & high(kOffered));
            break;
        case kQueueSel: regs_.queue_sel = v; break;
        case kQueueNum: if (layout) layout->size = static_cast<std::uint16_t>(std::min<std::uint32_t>(v, 0xffff)); break;
        case kQueueReady:
            if (!q) break;
            if (v == 1) {
                try {
                    check_queue(memory_, *q);
                    q->ready = true;
                } catch (const Error& e) {
                    fail_locked(e.what());
                }
            } else {
                q->ready = false;
            }
            break;
        case kInterruptAck: regs_.interrupt_status &= ~v; break;
        case kStatus:
            if (v == 0) {
                reset_locked();
            } else {
                // DEVICE_NEEDS_RESET is the device's to set and only a reset clears it: a driver
                // writing its status bits back must not bring the broken queues into use again.
                regs_.status = v | (regs_.status & kStatusNeedsReset);
                if (running_locked()) receive_backlog_locked();
            }
            break;
        case kQueueDescLow: if (layout) set_low(layout->desc, v); break;
        case kQueueDescHigh: if (layout) set_high(layout->desc, v); break;
        case kQueueDriverLow: if (layout) set_low(layout->driver, v); break;
        case kQueueDriverHigh: if (layout) set_high(layout->driver, v); break;
        case kQueueDeviceLow: if (layout) set_low(layout->device, v); break;
        case kQueueDeviceHigh: if (layout) set_high(layout->device, v); break;
        default: break;
    }
}

// --- transmit (vCPU thread)

void VirtioNet::transmit_from_guest() {
    std::vector<std::vector<std::byte>> frames;
    {
        std::lock_guard lock(mutex_);
        QueueState& q = regs_.queues[kTx];
        if (!running_locked() || !q.ready || paused_) return;
        bool used = false;
        try {
            while (auto chain = pop_chain(memory_, q)) {
                // A frame longer than this NIC carries (a VLAN tag on a 1500-byte payload, a
                // driver that assumed an MTU) is dropped, as a wire would: the queue is sound, so
                // it is no reason to break the NIC. Nothing beyond the limit is copied.
                std::vector<std::byte> bytes;
                bool too_long = false;
                for (const Segment& s : chain->segments) {
                    if (s.device_writable || too_long) continue;
                    if (bytes.size() + s.length > kHeaderBytes + kFrameLimit) {
                        too_long = true;
                        continue;
                    }
                    const auto data = memory_.map(s.gpa, s.length);
                    bytes.insert(bytes.end(), data.begin(), data.end());
                }
                push_used(memory_, q, chain->head, 0);
                used = true;
                if (!too_long && bytes.size() > kHeaderBytes) frames.emplace_back(bytes.begin() + kHeaderBytes, bytes.end());
            }
        } catch (const Error& e) {
            fail_locked(e.what());
        }
        if (used && wants_interrupt(memory_, q)) raise_locked(kInterruptUsed);
    }
    // Outside the device's lock: a sink may hand frames straight back (deliver_to_guest).
    std::lock_guard sinks(sink_mutex_);
    for (const auto& frame : frames) {
        if (transmit_sink_) transmit_sink_(frame);
        else transmit_to_host(frame);
    }
}

// --- receive

void VirtioNet::receive_backlog_locked() {
    if (paused_ || !running_locked()) return;
    QueueState& q = regs_.queues[kRx];
    if (!q.ready) return;
    bool used = false;
    try {
        while (!backlog_.empty()) {
            auto chain = pop_chain(memory_, q);
            if (!chain) break;
            const std::vector<std::byte>& frame = backlog_.front();
            std::array<std::byte, kHeaderBytes> header{};
            header[10] = std::byte{1};  // num_buffers = 1
            std::size_t done = 0;
            const std::size_t total = kHeaderBytes + frame.size();
            for (const Segment& s : chain->segments) {
                if (!s.device_writable || done == total) continue;
                const std::size_t n = std::min<std::size_t>(s.length, total - done);
                auto out = memory_.map(s.gpa, n);
                for (std::size_t i = 0; i < n; ++i) {
                    const std::size_t at = done + i;
                    out[i] = at < kHeaderBytes ? header[at] : frame[at - kHeaderBytes];
                }
                memory_.written(s.gpa, n);
                done += n;
            }
            // A buffer too small for the frame gets what fits (the driver sees a short length).
            push_used(memory_, q, chain->head, static_cast<std::uint32_t>(done));
            used = true;
            backlog_.pop_front();
        }
    } catch (const Error& e) {
        fail_locked(e.what());
        return;
    }
    if (used && wants_interrupt(memory_, q)) raise_locked(kInterruptUsed);
}

void VirtioNet::deliver_to_guest(std::span<const std::byte> frame) {
    if (frame.empty() || frame.size() > kFrameLimit) return;  // not a frame this NIC carries
    std::lock_guard lock(mutex_);
    backlog_.emplace_back(frame.begin(), frame.end());
    if (backlog_.size() > kMaxBacklog) backlog_.pop_front();
    receive_backlog_locked();
}

void VirtioNet::set_paused(bool paused) {
    std::lock_guard lock(mutex_);
    paused_ = paused;
    if (!paused_) receive_backlog_locked();
}

std::uint32_t VirtioNet::device_status() const {
    std::lock_guard lock(mutex_);
    return regs_.status;
}

// --- host side

std::string VirtioNet::host_name() const {
    std::lock_guard lock(tap_mutex_);
    return tap_ ? tap_->name() : "";
}

void VirtioNet::set_transmit_sink(FrameSink sink) {
    std::lock_guard lock(sink_mutex_);
    transmit_sink_ = std::move(sink);
}

void VirtioNet::set_host_receive_sink(FrameSink sink) {
    std::lock_guard lock(sink_mutex_);
    receive_sink_ = std::move(sink);
}

void VirtioNet::transmit_to_host(std::span<const std::byte> frame) {
    std::lock_guard lock(tap_mutex_);
    if (tap_) (void)tap_->write_frame(frame);
}

bool VirtioNet::attached() const {
    std::lock_guard lock(tap_mutex_);
    return tap_ != nullptr;
}

void VirtioNet::attach_host() {
    if (attached()) return;
    // Everything that can fail comes before the NIC takes the TAP, so that a failed attach
    // leaves it detached (not attached with no reader: deaf while saying it listens).
    auto tap = std::make_unique<TapDevice>(config_.vifname, config_.bridge, std::chrono::seconds(2));
    UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
    if (!stop.valid()) throw SystemError("eventfd for " + tap->name(), errno);
    std::lock_guard lock(tap_mutex_);
    if (tap_) return;  // attached meanwhile by another thread: ours goes away
    tap_ = std::move(tap);
    stop_reader_ = std::move(stop);
    try {
        reader_ = std::thread([this] { reader_main(); });
    } catch (...) {
        tap_.reset();
        stop_reader_.reset();
        throw;
    }
}

void VirtioNet::detach_host() {
    stop_reader();
    std::lock_guard lock(tap_mutex_);
    tap_.reset();
}

void VirtioNet::stop_reader() {
    if (!reader_.joinable()) return;
    const std::uint64_t one = 1;
    (void)!::write(stop_reader_.get(), &one, sizeof one);
    reader_.join();
    stop_reader_.reset();
}

void VirtioNet::reader_main() {
    // tap_ stays while this thread runs: detach_host joins it before dropping the TAP.
    TapDevice& tap = *tap_;
    std::vector<std::byte> buffer(65536);
    for (;;) {
        pollfd fds[2] = {{tap.fd(), POLLIN, 0}, {stop_reader_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if ((fds[1].revents & POLLIN) != 0) return;
        try {
            while (auto n = tap.read_frame(buffer)) {
                // Only what this NIC carries reaches a sink (GuestNic: at most kMaxFrameBytes);
                // a larger frame (a host side with a bigger MTU) would not fit the guest either.
                if (*n == 0 || *n > kFrameLimit) continue;
                const std::span<const std::byte> frame(buffer.data(), *n);
                std::lock_guard sinks(sink_mutex_);
                if (receive_sink_) receive_sink_(frame);
                else deliver_to_guest(frame);
            }
        } catch (const std::exception&) {
            return;  // the TAP went away under us: the NIC hears nothing more, as an unplugged cable
        }
    }
}

// --- state

std::vector<std::byte> VirtioNet::save_state() const {
    std::lock_guard lock(mutex_);
    StateWriter w;
    w.put(regs_.driver_features);
    w.put(regs_.device_features_sel);
    w.put(regs_.driver_features_sel);
    w.put(regs_.queue_sel);
    w.put(regs_.status);
    w.put(regs_.interrupt_status);
    w.put(regs_.config_generation);
    for (const QueueState& q : regs_.queues) {
        w.put(q.size);
        w.put(q.next_avail);
        w.put(q.next_used);
        w.put(static_cast<std::uint16_t>(q.ready ? 1 : 0));
        w.put(q.desc);
        w.put(q.driver);
        w.put(q.device);
    }
    w.put(static_cast<std::uint32_t>(backlog_.size()));
    for (const auto& frame : backlog_) {
        w.put(static_cast<std::uint32_t>(frame.size()));
        w.out.insert(w.out.end(), frame.begin(), frame.end());
    }
    return std::move(w.out);
}

void VirtioNet::restore_state(std::span<const std::byte> state) {
    StateReader r(state);
    Registers regs;
    regs.driver_features = r.get<std::uint64_t>();
    regs.device_features_sel = r.get<std::uint32_t>();
    regs.driver_features_sel = r.get<std::uint32_t>();
    regs.queue_sel = r.get<std::uint32_t>();
    regs.status = r.get<std::uint32_t>();
    regs.interrupt_status = r.get<std::uint32_t>();
    regs.config_generation = r.get<std::uint32_t>();
    if ((regs.driver_features & ~kOffered) != 0) throw Error("virtio-net state: features this NIC does not offer");
    for (QueueState& q : regs.queues) {
        q.size = r.get<std::uint16_t>();
        q.next_avail = r.get<std::uint16_t>();
        q.next_used = r.get<std::uint16_t>();
        const auto ready = r.get<std::uint16_t>();
        if (ready > 1) throw Error("virtio-net state: queue ready is " + std::to_string(ready));
        q.ready = ready == 1;
        q.desc = r.get<std::uint64_t>();
        q.driver = r.get<std::uint64_t>();
        q.device = r.get<std::uint64_t>();
        if (q.ready) check_queue(memory_, q);
    }
    const auto count = r.get<std::uint32_t>();
    if (count > kMaxBacklog) throw Error("virtio-net state: " + std::to_string(count) + " frames waiting, at most " +
                                         std::to_string(kMaxBacklog));
    std::deque<std::vector<std::byte>> backlog;
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto size = r.get<std::uint32_t>();
        if (size == 0 || size > kFrameLimit) throw Error("virtio-net state: a waiting frame of " + std::to_string(size) + " bytes");
        backlog.push_back(r.bytes(size));
    }
    if (!r.done()) throw Error("virtio-net state: trailing bytes");
    std::lock_guard lock(mutex_);
    regs_ = regs;
    backlog_ = std::move(backlog);
    receive_backlog_locked();  // (nothing while paused)
}

}  // namespace colo::kvm
