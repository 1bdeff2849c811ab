// A tiny ring-3 guest writes pages the test chooses; the dirty log must report exactly those
// pages (plus the ones the VMM itself wrote), round after round (STYLE §4).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <set>
#include <vector>

#include "backends/dirty_bitmap.hpp"
#include "backends/error.hpp"
#include "backends/memory_mapping.hpp"
#include "kvm/guest_ram.hpp"
#include "kvm/layout.hpp"
#include "kvm/long_mode_entry.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu.hpp"
#include "kvm/vm.hpp"
#include "toolstack/replication/ram_cache.hpp"

using namespace colo;
using namespace colo::kvm;

namespace {

// Ring 3: for (; rcx; --rcx, rdi += rdx) *(u8*)rdi = al;  *(u8*)rbx = al;  jmp $
// The last store goes to an address in the PCI hole (no memory slot): an MMIO exit says "done".
// (Port I/O would need ring 0: nested PVM KVM ignores IOPL for user mode.)
constexpr std::array<std::uint8_t, 16> kWriterCode = {
    0x88, 0x07,              // mov [rdi], al
    0x48, 0x01, 0xd7,        // add rdi, rdx
    0x48, 0xff, 0xc9,        // dec rcx
    0x75, 0xf6,              // jnz -10
    0x88, 0x03,              // mov [rbx], al
    0xeb, 0xfe,              // jmp $
    0x90, 0x90,
};
constexpr Gpa kCode{0x100000};
constexpr Gpa kDoneMmio{0xd0000000};

struct TinyGuest {
    System system;
    Vm vm = system.create_vm();
    GuestRam ram{vm, 16 << 20};
    Vcpu vcpu = vm.create_vcpu(0);

    TinyGuest() {
        vm.set_tss_addr(layout::kKvmRealModeTss.value);
        vcpu.set_cpuid2(system.get_supported_cpuid());
        EntryState entry;
        entry.user_mode = true;
        entry.identity_map_bytes = layout::kMaxIdentityMapBytes;
        write_long_mode_tables(ram, entry, std::nullopt);
        ram.write(kCode, std::as_bytes(std::span(kWriterCode)));
    }

    // Runs the writer over `count` pages from `first`, `stride_pages` apart, storing `value`.
    void write_pages(Gpa first, std::uint64_t count, std::uint64_t stride_pages, std::uint8_t value) {
        EntryState entry;
        entry.user_mode = true;
        entry.rip = kCode.value;
        entry.rsp = layout::kBuiltinStackTop.value;
        enter_long_mode(vcpu, entry);
        auto regs = vcpu.get_regs();
        regs.rdi = first.value;
        regs.rcx = count;
        regs.rdx = stride_pages * kPageSize;
        regs.rax = value;
        regs.rbx = kDoneMmio.value;
        vcpu.set_regs(regs);
        while (!vcpu.run()) {
        }
        const kvm_run* run = vcpu.run_page().get();
        REQUIRE_MESSAGE(run->exit_reason == KVM_EXIT_MMIO, "exit reason " << run->exit_reason);
        REQUIRE(run->mmio.phys_addr == kDoneMmio.value);
        REQUIRE(run->mmio.is_write);
    }

    // The first run maps the code page. On a shadow-paging KVM (nested PVM) a page first mapped
    // through a guest PTE whose dirty bit is set gets a writable shadow entry and is logged
    // dirty even when only read: a safe over-report, once per page. Run once so that the rounds
    // after it are exact; this round's report must still contain what was written.
    void warm_up() {
        write_pages(Gpa{0x3ff000}, 1, 1, 0xee);
        const auto first = harvest();
        CHECK(first.count(0x3ff) == 1);
        CHECK(first.size() <= 2);
    }

    // The frames harvested, less the VMM's own page-table frames. On AMD nested paging the
    // CPU's walks of the guest's page tables count as writes to them (even with accessed and
    // dirty bits preset), so KVM logs those frames on every round: a safe over-report that
    // this machine's KVM does not make, the nested tier's kvm_amd does. Nothing else may
    // appear: `page_table_extras` counts what was dropped, for the few tests that care.
    std::set<std::uint64_t> harvest() {
        DirtyBitmap bitmap(ram.frame_limit());
        ram.harvest_dirty(bitmap);
        std::set<std::uint64_t> frames;
        for (const Pfn pfn : bitmap.frames()) {
            if (is_page_table(pfn)) {
                ++page_table_extras;
                continue;
            }
            frames.insert(pfn.value);
        }
        return frames;
    }

    static bool is_page_table(Pfn pfn) {
        return pfn == layout::kPml4.pfn() || pfn == layout::kPdpt.pfn() ||
               (pfn >= layout::kPageDirectories.pfn() &&
                pfn.value < layout::kPageDirectories.pfn().value + layout::kPageDirectoryCount);
    }

