#include "kvm/devices/virtio_net.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "backends/error.hpp"

namespace colo::kvm {

namespace {

using namespace virtio_mmio;
constexpr std::uint32_t kNetDevice = 1;
constexpr std::uint64_t kFeatureMac = 1ull << 5;
constexpr std::uint64_t kOffered = kFeatureMac | kFeatureVersion1;
constexpr unsigned kRx = 0, kTx = 1;
constexpr std::size_t kHeaderBytes = 12;  // virtio_net_hdr, version 1
constexpr std::size_t kFrameLimit = kMaxFrameBytes;

}  // namespace

VirtioNet::VirtioNet(VifConfig config, DeviceMemory& memory, std::function<void()> interrupt)
    : config_(std::move(config)),
      memory_(memory),
      interrupt_(std::move(interrupt)),
      regs_(kNetDevice, kOffered, 2),
      host_([this](std::span<const std::byte> frame) { from_host(frame); }) {}

VirtioNet::~VirtioNet() { host_.detach(); }

// --- registers

bool VirtioNet::running_locked() const { return regs_.running(); }

void VirtioNet::fail_locked() {
    // The guest broke its own queues: stop using them until it resets the device.
    regs_.set_needs_reset();
    if (interrupt_) interrupt_();
}

void VirtioNet::raise_locked(std::uint32_t cause) {
    regs_.raise(cause);
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
    return width == 4 ? regs_.read(offset) : 0;
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
    switch (regs_.write(memory_, offset, v)) {
        case Registers::Effect::reset: backlog_.clear(); break;
        case Registers::Effect::broken: if (interrupt_) interrupt_(); break;
        case Registers::Effect::status: if (running_locked()) receive_backlog_locked(); break;
        case Registers::Effect::none:
        case Registers::Effect::notify: break;
    }
}

// --- transmit (vCPU thread)

void VirtioNet::transmit_from_guest() {
    std::vector<std::vector<std::byte>> frames;
    {
        std::lock_guard lock(mutex_);
        QueueState& q = regs_.queue(kTx);
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
            fail_locked();
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
    QueueState& q = regs_.queue(kRx);
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
        fail_locked();
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
    return regs_.status();
}

// --- host side

void VirtioNet::set_transmit_sink(FrameSink sink) {
    std::lock_guard lock(sink_mutex_);
    transmit_sink_ = std::move(sink);
}

void VirtioNet::set_host_receive_sink(FrameSink sink) {
    std::lock_guard lock(sink_mutex_);
    receive_sink_ = std::move(sink);
}

void VirtioNet::from_host(std::span<const std::byte> frame) {
    std::lock_guard sinks(sink_mutex_);
    if (receive_sink_) receive_sink_(frame);
    else deliver_to_guest(frame);
}

// --- state

std::vector<std::byte> VirtioNet::save_state() const {
    std::lock_guard lock(mutex_);
    StateWriter w;
    regs_.save(w);
    w.put(static_cast<std::uint32_t>(backlog_.size()));
    for (const auto& frame : backlog_) {
        w.put(static_cast<std::uint32_t>(frame.size()));
        w.out.insert(w.out.end(), frame.begin(), frame.end());
    }
    return std::move(w.out);
}

void VirtioNet::restore_state(std::span<const std::byte> state) {
    StateReader r(state, "virtio-net state");
    Registers regs(kNetDevice, kOffered, 2);
    regs.load(r, memory_);
    const auto count = r.get<std::uint32_t>();
    if (count > kMaxBacklog) r.fail(std::to_string(count) + " frames waiting, at most " + std::to_string(kMaxBacklog));
    std::deque<std::vector<std::byte>> backlog;
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto size = r.get<std::uint32_t>();
        if (size == 0 || size > kFrameLimit) r.fail("a waiting frame of " + std::to_string(size) + " bytes");
        backlog.push_back(r.bytes(size));
    }
    if (!r.done()) r.fail("trailing bytes");
    std::lock_guard lock(mutex_);
    regs_ = regs;
    backlog_ = std::move(backlog);
    receive_backlog_locked();  // (nothing while paused)
}

}  // namespace colo::kvm
