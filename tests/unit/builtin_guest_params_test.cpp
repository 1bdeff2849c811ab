// The built-in guest's parameters from a GuestConfig, and the fixed layout they live in.
#include <doctest/doctest.h>

#include <algorithm>

#include "backends/error.hpp"
#include "backends/guest_config.hpp"
#include "kvm/builtin_guest/image_header.h"
#include "kvm/builtin_guest_loader.hpp"
#include "kvm/layout.hpp"

using colo::GuestConfig;
using colo::kPageSize;
namespace layout = colo::kvm::layout;

TEST_CASE("builtin guest params: rate, interval, working set and verification slice") {
    GuestConfig config;
    config.memory_mib = 128;
    config.working_set_mib = 64;
    config.dirty_rate = 2500;
    config.print_interval_ms = 100;
    config.seed = 77;
    const auto p = colo::kvm::builtin_guest_params(config, 128 << 20, 2'000'000);
    CHECK(p.magic == COLO_BUILTIN_PARAMS_MAGIC);
    CHECK(p.seed == 77);
    CHECK(p.console_port == 0x3f8);
    CHECK(p.flags == COLO_BUILTIN_FLAG_IDLE_ON_TIMER);
    CHECK(colo::kvm::builtin_guest_params(config, 128 << 20, 2'000'000, false).flags == 0);
    CHECK(p.working_set_pages == 64 * 256);
    CHECK(p.writes_per_interval == 250);
    CHECK(p.interval_tsc == 200'000'000);  // 2 GHz * 100 ms
    // Whole set every 2 s = 20 intervals.
    CHECK(p.verify_per_interval == 64 * 256 / 20 + 1);
    CHECK(p.generation_table_gpa == layout::kBuiltinGenerationTable.value);
    CHECK(p.working_set_gpa % kPageSize == 0);
    CHECK(p.working_set_gpa >= p.generation_table_gpa + p.working_set_pages * 4);
    CHECK(p.working_set_gpa + p.working_set_pages * kPageSize <= std::uint64_t{128} << 20);
}

TEST_CASE("builtin guest params: the first vif gives the guest its NIC, MAC and IPv4 address; no vif, no NIC") {
    GuestConfig config;
    const auto none = colo::kvm::builtin_guest_params(config, 128 << 20, 2'000'000);
    CHECK(none.nic_mmio_gpa == 0);
    CHECK(none.net_area_gpa == 0);

    colo::VifConfig vif;
    vif.mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    vif.ip = colo::Ipv4Cidr{{10, 0, 0, 2}, 24};
    colo::VifConfig second;
    second.mac = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
    config.vifs = {vif, second};
    const auto p = colo::kvm::builtin_guest_params(config, 128 << 20, 2'000'000);
    CHECK(p.version == 4);
    CHECK(p.stats_gpa == layout::kBuiltinStats.value);  // where the guest keeps its own stall statistics
    CHECK(p.nic_mmio_gpa == layout::kVirtioMmioBase.value);  // slot 0: the first vif
    CHECK(p.nic_gsi == layout::kVirtioFirstGsi);
    CHECK(p.ioapic_gpa == 0xfec00000);
    CHECK(p.net_area_gpa == layout::kBuiltinNetArea.value);
    CHECK(std::equal(vif.mac.begin(), vif.mac.end(), p.mac));
    CHECK(p.ipv4[0] == 10);
    CHECK(p.ipv4[3] == 2);
    CHECK(p.ipv4_prefix == 24);
}

TEST_CASE("builtin guest params: a working set beyond low RAM is refused with the numbers") {
    GuestConfig config;
    config.working_set_mib = 126;
    CHECK_THROWS_WITH_AS((void)colo::kvm::builtin_guest_params(config, 128 << 20, 1'000'000),
                         "built-in guest: working_set = 126 MiB needs guest RAM up to 129 MiB (below 3 GiB), the "
                         "guest has 128 MiB there",
                         colo::Error);
    // Above 3 GiB there is the PCI hole: a 5 GiB guest still has only 3 GiB below it.
    config.working_set_mib = 3072;
    CHECK_THROWS_AS((void)colo::kvm::builtin_guest_params(config, std::uint64_t{5} << 30, 1'000'000), colo::Error);
}

