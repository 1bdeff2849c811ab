#include "toolstack/replication/ram_cache.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <variant>

#include "backends/error.hpp"
#include "toolstack/replication/page_batches.hpp"

namespace colo {

namespace {

bool all_zero(const std::byte* page) {
    std::uint64_t word = 0;
    for (std::size_t at = 0; at < kPageSize; at += sizeof word) {
        std::memcpy(&word, page + at, sizeof word);
        if (word != 0) return false;
    }
    return true;
}

std::uint64_t frame_limit_of(const std::vector<MemoryRegion>& regions) {
    std::uint64_t limit = 0;
    for (const auto& region : regions) limit = std::max(limit, region.end().value);
    return limit;
}

}  // namespace

RamCache::RamCache(std::vector<MemoryRegion> regions)
    : regions_(std::move(regions)), written_(frame_limit_of(regions_)) {
    for (const auto& region : regions_) {
        region_offset_.push_back(bytes_);
        bytes_ += region.pages * kPageSize;
    }
    file_ = create_memfd("colo-ram-cache", bytes_);
    map_ = map_shared(file_.get(), bytes_);
}

std::size_t RamCache::offset_of(Pfn pfn) const {
    for (std::size_t i = 0; i < regions_.size(); ++i) {
        if (regions_[i].contains(pfn)) {
            return region_offset_[i] + (pfn.value - regions_[i].first.value) * kPageSize;
        }
    }
    throw Error("ram cache: frame " + std::to_string(pfn.value) + " is outside guest memory");
}

bool RamCache::share_with(GuestMemory& svm) {
    if (svm.regions() != regions_) throw Error("ram cache: the SVM's memory layout differs from the cache's");
    if (!svm.map_copy_on_write(file_.get())) return false;
    shared_ = true;
    slot_.assign(written_.size(), kNoSlot);
    return true;
}

void RamCache::write_file_page(Pfn pfn, const std::byte* data) {
    std::byte* target = map_.data() + offset_of(pfn);
    if (!written_.test(pfn)) {
        // A page never written reads as zero: a zero page (most of a fresh guest) costs nothing.
        if (all_zero(data)) return;
        written_.set(pfn);
    }
    std::memcpy(target, data, kPageSize);
}

void RamCache::load(std::span<const Pfn> frames, std::span<const std::byte> data) {
    if (data.size() != frames.size() * kPageSize) throw Error("ram cache: store buffer size");
    for (std::size_t i = 0; i < frames.size(); ++i) write_file_page(frames[i], data.data() + i * kPageSize);
}

std::byte* RamCache::slot_page(std::uint32_t slot) const {
    return chunks_[slot / kChunkPages].get() + (slot % kChunkPages) * kPageSize;
}

void RamCache::receive(std::span<const Pfn> frames, std::span<const std::byte> data) {
    if (!shared_) {
        // The SVM never reads this file: the page can go in now, and commit() copies it over.
        load(frames, data);
        return;
    }
    if (data.size() != frames.size() * kPageSize) throw Error("ram cache: store buffer size");
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const Pfn pfn = frames[i];
        (void)offset_of(pfn);  // a frame outside guest memory is refused here, not at commit
        std::uint32_t& slot = slot_[pfn.value];
        if (slot == kNoSlot) {
            slot = static_cast<std::uint32_t>(staged_frames_.size());
            staged_frames_.push_back(pfn);
            if (slot / kChunkPages == chunks_.size()) {
                chunks_.push_back(std::make_unique_for_overwrite<std::byte[]>(kChunkPages * kPageSize));
            }
        }
        std::memcpy(slot_page(slot), data.data() + i * kPageSize, kPageSize);
    }
}

std::span<const std::byte> RamCache::page(Pfn pfn) const {
    const std::size_t offset = offset_of(pfn);
    if (shared_ && slot_[pfn.value] != kNoSlot) return {slot_page(slot_[pfn.value]), kPageSize};
    return {map_.data() + offset, kPageSize};
}

std::span<const std::byte> RamCache::committed_page(Pfn pfn) const {
    return {map_.data() + offset_of(pfn), kPageSize};
}

std::uint64_t RamCache::commit(GuestMemory& svm, const DirtyBitmap& received, const DirtyBitmap& svm_dirty,
                               std::uint64_t batch_pages) {
    DirtyBitmap changed = received;
    changed |= svm_dirty;
    if (!shared_) return flush_to(svm, changed, batch_pages);
    // The SVM is paused: the staged pages enter the file now, where it reads every page it has
    // no private copy of. The private copies of every changed frame are dropped, not only of
    // those the SVM's dirty log reports: KVM makes private copies the log never shows (seen with
    // a Linux SVM on kvm_amd, Linux 6.1: its kvmclock page, written while restore_state ran
    // before the log started, and pages whose copy equals the file's, as KVM's async page fault
    // worker makes: it faults a page in for writing even when the guest only read it). A private
    // copy of a received frame hides the PVM's page from the SVM for good (the copy of its own,
    // flush_to, overwrites it instead); that lost a Linux guest's TCP connection at a takeover.
    for (std::uint32_t slot = 0; slot < staged_frames_.size(); ++slot) {
        write_file_page(staged_frames_[slot], slot_page(slot));
    }
    discard_received();
    svm.drop_private_copies(changed);
    return changed.count();
}

void RamCache::discard_received() {
    for (const Pfn pfn : staged_frames_) slot_[pfn.value] = kNoSlot;
    staged_frames_.clear();
    // The chunks stay: the next checkpoint stages into memory that is already there.
}

std::uint64_t RamCache::fill_from(GuestMemory& memory, std::uint64_t batch_pages) {
    return for_each_page_batch(memory, all_frames(memory), batch_pages, [&](const protocol::Message& message) {
        const auto& batch = std::get<protocol::PageBatch>(message);
        load(batch.frames, batch.data);
    });
}

std::uint64_t RamCache::flush_to(GuestMemory& memory, const DirtyBitmap& frames, std::uint64_t batch_pages) const {
    std::uint64_t written = 0;
    std::vector<Pfn> batch;
    std::vector<std::byte> buffer;
    auto flush = [&] {
        if (batch.empty()) return;
        buffer.resize(batch.size() * kPageSize);
        for (std::size_t i = 0; i < batch.size(); ++i) {
            std::memcpy(buffer.data() + i * kPageSize, committed_page(batch[i]).data(), kPageSize);
        }
        memory.write_pages(batch, buffer);
        written += batch.size();
        batch.clear();
    };
    frames.for_each_run([&](Pfn first, std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
            batch.push_back(first + i);
            if (batch.size() == batch_pages) flush();
        }
    });
    flush();
    return written;
}

RamCache::Usage RamCache::usage() const {
    return Usage{allocated_bytes(file_.get()), chunks_.size() * kChunkPages * kPageSize};
}

}  // namespace colo
