// A virtio-net NIC (virtio 1.x, over virtio-mmio version 2: virtio spec 4.2.2 and 5.1) whose host
// side is a TAP device, offered to the pipeline as a GuestNic (backends/guest_nic.hpp).
//
// Features: VIRTIO_F_VERSION_1 and VIRTIO_NET_F_MAC only: no offloads and no mergeable buffers,
// so every frame is whole (at most 1514 bytes) with full checksums, which is what the frame
// compare and the TCP rewriter of a COLO secondary want. Queue 0 receives, queue 1 transmits;
// each buffer starts with the 12-byte virtio_net_hdr of version 1 (all zero here but
// num_buffers = 1 on receive).
//
// Transmit runs on the vCPU thread that wrote QueueNotify: frames go to the transmit sink, or to
// the TAP; a frame longer than 1514 bytes is dropped (the queue stays in use). Receive: frames from the TAP (its reader thread) or deliver_to_guest go into buffers
// the driver posted; while the guest is paused (set_paused), before the driver is ready, or
// when no buffer is posted they wait in a backlog of at most kMaxBacklog frames (the oldest is
// dropped, as a full ring would). The device never writes guest memory while paused, and every
// page it writes (buffers, the used ring) is reported through DeviceMemory::written, so it is in
// the next checkpoint. Used buffers raise the NIC's interrupt (edge, GSI given by the VMM) unless
// the driver asked for none.
//
// A queue the guest set up wrongly (ring outside RAM, a descriptor loop, ...) sets
// DEVICE_NEEDS_RESET and the device stops touching guest memory until the driver resets it
// (writing 0 to Status; other status writes keep the bit). A ready queue's size and ring
// addresses do not change: the driver sets them while the queue is not ready.
//
// State (save_state / restore_state, version kStateVersion): features, status, interrupt status,
// queue registers and positions, and the receive backlog. The rings themselves are guest memory.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/guest_nic.hpp"
#include "backends/tap_port.hpp"
#include "kvm/devices/mmio_device.hpp"
#include "kvm/devices/virtio_mmio.hpp"
#include "kvm/devices/virtqueue.hpp"

namespace colo::kvm {

class VirtioNet final : public MmioDevice, public GuestNic {
public:
    static constexpr std::uint32_t kStateVersion = 1;
    static constexpr std::size_t kMaxBacklog = 256;
    static constexpr std::uint64_t kRegisterBytes = virtio_mmio::kRegisterBytes;

    // `interrupt` pulses the NIC's interrupt line. The NIC starts detached (no TAP).
    VirtioNet(VifConfig config, DeviceMemory& memory, std::function<void()> interrupt);
    ~VirtioNet() override;
    VirtioNet(const VirtioNet&) = delete;
    VirtioNet& operator=(const VirtioNet&) = delete;

    // --- MmioDevice (the vCPU thread)
    [[nodiscard]] std::uint64_t read(std::uint64_t offset, unsigned width) override;
    void write(std::uint64_t offset, unsigned width, std::uint64_t value) override;

    // --- GuestNic
    [[nodiscard]] const VifConfig& config() const override { return config_; }
    [[nodiscard]] std::string host_name() const override { return host_.name(); }
    void set_transmit_sink(FrameSink sink) override;
    void set_host_receive_sink(FrameSink sink) override;
    void deliver_to_guest(std::span<const std::byte> frame) override;
    void transmit_to_host(std::span<const std::byte> frame) override { host_.write(frame); }
    [[nodiscard]] bool attached() const override { return host_.attached(); }
    void attach_host() override { host_.attach(config_.vifname, config_.bridge); }
    void detach_host() override { host_.detach(); }

    // --- the VMM
    // Paused: no guest memory is written; frames wait in the backlog. Unpausing delivers them.
    void set_paused(bool paused);
    [[nodiscard]] std::vector<std::byte> save_state() const;
    // Throws colo::Error (one line) for a record this device cannot take, before changing anything.
    void restore_state(std::span<const std::byte> state);
    [[nodiscard]] std::uint32_t device_status() const;

private:
    void fail_locked();
    [[nodiscard]] bool running_locked() const;
    void transmit_from_guest();
    void receive_backlog_locked();
    void raise_locked(std::uint32_t cause);
    void from_host(std::span<const std::byte> frame);

    const VifConfig config_;
    DeviceMemory& memory_;
    std::function<void()> interrupt_;

    mutable std::mutex mutex_;  // registers, queues, backlog, paused_
    virtio_mmio::Registers regs_;
    std::deque<std::vector<std::byte>> backlog_;
    bool paused_ = true;

    std::mutex sink_mutex_;  // held while a sink runs: replacing one waits for it
    FrameSink transmit_sink_;
    FrameSink receive_sink_;

    TapPort host_;  // after the sinks: its reader calls them
};

}  // namespace colo::kvm
