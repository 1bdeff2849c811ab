// The secondary's RAM cache: the PVM's memory as of the last committed checkpoint, plus the pages
// received since. Streamed and checkpoint pages land here, never directly in the SVM; at a
// verified checkpoint the pages that changed reach the SVM (commit). The cache is a memfd laid
// out region after region (holes in the guest-physical map cost nothing, nor does a page never
// written or only ever zero).
//
// Shared (share_with: the SVM's memory is a copy-on-write view of the cache file, KVM): the SVM
// costs no second copy of the guest, only the pages it wrote since the last checkpoint. Since the
// SVM reads every page it did not write straight from the file, a page received while protecting
// must not enter the file before its checkpoint commits, or the running SVM would read a page of
// the PVM's future (a streamed page) or of a checkpoint that may never arrive whole. Such pages
// are staged in memory of their own; commit() writes them into the file with the SVM paused and
// drops the SVM's private copies of the pages it dirtied and of the pages received, which then
// read the file again (received ones too: a private copy the SVM's dirty log never reported, as
// KVM makes, would otherwise hide the PVM's page from it for good).
// Not shared (the SVM's memory is a domain's, Xen, or the backend cannot): the cache file is a
// copy of its own that the SVM never reads, received pages go into it at once, and commit()
// copies them and the pages the SVM dirtied from it into the SVM, as before.
//
// Threading: one thread (the secondary's pipeline).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backends/dirty_bitmap.hpp"
#include "backends/guest_memory.hpp"
#include "backends/memory_mapping.hpp"

namespace colo {

class RamCache {
public:
    explicit RamCache(std::vector<MemoryRegion> regions);

    // Makes `svm` (paused, never run since its memory was last written, with the regions of this
    // cache) a copy-on-write view of the cache file: what it held is replaced by the cache's
    // contents. False when its memory cannot be (GuestMemory::map_copy_on_write): the cache stays
    // a copy of its own.
    bool share_with(GuestMemory& svm);
    [[nodiscard]] bool shared() const { return shared_; }

    // Pages the SVM is to have at once (the initial migration; the SVM paused): into the cache
    // file, which a sharing SVM reads. Same layout as GuestMemory::read_pages/write_pages. Throws
    // colo::Error for a frame outside.
    void load(std::span<const Pfn> frames, std::span<const std::byte> data);
    // Pages received while protecting (streamed, or of a checkpoint in flight): the SVM sees none
    // of them before commit(). A frame received twice keeps the later copy.
    void receive(std::span<const Pfn> frames, std::span<const std::byte> data);
    // The cache's latest copy of a frame: received (uncommitted) if there is one, else committed.
    [[nodiscard]] std::span<const std::byte> page(Pfn pfn) const;
    // The committed copy: what a sharing SVM reads where it wrote nothing.
    [[nodiscard]] std::span<const std::byte> committed_page(Pfn pfn) const;

    // At a verified checkpoint, with the SVM paused: the SVM's memory becomes the cache's for
    // `received` (every frame receive() took since the last commit) and `svm_dirty` (what the SVM
    // wrote). Returns the pages made equal (|received ∪ svm_dirty|).
    std::uint64_t commit(GuestMemory& svm, const DirtyBitmap& received, const DirtyBitmap& svm_dirty,
                         std::uint64_t batch_pages);
    // Forgets what receive() took since the last commit (shared: the staged pages; otherwise they
    // are in the file already and stay: the SVM never reads it).
    void discard_received();

    // Copies all of `memory` into the cache (entering COLO without cache backup). Returns pages.
    std::uint64_t fill_from(GuestMemory& memory, std::uint64_t batch_pages);

    struct Usage {
        std::uint64_t file_bytes = 0;    // the cache file's pages (st_blocks)
        std::uint64_t staged_bytes = 0;  // memory holding received, uncommitted pages
    };
    [[nodiscard]] Usage usage() const;

    [[nodiscard]] const std::vector<MemoryRegion>& regions() const { return regions_; }

private:
    static constexpr std::uint32_t kNoSlot = UINT32_MAX;
    static constexpr std::size_t kChunkPages = 256;  // staging grows 1 MiB at a time, never moves

    [[nodiscard]] std::size_t offset_of(Pfn pfn) const;
    void write_file_page(Pfn pfn, const std::byte* data);
    [[nodiscard]] std::byte* slot_page(std::uint32_t slot) const;
    std::uint64_t flush_to(GuestMemory& memory, const DirtyBitmap& frames, std::uint64_t batch_pages) const;

    std::vector<MemoryRegion> regions_;
    std::vector<std::size_t> region_offset_;  // byte offset of each region in the file
    std::size_t bytes_ = 0;
    UniqueFd file_;
    Mapping map_;           // the file, shared: the only way anything writes it
    DirtyBitmap written_;   // frames the file holds a page for (never written and zero: skipped)
    bool shared_ = false;
    // Staging (shared only): slot_[frame] indexes staged_frames_ and the pages in chunks_.
    std::vector<std::uint32_t> slot_;
    std::vector<Pfn> staged_frames_;
    std::vector<std::unique_ptr<std::byte[]>> chunks_;
};

}  // namespace colo