    std::uint64_t page_table_extras = 0;
};

std::set<std::uint64_t> pages(std::uint64_t first_pfn, std::uint64_t count, std::uint64_t stride) {
    std::set<std::uint64_t> out;
    for (std::uint64_t i = 0; i < count; ++i) out.insert(first_pfn + i * stride);
    return out;
}

}  // namespace

namespace doctest {
template <>
struct StringMaker<std::set<std::uint64_t>> {
    static String convert(const std::set<std::uint64_t>& frames) {
        std::string out = "{";
        for (const auto f : frames) out += " 0x" + [](std::uint64_t v) { char b[24]; std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v)); return std::string(b); }(f);
        return (out + " }").c_str();
    }
};
}  // namespace doctest

TEST_CASE("kvm dirty log: exactly the pages the guest wrote, round after round") {
    TinyGuest guest;
    guest.ram.start_dirty_log();
    // What the VMM wrote while building the guest (tables and code) was written before the log
    // started: whoever starts it reads all of memory first, so it is not reported again.
    CHECK(guest.harvest().empty());
    guest.warm_up();

    struct Round {
        std::uint64_t first_pfn, count, stride;
    };
    const std::vector<Round> rounds = {{0x300, 5, 1}, {0x400, 64, 2}, {0x7ff, 1, 1}, {0x300, 200, 3},
                                       {0x500, 130, 1}};
    std::uint8_t value = 1;
    for (const Round& round : rounds) {
        CAPTURE(round.first_pfn);
        CAPTURE(round.count);
        guest.write_pages(Pfn{round.first_pfn}.gpa(), round.count, round.stride, value++);
        CHECK(guest.harvest() == pages(round.first_pfn, round.count, round.stride));
        // Nothing written since: nothing reported.
        CHECK(guest.harvest().empty());
        // The guest's bytes really are in our view of its RAM.
        CHECK(guest.ram.host(Pfn{round.first_pfn}.gpa(), 1)[0] == std::byte{static_cast<std::uint8_t>(value - 1)});
    }
}

TEST_CASE("kvm dirty log: pages the VMM writes are reported with the guest's, the pipeline's writes are not") {
    TinyGuest guest;
    guest.ram.start_dirty_log();
    (void)guest.harvest();
    guest.warm_up();

    std::vector<std::byte> page(kPageSize, std::byte{0x5a});
    const std::array<Pfn, 2> vmm_frames = {Pfn{0x600}, Pfn{0x9ff}};
    std::vector<std::byte> two(2 * kPageSize, std::byte{0x11});
    guest.ram.write_pages(vmm_frames, two);  // the pipeline's own writes (a secondary's flush): not logged
    guest.ram.mark_vmm_dirty(Gpa{0x700000 + 100}, 5000);  // device emulation: spans two pages
    guest.write_pages(Gpa{0x300000}, 3, 1, 7);

    auto expected = pages(0x300, 3, 1);
    expected.insert({0x700, 0x701});
    CHECK(guest.harvest() == expected);
    CHECK(guest.harvest().empty());
}

TEST_CASE("kvm dirty log: out-of-range access is a clear error") {
    TinyGuest guest;
    std::vector<std::byte> page(kPageSize);
    const std::array<Pfn, 1> outside = {Pfn{0x1000}};  // 16 MiB guest: frame 4096 is past the end
    CHECK_THROWS_WITH_AS(guest.ram.read_pages(outside, page), "guest frame 4096 is outside guest RAM", colo::Error);
    DirtyBitmap wrong(10);
    CHECK_THROWS_AS(guest.ram.harvest_dirty(wrong), colo::Error);
}

TEST_CASE("kvm guest RAM: over 3 GiB the rest continues at 4 GiB, and its pages are read, written and logged") {
    System system;
    Vm vm = system.create_vm();
    GuestRam ram(vm, (std::uint64_t{3} << 30) + (std::uint64_t{4} << 20));  // nothing is touched but a few pages
    const auto regions = ram.regions();
    REQUIRE(regions.size() == 2);
    CHECK(regions[0] == MemoryRegion{Pfn{0}, (std::uint64_t{3} << 30) / kPageSize});
    CHECK(regions[1] == MemoryRegion{layout::kHighRamBegin.pfn(), (std::uint64_t{4} << 20) / kPageSize});
    CHECK(ram.frame_limit() == regions[1].end().value);
    CHECK_FALSE(ram.contains(Gpa{0xd0000000}.pfn()));  // the hole

    ram.start_dirty_log();
    DirtyBitmap bitmap(ram.frame_limit());
    ram.harvest_dirty(bitmap);
    bitmap.clear_all();

    const std::array<Pfn, 2> frames = {Pfn{5}, layout::kHighRamBegin.pfn() + 3};
    std::vector<std::byte> in(2 * kPageSize);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = std::byte(static_cast<std::uint8_t>(i * 7));
    ram.write_pages(frames, in);
    for (const Pfn pfn : frames) ram.mark_vmm_dirty(pfn.gpa(), kPageSize);  // as device emulation would
    std::vector<std::byte> out(2 * kPageSize);
    ram.read_pages(frames, out);
    CHECK(out == in);
    CHECK(ram.host(layout::kHighRamBegin + 3 * kPageSize + 1, 1)[0] == in[kPageSize + 1]);

    ram.harvest_dirty(bitmap);
    CHECK(bitmap.frames() == std::vector<Pfn>{frames.begin(), frames.end()});
    const std::array<Pfn, 1> hole = {Gpa{0xd0000000}.pfn()};
    std::vector<std::byte> page(kPageSize);
    CHECK_THROWS_AS(ram.read_pages(hole, page), colo::Error);
}

