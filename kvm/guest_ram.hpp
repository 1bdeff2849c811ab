// The guest's RAM: one memfd (MAP_SHARED, so a later stage can share or snapshot it) mapped once
// into the VMM and handed to KVM as one slot below the PCI hole and, for guests over 3 GiB, one
// slot from 4 GiB up (kvm/layout.hpp).
// On a COLO secondary the RAM becomes a copy-on-write view of the RAM cache's memfd
// (map_copy_on_write: a private mapping laid over the same addresses, so the slots stay as they
// are; KVM follows through its MMU notifier). A page the SVM never wrote is then the cache's page,
// and reverting what the SVM wrote is dropping its private copies (drop_private_copies). The slots'
// layout is the packed one GuestMemory::map_copy_on_write asks for: slot 1 starts in the mapping
// where slot 0 ends.
//
// Dirty logging (STYLE §4) keeps two logs: KVM's per-slot log of guest writes
// (KVM_MEM_LOG_DIRTY_PAGES with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) and our own bitmap of pages
// the VMM wrote for the guest (loaders, device emulation: mark_vmm_dirty, write). Not
// write_pages: that is the pipeline's own writing (backends/guest_memory.hpp). harvest_dirty
// returns the union of the two logs and clears both. Both start empty at start_dirty_log: the
// loader's writes before it are not reported (a pre-copy that got them in its second round
// resent a Linux guest's kernel and initramfs, about all of a small guest's memory, twice).
//
// Manual protect is enabled WITHOUT KVM_DIRTY_LOG_INITIALLY_SET: then enabling the log
// write-protects every page at once, so the first harvest reports exactly the pages written since
// start_dirty_log (nothing lost, nothing extra). INITIALLY_SET would instead report every page
// on the first harvest and protect lazily, which is cheaper for huge guests but makes "what did
// the guest touch" unobservable in the first round; the pipeline sends all memory first anyway.
// Harvest = KVM_GET_DIRTY_LOG then KVM_CLEAR_DIRTY_LOG of exactly the bits read: a write landing
// between the two hits a page already reported, whose content is read after the harvest.
// On a shadow-paging KVM (nested PVM here) a page the guest first maps through a PTE whose
// dirty bit is set is logged once even if only read: an over-report, never a loss.
// (Measured alternative, bench/kvm_bench.cpp: KVM's dirty ring costs the same to harvest at
// 1k-100k pages and needs ring-full exits past its size, so we keep the bitmap.)
//
// Threading: regions/read_pages/write_pages/dirty-log calls come from one thread (the pipeline);
// mark_vmm_dirty may be called from any thread (device emulation on a vCPU thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "backends/dirty_bitmap.hpp"
#include "backends/guest_memory.hpp"
#include "backends/unique_fd.hpp"

namespace colo::kvm {

class Vm;

class GuestRam final : public GuestMemory {
public:
    // Creates `bytes` of RAM (a multiple of 2 MiB) and registers its slots with `vm`, which must
    // outlive this object. Enables KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (required).
    GuestRam(Vm& vm, std::uint64_t bytes);
    GuestRam(const GuestRam&) = delete;
    GuestRam& operator=(const GuestRam&) = delete;
    ~GuestRam() override;

    // --- GuestMemory
    [[nodiscard]] std::vector<MemoryRegion> regions() const override;
    void read_pages(std::span<const Pfn> frames, std::span<std::byte> out) override;
    void write_pages(std::span<const Pfn> frames, std::span<const std::byte> in) override;
    [[nodiscard]] bool map_copy_on_write(int fd) override;
    void drop_private_copies(const DirtyBitmap& frames) override;

    // The VMM's view of [gpa, gpa + bytes), which must lie inside one region. Writing through it
    // bypasses every log: use write() for anything written after the guest was created.
    [[nodiscard]] std::span<std::byte> host(Gpa gpa, std::uint64_t bytes);
    [[nodiscard]] std::span<const std::byte> host(Gpa gpa, std::uint64_t bytes) const;
    // Copies into guest memory and records the pages as written by the VMM.
    void write(Gpa gpa, std::span<const std::byte> data);
    void mark_vmm_dirty(Gpa gpa, std::uint64_t bytes);

    void start_dirty_log();
    void stop_dirty_log();
    [[nodiscard]] bool dirty_logging() const noexcept { return logging_; }
    // ORs KVM's log and the VMM's own writes into `into` (frame_limit() frames) and clears both.
    void harvest_dirty(DirtyBitmap& into);

    [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }
    // The file behind the RAM: its own memfd, or after map_copy_on_write the file it maps (which
    // does not hold the guest's own writes).
    [[nodiscard]] int memfd() const noexcept { return memfd_.get(); }

private:
    struct Slot {
        std::uint32_t id = 0;
        Pfn first;
        std::uint64_t pages = 0;
        std::byte* host = nullptr;
        std::vector<std::uint64_t> bitmap;  // scratch for KVM_GET_DIRTY_LOG
    };
    void set_slot_flags(const Slot& slot, std::uint32_t flags);
    [[nodiscard]] std::byte* frame(Pfn pfn) const;

    Vm& vm_;
    std::uint64_t bytes_ = 0;
    UniqueFd memfd_;
    std::byte* mapping_ = nullptr;
    std::vector<Slot> slots_;
    bool logging_ = false;
    mutable std::mutex vmm_dirty_mutex_;
    DirtyBitmap vmm_dirty_;
};

}  // namespace colo::kvm