TEST_CASE("kvm layout: VMM tables, built-in guest areas and the hole do not overlap") {
    CHECK(layout::kGdt.value >= layout::kVmmTablesBegin.value);
    CHECK(layout::kPageDirectories.value + layout::kPageDirectoryCount * kPageSize <= layout::kRing0StackBottom.value);
    CHECK(layout::kRing0StackTop.value <= layout::kVmmTablesEnd.value);
    CHECK(layout::kBuiltinParams.value >= layout::kVmmTablesEnd.value);
    CHECK(layout::kBuiltinParams.value + kPageSize <= layout::kBuiltinNetArea.value);
    CHECK(layout::kBuiltinNetArea.value % kPageSize == 0);
    CHECK(layout::kBuiltinNetArea.value + COLO_BUILTIN_NET_AREA_BYTES <= layout::kBuiltinImage.value);
    CHECK(layout::kVirtioMmioBase.value + layout::kVirtioMmioSlots * layout::kVirtioMmioSlotBytes <=
          layout::kIoapic.value);
    CHECK(layout::kIoapic.value < layout::kMaxIdentityMapBytes);
    CHECK(layout::kBuiltinImage.value + layout::kBuiltinImageMaxBytes <= layout::kBuiltinStackTop.value);
    CHECK(layout::kBuiltinStackTop.value <= layout::kBuiltinGenerationTable.value);
    CHECK(layout::kLowRamEnd <= layout::kKvmRealModeTss.value);
    CHECK(layout::kKvmRealModeTss.value + 3 * kPageSize <= layout::kHighRamBegin.value);
    CHECK(layout::kMaxIdentityMapBytes >= layout::kLowRamEnd);
}

TEST_CASE("kvm layout: kernel selectors are the Linux 64-bit boot protocol's __BOOT_CS and __BOOT_DS") {
    CHECK(layout::kKernelCodeSelector == 0x10);
    CHECK(layout::kKernelDataSelector == 0x18);
    CHECK((layout::kUserCodeSelector & 3) == 3);
    CHECK((layout::kUserDataSelector & 3) == 3);
    CHECK(layout::kTssSelector + 16 <= layout::kGdtEntries * 8);
}

TEST_CASE("builtin guest params: the first disk gives the guest its disk workload; no disk, no workload") {
    GuestConfig config;
    config.memory_mib = 64;
    config.working_set_mib = 16;
    const auto none = colo::kvm::builtin_guest_params(config, 64 << 20, 2'000'000);
    CHECK(none.disk_mmio_gpa == 0);
    CHECK(none.disk_area_gpa == 0);

    config.disks = {colo::DiskConfig{"/a.img", "xvda", false}, colo::DiskConfig{"/b.img", "xvdb", false}};
    config.disk_rate = 250;
    config.disk_writes = 500;
    config.disk_flush_every = 4;
    const auto p = colo::kvm::builtin_guest_params(config, 64 << 20, 2'000'000);
    // Slot kMaxVifs: the first disk, whether or not the guest has NICs.
    CHECK(p.disk_mmio_gpa == layout::kVirtioMmioBase.value + colo::kMaxVifs * layout::kVirtioMmioSlotBytes);
    CHECK(p.disk_area_gpa == layout::kBuiltinDiskArea.value);
    CHECK(p.disk_generation_gpa == p.working_set_gpa + p.working_set_pages * kPageSize);
    CHECK(p.disk_table_blocks == 1024);  // disk_blocks 0: the guest takes min(size / 4096, 1024)
    CHECK(p.disk_blocks == 0);
    CHECK(p.disk_rate_x1000 == 250 * 100);  // 25 blocks per 100 ms interval
    CHECK(p.disk_writes == 500);
    CHECK(p.disk_flush_every == 4);
    CHECK(p.disk_sweep_intervals == 20);

    config.disk_blocks = 4096;
    CHECK(colo::kvm::builtin_guest_params(config, 64 << 20, 2'000'000).disk_table_blocks == 4096);
    // The table must fit below the end of RAM too: 1 Mi blocks take 8 MiB.
    config.working_set_mib = 56;
    config.disk_blocks = 1 << 20;
    CHECK_THROWS_WITH_AS((void)colo::kvm::builtin_guest_params(config, 64 << 20, 2'000'000),
                         "built-in guest: disk_blocks = 1048576 needs guest RAM up to 67 MiB (below 3 GiB) for its table, "
                         "the guest has 64 MiB there",
                         colo::Error);
}
