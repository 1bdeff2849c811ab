// A virtio-blk disk (virtio 1.x, over virtio-mmio version 2: virtio spec 4.2.2 and 5.2) whose
// image is a raw file (backends/disk_image.hpp), offered to the pipeline as a GuestDisk
// (backends/guest_disk.hpp). Registers, queue checks and the state helpers are shared with
// virtio-net (kvm/devices/virtio_mmio.hpp).
//
// Features: VIRTIO_F_VERSION_1, VIRTIO_BLK_F_SEG_MAX (a request may use the whole queue but
// its header and status), VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD (one range per request) and,
// for access=ro, VIRTIO_BLK_F_RO. The config space's capacity is read from size_bytes() at every
// read, so a resize before the guest runs is what the driver sees. One request queue.
//
// Requests (IN, OUT, FLUSH, GET_ID, DISCARD) are served synchronously on the vCPU thread that
// wrote QueueNotify, one at a time (the device's lock is held while serving), through the DiskIo
// installed by set_io, or the image. A request the device cannot do completes with a status, the
// guest runs on: out of range or not whole sectors, a write or discard to a read-only disk, or a
// DiskIo that throws: IOERR; an unknown type or a discard with flags: UNSUPP. Each counts in
// DiskStats::errors. A request without a status byte cannot be answered: it is handed back with
// nothing written and counted as an error. A queue the guest set up wrongly (ring outside RAM, a
// descriptor loop, ...) sets DEVICE_NEEDS_RESET, as the NIC does, and the device stops touching
// guest memory until the driver resets it.
//
// Every guest page the device writes (read data, GET_ID's string, the status byte, the used ring)
// goes through DeviceMemory::written, so it is in the next checkpoint's dirty set.
//
// Pause: KvmBackend::pause() returns only after a request in progress has completed. The request
// runs inside the vCPU thread's handling of the MMIO exit (kvm/vcpu_thread.cpp, handle_exit), with
// the thread still in State::running; VcpuThread::pause() waits for State::paused, which the
// thread only takes after handle_exit has returned and a KVM_RUN with immediate_exit has come back
// (the kick during the request finds the thread outside KVM_RUN, so it is answered by that next
// KVM_RUN returning EINTR at once). So a checkpoint never sees a half-served request: its data,
// status and used-ring entry are all in guest memory, or none of it is taken from the ring yet.
//
// State (save_state / restore_state, version kStateVersion): the common virtio-mmio registers
// and the queue's positions (virtio_mmio::Registers::save). Nothing is in flight between
// requests, so there is nothing else; the image is the replication layer's to carry.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/disk_image.hpp"
#include "backends/guest_disk.hpp"
#include "kvm/devices/mmio_device.hpp"
#include "kvm/devices/virtio_mmio.hpp"
#include "kvm/devices/virtqueue.hpp"

namespace colo::kvm {

class VirtioBlk final : public MmioDevice, public GuestDisk {
public:
    static constexpr std::uint32_t kStateVersion = 1;
    static constexpr std::uint64_t kRegisterBytes = virtio_mmio::kRegisterBytes;

    // `interrupt` pulses the disk's interrupt line.
    VirtioBlk(DiskConfig config, std::unique_ptr<DiskImage> image, DeviceMemory& memory, std::function<void()> interrupt);
    VirtioBlk(const VirtioBlk&) = delete;
    VirtioBlk& operator=(const VirtioBlk&) = delete;

    // --- MmioDevice (the vCPU thread)
    [[nodiscard]] std::uint64_t read(std::uint64_t offset, unsigned width) override;
    void write(std::uint64_t offset, unsigned width, std::uint64_t value) override;

    // --- GuestDisk
    [[nodiscard]] const DiskConfig& config() const override { return config_; }
    [[nodiscard]] std::uint64_t size_bytes() const override { return image_->size_bytes(); }
    [[nodiscard]] DiskIo& image() override { return *image_; }
    void resize(std::uint64_t bytes) override { image_->resize(bytes); }
    void set_io(DiskIo* io) override;
    [[nodiscard]] DiskStats stats() const override;

    // --- the VMM
    [[nodiscard]] std::vector<std::byte> save_state() const;
    // Throws colo::Error (one line) for a record this device cannot take, before changing anything.
    void restore_state(std::span<const std::byte> state);
    [[nodiscard]] std::uint32_t device_status() const;

private:
    void serve_locked();
    [[nodiscard]] std::uint32_t serve_chain_locked(const Chain& chain);
    void count_error();

    const DiskConfig config_;
    std::unique_ptr<DiskImage> image_;
    DeviceMemory& memory_;
    std::function<void()> interrupt_;

    // Registers and the queue, and held while a request is served: set_io takes it to know that
    // no request runs on the old DiskIo.
    mutable std::mutex mutex_;
    virtio_mmio::Registers regs_;
    DiskIo* io_ = nullptr;  // nullptr: the image

    mutable std::mutex stats_mutex_;  // its own, so stats() never waits for a request
    DiskStats stats_;
    std::vector<std::uint32_t> recent_flush_us_;  // a ring of the last kRecentFlushes flush times
    std::size_t recent_next_ = 0;
};

}  // namespace colo::kvm