TEST_CASE("kvm guest RAM copy-on-write: both slots read the file at packed offsets, writes stay private until dropped") {
    System system;
    Vm vm = system.create_vm();
    const std::uint64_t bytes = (std::uint64_t{3} << 30) + (std::uint64_t{4} << 20);
    GuestRam ram(vm, bytes);
    const auto file = create_memfd("test-cache", bytes);
    const auto view = map_shared(file.get(), bytes);
    const Pfn low{5};
    const Pfn high = layout::kHighRamBegin.pfn() + 3;
    const std::uint64_t high_offset = (std::uint64_t{3} << 30) + 3 * kPageSize;  // slot 1 follows slot 0
    std::memset(view.data() + low.value * kPageSize, 0x11, kPageSize);
    std::memset(view.data() + high_offset, 0x22, kPageSize);

    REQUIRE(ram.map_copy_on_write(file.get()));
    CHECK(ram.host(low.gpa(), 1)[0] == std::byte{0x11});
    CHECK(ram.host(high.gpa(), 1)[0] == std::byte{0x22});
    // A change in the file shows through where the guest wrote nothing.
    view.data()[high_offset] = std::byte{0x23};
    CHECK(ram.host(high.gpa(), 1)[0] == std::byte{0x23});

    ram.start_dirty_log();
    DirtyBitmap dirty(ram.frame_limit());
    ram.harvest_dirty(dirty);
    ram.write(high.gpa(), std::vector<std::byte>(kPageSize, std::byte{0x33}));  // device emulation
    CHECK(ram.host(high.gpa(), 1)[0] == std::byte{0x33});
    CHECK(view.data()[high_offset] == std::byte{0x23});  // private: the file never sees it
    view.data()[high_offset] = std::byte{0x24};
    CHECK(ram.host(high.gpa(), 1)[0] == std::byte{0x33});  // nor the copy the file's change

    ram.harvest_dirty(dirty);
    CHECK(dirty.frames() == std::vector<Pfn>{high});
    ram.drop_private_copies(dirty);
    CHECK(ram.host(high.gpa(), 1)[0] == std::byte{0x24});
    CHECK(ram.host(low.gpa(), 1)[0] == std::byte{0x11});
}

TEST_CASE("kvm COLO over a shared RAM cache: a page KVM wrote itself, in no dirty log, reads the PVM's copy once received") {
    // KVM writes guest memory of its own (kvmclock, the wall clock, async page faults). Through a
    // copy-on-write view that write makes a private copy, and where the SVM's dirty log does not
    // report it (here: written while restore_state ran, before the log started, as a Linux SVM's
    // MSR_KVM_WALL_CLOCK_NEW and kvmclock are) only the PVM's page arriving says it must go. The
    // nested tier saw such copies hide the PVM's pages from a Linux SVM for good.
    constexpr std::uint32_t kMsrKvmWallClockNew = 0x4b564d00;
    System system;
    Vm vm = system.create_vm();
    GuestRam ram(vm, std::uint64_t{4} << 20);
    RamCache cache(ram.regions());
    REQUIRE(cache.share_with(ram));
    const Pfn clock{7};
    cache.load(std::span(&clock, 1), std::vector<std::byte>(kPageSize, std::byte{0x11}));  // the migration
    Vcpu vcpu = vm.create_vcpu(0);
    REQUIRE(vcpu.set_msrs(std::array{MsrEntry{kMsrKvmWallClockNew, clock.gpa().value}}) == 1);
    REQUIRE(ram.host(clock.gpa(), 1)[0] != std::byte{0x11});  // KVM wrote the wall clock's version
    CHECK(cache.committed_page(clock)[0] == std::byte{0x11});  // into a private copy

    ram.start_dirty_log();
    DirtyBitmap svm_dirty(ram.frame_limit());
    ram.harvest_dirty(svm_dirty);
    CHECK(svm_dirty.count() == 0);  // in no log
    cache.receive(std::span(&clock, 1), std::vector<std::byte>(kPageSize, std::byte{0x22}));
    DirtyBitmap received(ram.frame_limit());
    received.set(clock);
    CHECK(cache.commit(ram, received, svm_dirty, 256) == 1);
    const auto page = ram.host(clock.gpa(), kPageSize);
    CHECK(std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0x22}; }));
}
