// KvmBackend: colo::Backend (backends/backend.hpp) on /dev/kvm with our own small VMM.
//
// What a KvmBackend is made of: one VM with an in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT,
// guest RAM from one memfd (kvm/guest_ram.hpp), config.vcpus vCPUs each on its own thread
// (kvm/vcpu_thread.hpp), a 16550A UART on COM1/IRQ 4 whose output is the console, and one
// virtio-net NIC per vif (kvm/devices/virtio_net.hpp) at virtio-mmio slot N, GSI 16 + N
// (kvm/layout.hpp), with a TAP (attached by create; create_incoming leaves it detached until
// GuestNic::attach_host), and one virtio-blk disk per disk (kvm/devices/virtio_blk.hpp) at
// virtio-mmio slot kMaxVifs + N, GSI 16 + kMaxVifs + N, its image opened and locked
// (backends/disk_image.hpp; create_incoming creates a missing image with size 0, which the
// replication layer resizes, and opens even a read-only disk's image writable, since that layer
// fills it).
//
// Public API (what the CLI and the pipeline use):
//   KvmBackend::create(config)           a new guest: the built-in test guest, or Linux
//                                        (guest = "linux", kvm/linux/linux_loader.hpp; note
//                                        that nested PVM KVM emulates guest ring 0, so Linux
//                                        only runs on a hardware-style KVM); created paused,
//                                        the first resume() starts it.
//   KvmBackend::create_incoming(config)  memory and devices but no loader: for a guest whose
//                                        memory (memory().write_pages) and state
//                                        (restore_state) arrive from a stream; paused.
//   the Backend interface                pause/resume, dirty log, harvest, save/restore state
//                                        (records: kvm/state_tags.hpp), console sink.
//   vcpu_failure()                       why a vCPU stopped (triple fault, ...), or "". A failed
//                                        vCPU counts as paused; resume() then throws; a
//                                        complete restore_state revives it.
//   console_input(bytes)                 bytes typed at the guest's console (UART receive).
//
// Dirty pages: harvest_dirty reports guest writes (KVM's log, exact from start_dirty_log on) and
// every page the VMM wrote for the guest: loaders and device emulation. memory().write_pages is
// the pipeline's own writing (a restore, a secondary applying a checkpoint) and is NOT reported,
// as backends/guest_memory.hpp says: otherwise a secondary would report every page a
// checkpoint flushed as its own and flush it again at the next one
// (tests/kvm/save_restore_test.cpp, "COLO pattern").
// save_state records: kvm/state_tags.hpp. The built-in guest: kvm/builtin_guest/guest.c.
//
// Threading: as Backend says, one controlling thread calls everything; vCPU threads call the
// console sink. Memory: guest RAM below 3 GiB is one region, the rest starts at 4 GiB.
// RAM is rounded up to a multiple of 2 MiB.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/guest_config.hpp"
#include "kvm/devices/mmio_bus.hpp"
#include "kvm/devices/port_io_bus.hpp"
#include "kvm/devices/virtio_blk.hpp"
#include "kvm/devices/virtio_net.hpp"
#include "kvm/devices/uart_8250.hpp"
#include "kvm/guest_ram.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu.hpp"
#include "kvm/vcpu_state.hpp"
#include "kvm/vcpu_thread.hpp"
#include "kvm/vm.hpp"

namespace colo::kvm {

class KvmBackend final : public Backend {
public:
    [[nodiscard]] static std::unique_ptr<KvmBackend> create(const GuestConfig& config);
    [[nodiscard]] static std::unique_ptr<KvmBackend> create_incoming(const GuestConfig& config);
    ~KvmBackend() override;

    // --- Backend
    [[nodiscard]] BackendKind kind() const override { return BackendKind::kvm; }
    [[nodiscard]] std::string name() const override { return config_.name; }
    [[nodiscard]] GuestMemory& memory() override { return *ram_; }
    void pause() override;
    void resume() override;
    [[nodiscard]] bool paused() const override;
    void set_realtime_pause(bool on) override;
    void start_dirty_log() override;
    void stop_dirty_log() override;
    void harvest_dirty(DirtyBitmap& into) override;
    [[nodiscard]] std::vector<StateRecord> save_state() override;
    void restore_state(std::span<const StateRecord> state) override;
    void set_console_sink(ConsoleSink sink) override;
    [[nodiscard]] std::vector<GuestNic*> nics() override;
    [[nodiscard]] std::vector<GuestDisk*> disks() override;
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> guest_report() override;

    // --- KVM specifics
    [[nodiscard]] std::string vcpu_failure() const;
    void console_input(std::span<const std::byte> bytes);
    [[nodiscard]] std::uint32_t tsc_khz() const noexcept { return tsc_khz_; }
    [[nodiscard]] GuestRam& ram() noexcept { return *ram_; }

private:
    enum class Boot { load_guest, incoming };
    KvmBackend(const GuestConfig& config, Boot boot);
    void emit_console(std::span<const std::byte> bytes);

    GuestConfig config_;
    System system_;
    Vm vm_;
    std::unique_ptr<GuestRam> ram_;
    std::vector<std::unique_ptr<Vcpu>> vcpus_;
    VcpuStateShape state_shape_;
    std::uint32_t tsc_khz_ = 0;
    std::mutex sink_mutex_;
    ConsoleSink sink_;
    std::unique_ptr<Uart8250> uart_;
    PortIoBus bus_;
    // The NICs' view of guest RAM: what they write is reported dirty (mark_vmm_dirty).
    class RamForDevices final : public DeviceMemory {
    public:
        explicit RamForDevices(GuestRam& ram) : ram_(ram) {}
        std::span<std::byte> map(std::uint64_t gpa, std::uint64_t bytes) override { return ram_.host(Gpa{gpa}, bytes); }
        void written(std::uint64_t gpa, std::uint64_t bytes) override { ram_.mark_vmm_dirty(Gpa{gpa}, bytes); }

    private:
        GuestRam& ram_;
    };
    std::unique_ptr<RamForDevices> device_memory_;
    MmioBus mmio_;
    std::vector<std::unique_ptr<VirtioNet>> nics_;  // vif order; virtio-mmio slots 0..
    std::vector<std::unique_ptr<VirtioBlk>> disks_;  // disk order; virtio-mmio slots kMaxVifs..
    std::vector<std::unique_ptr<VcpuThread>> threads_;  // last: stopped first
};

}  // namespace colo::kvm
