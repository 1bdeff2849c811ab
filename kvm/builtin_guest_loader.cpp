#include "kvm/builtin_guest_loader.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "backends/error.hpp"
#include "kvm/builtin_guest/builtin_guest_image.hpp"
#include "kvm/builtin_guest/image_header.h"
#include "kvm/guest_ram.hpp"
#include "kvm/layout.hpp"
#include "kvm/long_mode_entry.hpp"

namespace colo::kvm {

namespace {

constexpr std::uint16_t kCom1 = 0x3f8;
static_assert(sizeof(colo_builtin_stats) <= kPageSize && layout::kBuiltinStats.value >= layout::kBuiltinParams.value + kPageSize &&
              layout::kBuiltinNetArea.value >= layout::kBuiltinStats.value + kPageSize);
static_assert(layout::kBuiltinNetArea.value >= layout::kBuiltinParams.value + kPageSize &&
                  layout::kBuiltinNetArea.value + COLO_BUILTIN_NET_AREA_BYTES <= layout::kBuiltinImage.value,
              "the built-in guest's network area overlaps its parameters page or image");
// The whole working set is verified about once per this many milliseconds.
constexpr std::uint64_t kVerifySweepMs = 2000;
// Blocks of the disk the workload uses when disk_blocks is not set (at most).
constexpr std::uint64_t kDefaultDiskBlocks = 1024;
static_assert(layout::kBuiltinDiskArea.value >= layout::kBuiltinNetArea.value + COLO_BUILTIN_NET_AREA_BYTES &&
                  layout::kBuiltinDiskArea.value + COLO_BUILTIN_DISK_AREA_BYTES <= layout::kBuiltinImage.value,
              "the built-in guest's disk area overlaps its network area or image");

std::uint64_t round_up(std::uint64_t value, std::uint64_t to) { return (value + to - 1) / to * to; }

colo_builtin_image_header read_header(std::span<const std::byte> image) {
    colo_builtin_image_header header{};
    if (image.size() < sizeof header) throw Error("built-in guest image is shorter than its header");
    std::memcpy(&header, image.data(), sizeof header);
    const std::uint64_t begin = layout::kBuiltinImage.value;
    const std::uint64_t end = begin + layout::kBuiltinImageMaxBytes;
    const auto inside = [&](std::uint64_t gpa) { return gpa >= begin && gpa < end; };
    if (header.magic != COLO_BUILTIN_IMAGE_MAGIC || header.version != COLO_BUILTIN_IMAGE_VERSION ||
        !inside(header.entry) || !inside(header.exception_stubs) || !inside(header.guest_call) ||
        !inside(header.timer_interrupt) || !inside(header.spurious_interrupt) || !inside(header.nic_interrupt) ||
        header.exception_vectors != kExceptionVectors || header.image_end > end ||
        header.image_end < begin + image.size()) {
        throw Error("built-in guest image has a bad header (rebuild colo-replicate)");
    }
    return header;
}

}  // namespace

colo_builtin_params builtin_guest_params(const GuestConfig& config, std::uint64_t ram_bytes, std::uint32_t tsc_khz,
                                         bool idle_on_timer) {
    colo_builtin_params p{};
    p.magic = COLO_BUILTIN_PARAMS_MAGIC;
    p.version = COLO_BUILTIN_PARAMS_VERSION;
    p.console_port = kCom1;
    p.flags = idle_on_timer ? COLO_BUILTIN_FLAG_IDLE_ON_TIMER : 0;
    p.seed = config.seed;
    const std::uint64_t interval = config.print_interval_ms;
    p.writes_per_interval = config.dirty_rate * interval / 1000;
    const std::uint64_t intervals_per_sweep = std::max<std::uint64_t>(1, kVerifySweepMs / interval);
    p.working_set_pages = config.working_set_mib * (std::uint64_t{1} << 20) / kPageSize;
    if (p.working_set_pages == 0) throw Error("built-in guest: working_set must be at least 1 MiB");
    p.generation_table_gpa = layout::kBuiltinGenerationTable.value;
    p.working_set_gpa = round_up(p.generation_table_gpa + p.working_set_pages * sizeof(std::uint32_t), kPageSize);
    const std::uint64_t low_ram = std::min(ram_bytes, layout::kLowRamEnd);
    std::uint64_t needed = p.working_set_gpa + p.working_set_pages * kPageSize;
    if (needed > low_ram) {
        throw Error("built-in guest: working_set = " + std::to_string(config.working_set_mib) +
                    " MiB needs guest RAM up to " + std::to_string((needed + (1 << 20) - 1) >> 20) +
                    " MiB (below 3 GiB), the guest has " + std::to_string(low_ram >> 20) + " MiB there");
    }
    // The first disk is the workload's (virtio-mmio slot kMaxVifs); its generation table follows
    // the working set. Without disk_blocks the guest takes min(disk size / 4096, 1024) blocks.
    if (!config.disks.empty()) {
        p.disk_mmio_gpa = layout::kVirtioMmioBase.value + kMaxVifs * layout::kVirtioMmioSlotBytes;
        p.disk_area_gpa = layout::kBuiltinDiskArea.value;
        p.disk_generation_gpa = needed;
        p.disk_table_blocks = config.disk_blocks != 0 ? config.disk_blocks : kDefaultDiskBlocks;
        p.disk_blocks = config.disk_blocks;
        p.disk_rate_x1000 = config.disk_rate * interval;
        p.disk_writes = config.disk_writes;
        p.disk_flush_every = config.disk_flush_every;
        p.disk_sweep_intervals = intervals_per_sweep;
        needed = round_up(needed + p.disk_table_blocks * sizeof(std::uint64_t), kPageSize);
        if (needed > low_ram) {
            throw Error("built-in guest: disk_blocks = " + std::to_string(p.disk_table_blocks) +
                        " needs guest RAM up to " + std::to_string((needed + (1 << 20) - 1) >> 20) +
                        " MiB (below 3 GiB) for its table, the guest has " + std::to_string(low_ram >> 20) +
                        " MiB there");
        }
    }
    p.verify_per_interval = (p.working_set_pages + intervals_per_sweep - 1) / intervals_per_sweep;
    p.stats_gpa = layout::kBuiltinStats.value;
    p.tsc_khz = tsc_khz;
    p.interval_tsc = std::uint64_t{tsc_khz} * interval;
    // The first vif is the guest's NIC (virtio-mmio slot 0); without one the guest has no network.
    if (!config.vifs.empty()) {
        const VifConfig& vif = config.vifs.front();
        p.nic_mmio_gpa = layout::kVirtioMmioBase.value;
        p.nic_gsi = layout::kVirtioFirstGsi;
        p.ioapic_gpa = layout::kIoapic.value;
        p.net_area_gpa = layout::kBuiltinNetArea.value;
        std::copy(vif.mac.begin(), vif.mac.end(), p.mac);
        if (vif.ip) {
            std::copy(vif.ip->address.begin(), vif.ip->address.end(), p.ipv4);
            p.ipv4_prefix = static_cast<std::uint8_t>(vif.ip->prefix);
        }
    }
    return p;
}

EntryState load_builtin_guest(const GuestConfig& config, GuestRam& ram, std::uint32_t tsc_khz, bool idle_on_timer) {
    const auto params = builtin_guest_params(config, ram.bytes(), tsc_khz, idle_on_timer);
    const auto image = builtin_guest_image();
    const auto header = read_header(image);

    EntryState entry;
    entry.rip = header.entry;
    entry.rsp = layout::kBuiltinStackTop.value;
    entry.rsi = layout::kBuiltinParams.value;
    entry.user_mode = true;
    entry.identity_map_bytes = round_up(std::min(ram.bytes(), layout::kLowRamEnd), std::uint64_t{2} << 20);
    // The NIC's and the disk's drivers run in ring 3 and talk to the virtio-mmio pages and the
    // IOAPIC themselves: map the hole below 4 GiB too (only with a NIC or a disk: otherwise a
    // stray pointer there still faults).
    if (params.nic_mmio_gpa != 0 || params.disk_mmio_gpa != 0) entry.identity_map_bytes = layout::kMaxIdentityMapBytes;

    InterruptGates gates;
    gates.exception_stubs = Gpa{header.exception_stubs};
    gates.exception_stride = header.exception_stub_stride;
    gates.more = {{COLO_BUILTIN_CALL_VECTOR, Gpa{header.guest_call}, 3},
                  {COLO_BUILTIN_TIMER_VECTOR, Gpa{header.timer_interrupt}, 0},
                  {COLO_BUILTIN_SPURIOUS_VECTOR, Gpa{header.spurious_interrupt}, 0},
                  {COLO_BUILTIN_NIC_VECTOR, Gpa{header.nic_interrupt}, 0}};
    write_long_mode_tables(ram, entry, gates);

    ram.write(layout::kBuiltinImage, image);
    const std::uint64_t bss = header.image_end - layout::kBuiltinImage.value - image.size();
    auto zero = ram.host(layout::kBuiltinImage + image.size(), bss);
    std::memset(zero.data(), 0, zero.size());
    ram.mark_vmm_dirty(layout::kBuiltinImage + image.size(), bss);
    ram.write(layout::kBuiltinParams, std::as_bytes(std::span(&params, 1)));
    return entry;
}

}  // namespace colo::kvm
