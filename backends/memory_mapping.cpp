#include "backends/memory_mapping.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "backends/dirty_bitmap.hpp"
#include "backends/error.hpp"

namespace colo {

Mapping& Mapping::operator=(Mapping&& other) noexcept {
    if (this != &other) {
        if (data_ != nullptr) ::munmap(data_, bytes_);
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
}

Mapping::~Mapping() {
    // munmap of a mapping we made cannot fail in a way we could act on.
    if (data_ != nullptr) ::munmap(data_, bytes_);
}

Mapping map_anonymous(std::size_t bytes) {
    if (bytes == 0) return {};
    void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (at == MAP_FAILED) throw SystemError("mmap(anonymous, " + std::to_string(bytes) + " bytes)", errno);
    return Mapping(at, bytes);
}

Mapping map_shared(int fd, std::size_t bytes) {
    if (bytes == 0) return {};
    void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (at == MAP_FAILED) throw SystemError("mmap(shared, " + std::to_string(bytes) + " bytes)", errno);
    return Mapping(at, bytes);
}

UniqueFd create_memfd(const char* name, std::uint64_t bytes) {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
    if (!fd.valid()) throw SystemError(std::string("memfd_create(") + name + ")", errno);
    if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) < 0) throw SystemError(std::string("ftruncate(") + name + ")", errno);
    return fd;
}

std::uint64_t allocated_bytes(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) < 0) throw SystemError("fstat", errno);
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

void map_copy_on_write_over(std::byte* at, std::size_t bytes, int fd) {
    struct stat st {};
    if (::fstat(fd, &st) < 0) throw SystemError("fstat(copy-on-write file)", errno);
    if (static_cast<std::uint64_t>(st.st_size) < bytes) {
        throw Error("copy-on-write file of " + std::to_string(st.st_size) + " bytes is shorter than the " +
                    std::to_string(bytes) + " bytes of guest memory");
    }
    void* mapped = ::mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0);
    if (mapped == MAP_FAILED) throw SystemError("mmap(MAP_PRIVATE | MAP_FIXED, guest memory)", errno);
}

void drop_private_runs(std::byte* base, const std::vector<MemoryRegion>& regions, const DirtyBitmap& frames) {
    std::uint64_t region_offset = 0;
    for (const auto& region : regions) {
        // Runs of `frames` clipped to this region: frames between regions are never guest memory.
        frames.for_each_run([&](Pfn first, std::uint64_t count) {
            const std::uint64_t begin = std::max(first.value, region.first.value);
            const std::uint64_t end = std::min(first.value + count, region.end().value);
            if (begin >= end) return;
            std::byte* at = base + region_offset + (begin - region.first.value) * kPageSize;
            if (::madvise(at, (end - begin) * kPageSize, MADV_DONTNEED) < 0) {
                throw SystemError("madvise(MADV_DONTNEED, frame " + std::to_string(begin) + ")", errno);
            }
        });
        region_offset += region.pages * kPageSize;
    }
}

}  // namespace colo
