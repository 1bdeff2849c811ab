#include "kvm/long_mode_entry.hpp"

#include <cstring>
#include <string>

#include "backends/error.hpp"
#include "kvm/guest_ram.hpp"
#include "kvm/layout.hpp"
#include "kvm/vcpu.hpp"

namespace colo::kvm {

namespace {

// Page-table entry bits.
constexpr std::uint64_t kPresent = 1u << 0;
constexpr std::uint64_t kWritable = 1u << 1;
constexpr std::uint64_t kUser = 1u << 2;
constexpr std::uint64_t kAccessed = 1u << 5;
constexpr std::uint64_t kDirty = 1u << 6;
constexpr std::uint64_t kLargePage = 1u << 7;
constexpr std::uint64_t kTwoMiB = std::uint64_t{2} << 20;

// Control-register bits.
constexpr std::uint64_t kCr0Pe = 1u << 0, kCr0Mp = 1u << 1, kCr0Et = 1u << 4, kCr0Ne = 1u << 5;
constexpr std::uint64_t kCr0Wp = 1u << 16, kCr0Pg = 1u << 31;
constexpr std::uint64_t kCr4Pae = 1u << 5, kCr4Osfxsr = 1u << 9, kCr4Osxmmexcpt = 1u << 10;
constexpr std::uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;
constexpr std::uint64_t kRflagsIopl3 = 3u << 12;

constexpr std::uint64_t kTssBytes = 104;

// Flat segment descriptors: access byte and flags as the SDM lays them out.
constexpr std::uint64_t kKernelCode = 0x00af9a000000ffff;  // L=1, DPL 0, execute/read
constexpr std::uint64_t kKernelData = 0x00cf92000000ffff;  // DPL 0, read/write
constexpr std::uint64_t kUserData = 0x00cff2000000ffff;    // DPL 3, read/write
constexpr std::uint64_t kUserCode = 0x00affa000000ffff;    // L=1, DPL 3, execute/read

template <typename T>
void put(std::span<std::byte> out, std::size_t offset, T value) {
    std::memcpy(out.data() + offset, &value, sizeof value);
}

kvm_segment code_segment(bool user) {
    kvm_segment s{};
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = user ? layout::kUserCodeSelector : layout::kKernelCodeSelector;
    s.type = 11;  // execute/read, accessed
    s.present = 1;
    s.dpl = user ? 3 : 0;
    s.s = 1;
    s.l = 1;
    s.g = 1;
    return s;
}

kvm_segment data_segment(bool user) {
    kvm_segment s{};
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = user ? layout::kUserDataSelector : layout::kKernelDataSelector;
    s.type = 3;  // read/write, accessed
    s.present = 1;
    s.dpl = user ? 3 : 0;
    s.db = 1;
    s.s = 1;
    s.g = 1;
    return s;
}

}  // namespace

void write_long_mode_tables(GuestRam& ram, const EntryState& entry, std::optional<InterruptGates> gates) {
    if (entry.identity_map_bytes == 0 || entry.identity_map_bytes > layout::kMaxIdentityMapBytes ||
        entry.identity_map_bytes % kTwoMiB != 0) {
        throw Error("identity map of " + std::to_string(entry.identity_map_bytes) +
                    " bytes: must be a multiple of 2 MiB, at most 4 GiB");
    }

    // GDT.
    auto gdt = ram.host(layout::kGdt, kPageSize);
    std::memset(gdt.data(), 0, gdt.size());
    put(gdt, layout::kKernelCodeSelector, kKernelCode);
    put(gdt, layout::kKernelDataSelector, kKernelData);
    put(gdt, layout::kUserDataSelector & ~3u, kUserData);
    put(gdt, layout::kUserCodeSelector & ~3u, kUserCode);
    const std::uint64_t tss = layout::kTss.value;
    const std::uint64_t tss_low = (kTssBytes - 1) | ((tss & 0xffffff) << 16) | (std::uint64_t{0x89} << 40) |
                                  (((tss >> 24) & 0xff) << 56);  // present, 64-bit TSS (available)
    put(gdt, layout::kTssSelector, tss_low);
    put(gdt, layout::kTssSelector + 8, tss >> 32);

    // TSS: a fault from ring 3 switches to the ring-0 stack. No I/O bitmap (IOPL 3 covers it).
    auto tss_page = ram.host(layout::kTss, kPageSize);
    std::memset(tss_page.data(), 0, tss_page.size());
    put(tss_page, 4, layout::kRing0StackTop.value);
    put(tss_page, 102, static_cast<std::uint16_t>(kTssBytes));

    // IDT: interrupt gates (type 0xE, present; DPL 0, or 3 for the user call) on the kernel
    // code selector.
    auto idt = ram.host(layout::kIdt, kPageSize);
    std::memset(idt.data(), 0, idt.size());
    const auto gate = [&](unsigned vector, std::uint64_t target, unsigned dpl) {
        const std::uint64_t access = 0x8e | (dpl << 5);
        const std::uint64_t low = (target & 0xffff) | (std::uint64_t{layout::kKernelCodeSelector} << 16) |
                                  (access << 40) | (((target >> 16) & 0xffff) << 48);
        put(idt, vector * 16, low);
        put(idt, vector * 16 + 8, target >> 32);
    };
    if (gates) {
        for (unsigned v = 0; v < kExceptionVectors; ++v) {
            gate(v, gates->exception_stubs.value + std::uint64_t{v} * gates->exception_stride, 0);
        }
        for (const auto& g : gates->more) gate(g.vector, g.target.value, g.dpl);
    }

    // Page tables. Accessed and dirty bits are preset so the CPU never writes to the tables:
    // such writes would show up as dirty pages the guest did not write.
    const std::uint64_t user = (entry.user_mode ? kUser : 0) | kAccessed;
    auto pml4 = ram.host(layout::kPml4, kPageSize);
    auto pdpt = ram.host(layout::kPdpt, kPageSize);
    auto pds = ram.host(layout::kPageDirectories, layout::kPageDirectoryCount * kPageSize);
    std::memset(pml4.data(), 0, pml4.size());
    std::memset(pdpt.data(), 0, pdpt.size());
    std::memset(pds.data(), 0, pds.size());
    put(pml4, 0, layout::kPdpt.value | kPresent | kWritable | user);
    for (std::uint64_t i = 0; i < layout::kPageDirectoryCount; ++i) {
        put(pdpt, i * 8, (layout::kPageDirectories.value + i * kPageSize) | kPresent | kWritable | user);
    }
    for (std::uint64_t i = 0; i < entry.identity_map_bytes / kTwoMiB; ++i) {
        put(pds, i * 8, (i * kTwoMiB) | kPresent | kWritable | kLargePage | kDirty | user);
    }
    ram.mark_vmm_dirty(layout::kVmmTablesBegin, layout::kVmmTablesEnd.value - layout::kVmmTablesBegin.value);
}

void enter_long_mode(Vcpu& vcpu, const EntryState& entry) {
    kvm_sregs sregs = vcpu.get_sregs();
    sregs.cs = code_segment(entry.user_mode);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data_segment(entry.user_mode);

    sregs.tr = kvm_segment{};
    sregs.tr.base = layout::kTss.value;
    sregs.tr.limit = kTssBytes - 1;
    sregs.tr.selector = layout::kTssSelector;
    sregs.tr.type = 11;  // 64-bit TSS, busy
    sregs.tr.present = 1;

    sregs.gdt.base = layout::kGdt.value;
    sregs.gdt.limit = static_cast<std::uint16_t>(layout::kGdtEntries * 8 - 1);
    sregs.idt.base = layout::kIdt.value;
    sregs.idt.limit = 256 * 16 - 1;

    sregs.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Pg;
    sregs.cr3 = layout::kPml4.value;
    sregs.cr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;
    sregs.efer = kEferLme | kEferLma;
    vcpu.set_sregs(sregs);

    kvm_regs regs{};
    regs.rip = entry.rip;
    regs.rsp = entry.rsp;
    regs.rsi = entry.rsi;
    regs.rflags = entry.rflags | 0x2 | (entry.user_mode ? kRflagsIopl3 : 0);
    vcpu.set_regs(regs);
}

}  // namespace colo::kvm
