#include "kvm/guest_ram.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "backends/error.hpp"
#include "backends/memory_mapping.hpp"
#include "kvm/layout.hpp"
#include "kvm/vm.hpp"

namespace colo::kvm {

namespace {
constexpr std::uint64_t kRamGranule = std::uint64_t{2} << 20;
}

GuestRam::GuestRam(Vm& vm, std::uint64_t bytes) : vm_(vm), bytes_(bytes) {
    if (bytes == 0 || bytes % kRamGranule != 0) {
        throw Error("guest RAM must be a non-zero multiple of 2 MiB, not " + std::to_string(bytes) + " bytes");
    }
    if (vm.check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) <= 0) {
        throw Error("KVM lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2");
    }
    vm.enable_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);

    memfd_ = create_memfd("colo-guest-ram", bytes);
    void* mapping = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memfd_.get(), 0);
    if (mapping == MAP_FAILED) throw SystemError("mmap(guest RAM)", errno);
    mapping_ = static_cast<std::byte*>(mapping);

    try {
        const std::uint64_t low = std::min(bytes, layout::kLowRamEnd);
        slots_.push_back(Slot{0, Pfn{0}, low / kPageSize, mapping_, {}});
        if (bytes > low) {
            slots_.push_back(Slot{1, layout::kHighRamBegin.pfn(), (bytes - low) / kPageSize, mapping_ + low, {}});
        }
        for (auto& slot : slots_) {
            slot.bitmap.resize((slot.pages + 63) / 64);
            set_slot_flags(slot, 0);
        }
        vmm_dirty_.resize(frame_limit());
    } catch (...) {
        ::munmap(mapping_, bytes_);
        throw;
    }
}

GuestRam::~GuestRam() {
    // The VM (and with it the slots) may still exist: the mapping only goes with this object,
    // which the backend destroys after the VM.
    ::munmap(mapping_, bytes_);
}

void GuestRam::set_slot_flags(const Slot& slot, std::uint32_t flags) {
    kvm_userspace_memory_region region{};
    region.slot = slot.id;
    region.flags = flags;
    region.guest_phys_addr = slot.first.gpa().value;
    region.memory_size = slot.pages * kPageSize;
    region.userspace_addr = reinterpret_cast<std::uint64_t>(slot.host);
    vm_.set_user_memory_region(region);
}

std::vector<MemoryRegion> GuestRam::regions() const {
    std::vector<MemoryRegion> out;
    for (const auto& slot : slots_) out.push_back(MemoryRegion{slot.first, slot.pages});
    return out;
}

std::byte* GuestRam::frame(Pfn pfn) const {
    for (const auto& slot : slots_) {
        if (pfn >= slot.first && pfn.value < slot.first.value + slot.pages) {
            return slot.host + (pfn.value - slot.first.value) * kPageSize;
        }
    }
    throw Error("guest frame " + std::to_string(pfn.value) + " is outside guest RAM");
}

void GuestRam::read_pages(std::span<const Pfn> frames, std::span<std::byte> out) {
    if (out.size() != frames.size() * kPageSize) throw Error("read_pages: buffer size does not match frame count");
    for (std::size_t i = 0; i < frames.size(); ++i) std::memcpy(&out[i * kPageSize], frame(frames[i]), kPageSize);
}

void GuestRam::write_pages(std::span<const Pfn> frames, std::span<const std::byte> in) {
    if (in.size() != frames.size() * kPageSize) throw Error("write_pages: buffer size does not match frame count");
    // Not logged (backends/guest_memory.hpp): these are the pipeline's own writes (a secondary
    // applying a checkpoint, a restore). Logging them would make the secondary report every page
    // it flushed as dirtied by the SVM, and flush it again at the next checkpoint, forever.
    for (std::size_t i = 0; i < frames.size(); ++i) std::memcpy(frame(frames[i]), &in[i * kPageSize], kPageSize);
}

bool GuestRam::map_copy_on_write(int fd) {
    UniqueFd file(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!file.valid()) throw SystemError("fcntl(F_DUPFD_CLOEXEC, copy-on-write file)", errno);
    map_copy_on_write_over(mapping_, bytes_, file.get());
    // Our own memfd is mapped nowhere now: closing it frees whatever it held.
    memfd_ = std::move(file);
    return true;
}

void GuestRam::drop_private_copies(const DirtyBitmap& frames) {
    if (frames.size() != frame_limit()) throw Error("drop_private_copies: bitmap does not cover guest RAM");
    drop_private_runs(mapping_, regions(), frames);
}

std::span<std::byte> GuestRam::host(Gpa gpa, std::uint64_t bytes) {
    const auto view = std::as_const(*this).host(gpa, bytes);
    return {const_cast<std::byte*>(view.data()), view.size()};
}

std::span<const std::byte> GuestRam::host(Gpa gpa, std::uint64_t bytes) const {
    for (const auto& slot : slots_) {
        const std::uint64_t begin = slot.first.gpa().value;
        const std::uint64_t end = begin + slot.pages * kPageSize;
        if (gpa.value >= begin && gpa.value <= end && bytes <= end - gpa.value) {
            return {slot.host + (gpa.value - begin), bytes};
        }
    }
    throw Error("guest range [" + std::to_string(gpa.value) + ", +" + std::to_string(bytes) +
                ") is not inside guest RAM");
}

void GuestRam::write(Gpa gpa, std::span<const std::byte> data) {
    auto target = host(gpa, data.size());
    std::memcpy(target.data(), data.data(), data.size());
    mark_vmm_dirty(gpa, data.size());
}

void GuestRam::mark_vmm_dirty(Gpa gpa, std::uint64_t bytes) {
    if (bytes == 0) return;
    const Pfn first = gpa.pfn();
    const Pfn last = Gpa{gpa.value + bytes - 1}.pfn();
    std::lock_guard lock(vmm_dirty_mutex_);
    vmm_dirty_.set_range(first, last.value - first.value + 1);
}

void GuestRam::start_dirty_log() {
    if (logging_) return;
    {
        // What the VMM wrote before (a Linux guest's kernel and initramfs: tens of thousands of
        // pages) is no news to whoever starts the log: it reads all of memory first.
        std::lock_guard lock(vmm_dirty_mutex_);
        vmm_dirty_.clear_all();
    }
    for (const auto& slot : slots_) set_slot_flags(slot, KVM_MEM_LOG_DIRTY_PAGES);
    logging_ = true;
}

void GuestRam::stop_dirty_log() {
    if (!logging_) return;
    for (const auto& slot : slots_) set_slot_flags(slot, 0);
    logging_ = false;
}

void GuestRam::harvest_dirty(DirtyBitmap& into) {
    if (into.size() != frame_limit()) {
        throw Error("harvest_dirty: bitmap covers " + std::to_string(into.size()) + " frames, guest has " +
                    std::to_string(frame_limit()));
    }
    if (logging_) {
        for (auto& slot : slots_) {
            vm_.get_dirty_log(slot.id, slot.bitmap);
            const bool any = std::any_of(slot.bitmap.begin(), slot.bitmap.end(), [](std::uint64_t w) { return w != 0; });
            if (!any) continue;
            // Clear before handing the bits on: if the clear fails the bits are still in KVM's log.
            vm_.clear_dirty_log(slot.id, 0, static_cast<std::uint32_t>(slot.pages), slot.bitmap);
            into.or_words(slot.first, slot.bitmap, slot.pages);
        }
    }
    std::lock_guard lock(vmm_dirty_mutex_);
    into |= vmm_dirty_;
    vmm_dirty_.clear_all();
}

}  // namespace colo::kvm
