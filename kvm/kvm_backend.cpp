#include "kvm/kvm_backend.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <map>
#include <string>

#include "backends/error.hpp"
#include "kvm/builtin_guest/params.h"
#include "kvm/builtin_guest_loader.hpp"
#include "kvm/layout.hpp"
#include "kvm/linux/boot_layout.hpp"
#include "kvm/linux/linux_loader.hpp"
#include "kvm/long_mode_entry.hpp"
#include "kvm/platform_state.hpp"
#include "kvm/state_record_bytes.hpp"
#include "kvm/state_tags.hpp"
#include "kvm/vcpu_cpuid.hpp"

namespace colo::kvm {

namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kRamGranule = 2 * kMiB;

struct MachineRecord {
    std::uint32_t vcpus;
    std::uint32_t tsc_khz;
    std::uint64_t ram_bytes;
};

std::uint64_t ram_bytes_for(const GuestConfig& config) {
    if (config.memory_mib == 0 || config.memory_mib > kMaxMemoryMib) {
        throw Error("memory = " + std::to_string(config.memory_mib) + " MiB: expected 1.." + std::to_string(kMaxMemoryMib));
    }
    return (config.memory_mib * kMiB + kRamGranule - 1) / kRamGranule * kRamGranule;
}

void require_capabilities(const System& system) {
    system.require_extension(KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP (in-kernel PIC, IOAPIC and LAPIC)");
    system.require_extension(KVM_CAP_PIT2, "KVM_CAP_PIT2 (in-kernel PIT)");
    system.require_extension(KVM_CAP_PIT_STATE2, "KVM_CAP_PIT_STATE2");
    system.require_extension(KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT");
    system.require_extension(KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE");
    system.require_extension(KVM_CAP_XSAVE, "KVM_CAP_XSAVE");
    system.require_extension(KVM_CAP_XCRS, "KVM_CAP_XCRS");
    system.require_extension(KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS");
    system.require_extension(KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS");
    system.require_extension(KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK");
    system.require_extension(KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ");
    system.require_extension(KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR");
}

// Guest RAM is host memory mapped without reservation (MAP_NORESERVE), so a guest larger than the
// machine would start and then be OOM-killed once it touched enough of it: refuse it up front,
// for a new guest and for one arriving by restore, migration or protection alike.
void refuse_memory_beyond_host(const GuestConfig& config) {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page_size = ::sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page_size <= 0) return;  // unknown: mmap and KVM decide
    const auto host_mib = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size) >> 20;
    if (config.memory_mib > host_mib) {
        throw Error("guest " + config.name + " needs " + std::to_string(config.memory_mib) +
                    " MiB of memory, more than this host's " + std::to_string(host_mib) + " MiB");
    }
}

// MemAvailable from /proc/meminfo in MiB: what the kernel can hand out now without swapping.
std::optional<std::uint64_t> available_host_mib() {
    std::ifstream meminfo("/proc/meminfo");
    for (std::string line; std::getline(meminfo, line);) {
        std::istringstream fields(line);
        std::string key;
        std::uint64_t kib = 0;
        if (fields >> key >> kib && key == "MemAvailable:") return kib >> 10;
    }
    return std::nullopt;  // unknown (an old kernel): mmap and KVM decide
}

// An arriving guest (restore, migration, protection) has every page written as the stream
// delivers it, unlike a new guest that touches memory as it runs. So it needs all of its memory
// now: refuse one larger than what this host has available before a page is allocated, instead of
// being OOM-killed in the middle of the stream.
void refuse_incoming_beyond_available(const GuestConfig& config) {
    const auto available = available_host_mib();
    if (available && config.memory_mib > *available) {
        throw Error("guest " + config.name + " needs " + std::to_string(config.memory_mib) +
                    " MiB of memory, more than this host has available (" + std::to_string(*available) +
                    " MiB, MemAvailable in /proc/meminfo)");
    }
}

}  // namespace

std::unique_ptr<KvmBackend> KvmBackend::create(const GuestConfig& config) {
    return std::unique_ptr<KvmBackend>(new KvmBackend(config, Boot::load_guest));
}

std::unique_ptr<KvmBackend> KvmBackend::create_incoming(const GuestConfig& config) {
    return std::unique_ptr<KvmBackend>(new KvmBackend(config, Boot::incoming));
}

KvmBackend::KvmBackend(const GuestConfig& config, Boot boot) : config_(config), vm_(system_.create_vm()) {
    if (config.vcpus == 0 || config.vcpus > kMaxVcpus) {
        throw Error("vcpus = " + std::to_string(config.vcpus) + ": expected 1.." + std::to_string(kMaxVcpus));
    }
    const std::uint64_t ram_bytes = ram_bytes_for(config);
    refuse_memory_beyond_host(config);
    if (boot == Boot::incoming) refuse_incoming_beyond_available(config);
    require_capabilities(system_);

    vm_.set_tss_addr(layout::kKvmRealModeTss.value);
    vm_.create_irqchip();
    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    vm_.create_pit2(pit);
    ram_ = std::make_unique<GuestRam>(vm_, ram_bytes);

    const CpuidEntries supported = system_.get_supported_cpuid();
    const bool tsc_deadline = system_.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    for (unsigned i = 0; i < config.vcpus; ++i) {
        vcpus_.push_back(std::make_unique<Vcpu>(vm_.create_vcpu(i)));
        vcpus_.back()->set_cpuid2(vcpu_cpuid(supported, i, tsc_deadline));
    }
    tsc_khz_ = vcpus_[0]->get_tsc_khz();
    state_shape_.xsave_bytes =
        std::max<std::size_t>(4096, static_cast<std::size_t>(std::max(0, system_.check_extension(KVM_CAP_XSAVE2))));
    state_shape_.msrs = saveable_msrs(*vcpus_[0], system_.get_msr_index_list());

    uart_ = std::make_unique<Uart8250>([this](std::span<const std::byte> bytes) { emit_console(bytes); },
                                       [this](bool level) { vm_.irq_line(Uart8250::kCom1Irq, level); });
    bus_.add(Uart8250::kCom1Base, Uart8250::kPorts, *uart_);

    if (config.vifs.size() > kMaxVifs) {
        throw Error(std::to_string(config.vifs.size()) + " vifs: at most " + std::to_string(kMaxVifs));
    }
    device_memory_ = std::make_unique<RamForDevices>(*ram_);
    for (std::size_t i = 0; i < config.vifs.size(); ++i) {
        const std::uint32_t gsi = layout::kVirtioFirstGsi + static_cast<std::uint32_t>(i);
        // Edge-triggered: a pulse per notification.
        nics_.push_back(std::make_unique<VirtioNet>(config.vifs[i], *device_memory_, [this, gsi] {
            vm_.irq_line(gsi, true);
            vm_.irq_line(gsi, false);
        }));
        mmio_.add(layout::kVirtioMmioBase.value + i * layout::kVirtioMmioSlotBytes, VirtioNet::kRegisterBytes, *nics_.back());
    }

    static_assert(kMaxVifs + kMaxDisks <= layout::kVirtioMmioSlots);
    if (config.disks.size() > kMaxDisks) {
        throw Error(std::to_string(config.disks.size()) + " disks: at most " + std::to_string(kMaxDisks));
    }
    for (std::size_t i = 0; i < config.disks.size(); ++i) {
        const DiskConfig& disk = config.disks[i];
        const std::size_t slot = kMaxVifs + i;
        const std::uint32_t gsi = layout::kVirtioFirstGsi + static_cast<std::uint32_t>(slot);
        // An incoming guest's image is filled by the replication layer (initial sync, committed
        // checkpoints), so it may be missing and is written even when the guest may not write it.
        auto image = boot == Boot::incoming
                         ? std::make_unique<DiskImage>(disk.target, true, DiskImage::Missing::create)
                         : std::make_unique<DiskImage>(disk.target, !disk.read_only, DiskImage::Missing::refuse);
        disks_.push_back(std::make_unique<VirtioBlk>(disk, std::move(image), *device_memory_, [this, gsi] {
            vm_.irq_line(gsi, true);
            vm_.irq_line(gsi, false);
        }));
        mmio_.add(layout::kVirtioMmioBase.value + slot * layout::kVirtioMmioSlotBytes, VirtioBlk::kRegisterBytes,
                  *disks_.back());
    }

    if (boot == Boot::load_guest) {
        if (config.guest == GuestKind::builtin) {
            const EntryState entry = load_builtin_guest(config, *ram_, tsc_khz_, tsc_deadline);
            enter_long_mode(*vcpus_[0], entry);
        } else {
            // The loader writes kernel, initramfs, command line, zero page, MP and ACPI tables
            // below the hole; we add the long-mode tables (kvm/layout.hpp keeps them apart).
            const std::uint64_t low = boot_layout::low_ram_bytes(ram_bytes);
            const EntryState entry = load_linux(config, ram_->host(Gpa{0}, low), ram_bytes);
            write_long_mode_tables(*ram_, entry, std::nullopt);
            enter_long_mode(*vcpus_[0], entry);
            ram_->mark_vmm_dirty(Gpa{0}, low);
        }
    }
    for (auto& vcpu : vcpus_) threads_.push_back(std::make_unique<VcpuThread>(*vcpu, bus_, &mmio_));
    // A new guest is the one that runs: its NICs are on the network. An incoming one's wait.
    if (boot == Boot::load_guest) {
        for (auto& nic : nics_) nic->attach_host();
    }
}

std::vector<GuestNic*> KvmBackend::nics() {
    std::vector<GuestNic*> out;
    for (auto& nic : nics_) out.push_back(nic.get());
    return out;
}

std::vector<GuestDisk*> KvmBackend::disks() {
    std::vector<GuestDisk*> out;
    for (auto& disk : disks_) out.push_back(disk.get());
    return out;
}

std::vector<std::pair<std::string, std::string>> KvmBackend::guest_report() {
    if (config_.guest != GuestKind::builtin || tsc_khz_ == 0) return {};
    // Read while the guest may write it: a count can be one behind, never harmful for statistics.
    colo_builtin_stats stats{};
    const auto bytes = ram_->host(layout::kBuiltinStats, sizeof stats);
    std::memcpy(&stats, bytes.data(), sizeof stats);
    if (stats.magic != COLO_BUILTIN_STATS_MAGIC) return {};  // a guest image from before its statistics
    std::string histogram = std::to_string(tsc_khz_);
    for (std::uint32_t bucket = 0; bucket < COLO_BUILTIN_STALL_BUCKETS; ++bucket) {
        if (stats.histogram[bucket] != 0) histogram += " " + std::to_string(bucket) + ":" + std::to_string(stats.histogram[bucket]);
    }
    return {{"guest_stall_max_us", std::to_string(stats.max_gap_tsc * 1000 / tsc_khz_)},
            {"guest_stall_histogram", histogram}};
}

KvmBackend::~KvmBackend() {
    for (auto& thread : threads_) thread->stop();
    for (auto& nic : nics_) nic->detach_host();
}

void KvmBackend::emit_console(std::span<const std::byte> bytes) {
    std::lock_guard lock(sink_mutex_);
    if (sink_) sink_(bytes);
}

void KvmBackend::set_console_sink(ConsoleSink sink) {
    std::lock_guard lock(sink_mutex_);
    sink_ = std::move(sink);
}

void KvmBackend::console_input(std::span<const std::byte> bytes) { uart_->receive(bytes); }

void KvmBackend::pause() {
    for (auto& thread : threads_) thread->pause();
    // After the vCPUs: a transmit they started completes; from here no NIC writes guest memory.
    for (auto& nic : nics_) nic->set_paused(true);
}

void KvmBackend::resume() {
    for (auto& nic : nics_) nic->set_paused(false);
    for (auto& thread : threads_) thread->resume();
}

void KvmBackend::set_realtime_pause(bool on) {
    for (auto& thread : threads_) thread->set_realtime_pause(on);
}

bool KvmBackend::paused() const {
    return std::none_of(threads_.begin(), threads_.end(),
                        [](const auto& t) { return t->state() == VcpuThread::State::running; });
}

std::string KvmBackend::vcpu_failure() const {
    for (const auto& thread : threads_) {
        if (auto why = thread->failure(); !why.empty()) return why;
    }
    return {};
}

void KvmBackend::start_dirty_log() { ram_->start_dirty_log(); }
void KvmBackend::stop_dirty_log() { ram_->stop_dirty_log(); }
void KvmBackend::harvest_dirty(DirtyBitmap& into) { ram_->harvest_dirty(into); }

std::vector<StateRecord> KvmBackend::save_state() {
    if (!paused()) throw Error("save_state refused: guest '" + config_.name + "' is running (pause it first)");
    std::vector<StateRecord> records;
    records.push_back(record_of(state_tags::kMachine,
                                MachineRecord{static_cast<std::uint32_t>(vcpus_.size()), tsc_khz_, ram_->bytes()}));
    for (auto& thread : threads_) {
        thread->run_paused([&](Vcpu& vcpu) {
            auto part = save_vcpu_state(vcpu, state_shape_);
            records.insert(records.end(), part.begin(), part.end());
        });
    }
    auto platform = save_platform_state(vm_);
    records.insert(records.end(), platform.begin(), platform.end());
    records.push_back(StateRecord{state_tags::kUart, Uart8250::kStateVersion, uart_->save_state()});
    for (std::size_t i = 0; i < nics_.size(); ++i) {
        records.push_back(StateRecord{state_tags::virtio_net_tag(static_cast<unsigned>(i)), VirtioNet::kStateVersion,
                                      nics_[i]->save_state()});
    }
    for (std::size_t i = 0; i < disks_.size(); ++i) {
        records.push_back(StateRecord{state_tags::virtio_blk_tag(static_cast<unsigned>(i)), VirtioBlk::kStateVersion,
                                      disks_[i]->save_state()});
    }
    return records;
}

void KvmBackend::restore_state(std::span<const StateRecord> state) {
    if (!paused()) throw Error("restore_state refused: guest '" + config_.name + "' is running (pause it first)");

    // 1. Index and check everything before touching the VM.
    std::map<std::uint32_t, const StateRecord*> by_tag;
    for (const auto& record : state) {
        if (!by_tag.emplace(record.tag, &record).second) {
            throw Error("KVM state: " + state_tags::describe(record.tag) + " appears twice");
        }
    }
    std::vector<std::uint32_t> expected = {state_tags::kMachine};
    for (unsigned i = 0; i < vcpus_.size(); ++i) {
        for (std::uint32_t p = 1; p <= state_tags::kVcpuPartCount; ++p) {
            expected.push_back(state_tags::vcpu_tag(i, static_cast<state_tags::VcpuPart>(p)));
        }
    }
    const std::vector<std::uint32_t> platform_tags = {state_tags::kPicMaster, state_tags::kPicSlave,
                                                      state_tags::kIoapic, state_tags::kPit, state_tags::kClock};
    expected.insert(expected.end(), platform_tags.begin(), platform_tags.end());
    expected.push_back(state_tags::kUart);
    for (std::size_t i = 0; i < nics_.size(); ++i) expected.push_back(state_tags::virtio_net_tag(static_cast<unsigned>(i)));
    for (std::size_t i = 0; i < disks_.size(); ++i) expected.push_back(state_tags::virtio_blk_tag(static_cast<unsigned>(i)));
    for (const auto& [tag, record] : by_tag) {
        if (std::find(expected.begin(), expected.end(), tag) == expected.end()) {
            throw Error("KVM state: unexpected " + state_tags::describe(tag) + " for a guest with " +
                        std::to_string(vcpus_.size()) + " vCPU(s)");
        }
    }
    for (const auto tag : expected) {
        if (!by_tag.count(tag)) throw Error("KVM state: missing " + state_tags::describe(tag));
    }
    const auto machine = body_as<MachineRecord>(*by_tag[state_tags::kMachine]);
    if (machine.vcpus != vcpus_.size() || machine.ram_bytes != ram_->bytes()) {
        throw Error("KVM state is for a guest with " + std::to_string(machine.vcpus) + " vCPU(s) and " +
                    std::to_string(machine.ram_bytes >> 20) + " MiB; this guest has " + std::to_string(vcpus_.size()) +
                    " and " + std::to_string(ram_->bytes() >> 20) + " MiB");
    }
    for (unsigned i = 0; i < vcpus_.size(); ++i) {
        for (std::uint32_t p = 1; p <= state_tags::kVcpuPartCount; ++p) {
            check_vcpu_record(*by_tag[state_tags::vcpu_tag(i, static_cast<state_tags::VcpuPart>(p))], p, state_shape_);
        }
    }
    std::vector<const StateRecord*> platform;
    for (const auto tag : platform_tags) {
        check_platform_record(*by_tag[tag]);
        platform.push_back(by_tag[tag]);
    }
    const StateRecord& uart = *by_tag[state_tags::kUart];
    if (uart.version != Uart8250::kStateVersion) {
        throw Error("KVM state: " + state_tags::describe(uart.tag) + " has version " + std::to_string(uart.version));
    }
    {
        // Dry run on a scratch UART: its restore validates without touching ours.
        Uart8250 scratch({}, {});
        scratch.restore_state(uart.data);
    }

    for (std::size_t i = 0; i < nics_.size(); ++i) {
        const StateRecord& nic = *by_tag[state_tags::virtio_net_tag(static_cast<unsigned>(i))];
        if (nic.version != VirtioNet::kStateVersion) {
            throw Error("KVM state: " + state_tags::describe(nic.tag) + " has version " + std::to_string(nic.version));
        }
    }

    for (std::size_t i = 0; i < disks_.size(); ++i) {
        const StateRecord& disk = *by_tag[state_tags::virtio_blk_tag(static_cast<unsigned>(i))];
        if (disk.version != VirtioBlk::kStateVersion) {
            throw Error("KVM state: " + state_tags::describe(disk.tag) + " has version " + std::to_string(disk.version));
        }
    }

    // 2. Apply: the NICs and disks first (each checks its whole record before it changes anything), then
    //    the platform (the LAPICs and the PIT are fed by it), then each vCPU on its own thread
    //    in the documented order, then the UART.
    for (std::size_t i = 0; i < nics_.size(); ++i) {
        nics_[i]->restore_state(by_tag[state_tags::virtio_net_tag(static_cast<unsigned>(i))]->data);
    }
    for (std::size_t i = 0; i < disks_.size(); ++i) {
        disks_[i]->restore_state(by_tag[state_tags::virtio_blk_tag(static_cast<unsigned>(i))]->data);
    }
    restore_platform_state(vm_, platform);
    for (unsigned i = 0; i < vcpus_.size(); ++i) {
        std::vector<const StateRecord*> parts;
        for (std::uint32_t p = 1; p <= state_tags::kVcpuPartCount; ++p) {
            parts.push_back(by_tag[state_tags::vcpu_tag(i, static_cast<state_tags::VcpuPart>(p))]);
        }
        threads_[i]->run_paused([&](Vcpu& vcpu) { restore_vcpu_state(vcpu, parts); });
    }
    uart_->restore_state(uart.data);
    // Every vCPU now holds complete, consistent state: a failure before the restore is history.
    for (auto& thread : threads_) thread->revive();
}

}  // namespace colo::kvm
