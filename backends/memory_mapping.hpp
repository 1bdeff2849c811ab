// Memory of this process that the kernel hands out by mmap, and what copy-on-write guest memory
// (GuestMemory::map_copy_on_write) is made of: a memfd, a mapping of it, a private mapping laid
// over guest memory at the same address, and dropping private copies page run by page run.
// Used by the KVM backend's guest RAM, the fake backend's and the secondary's RAM cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "backends/guest_memory.hpp"
#include "backends/unique_fd.hpp"

namespace colo {

class DirtyBitmap;

// One mmap of this process (STYLE §1): unmapped exactly once, by the destructor.
class Mapping {
public:
    Mapping() = default;
    Mapping(void* address, std::size_t bytes) noexcept : data_(static_cast<std::byte*>(address)), bytes_(bytes) {}
    Mapping(Mapping&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
    Mapping& operator=(Mapping&& other) noexcept;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping();

    [[nodiscard]] std::byte* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return bytes_; }

private:
    std::byte* data_ = nullptr;
    std::size_t bytes_ = 0;
};

// Private zero-filled memory, reserved lazily (MAP_NORESERVE: a page costs only once touched).
[[nodiscard]] Mapping map_anonymous(std::size_t bytes);
// A shared read-write mapping of the first `bytes` of `fd`.
[[nodiscard]] Mapping map_shared(int fd, std::size_t bytes);
// A memfd of `bytes` (holes: a page costs only once written), close-on-exec.
[[nodiscard]] UniqueFd create_memfd(const char* name, std::uint64_t bytes);
// The bytes the file really holds (fstat's st_blocks), whatever is mapped.
[[nodiscard]] std::uint64_t allocated_bytes(int fd);

// Replaces the `bytes` at `at` (a mapping of this process) with a private, copy-on-write mapping of
// `fd` from offset 0, at the same address (MAP_FIXED: whoever holds the address, KVM's memory
// slots too, goes on using it). The file must be at least `bytes` long.
void map_copy_on_write_over(std::byte* at, std::size_t bytes, int fd);
// madvise(MADV_DONTNEED) on every run of `frames` in memory laid out as `regions` packed from
// `base` (region i starts where region i-1 ends): a private copy is dropped and the page reads the
// file again.
void drop_private_runs(std::byte* base, const std::vector<MemoryRegion>& regions, const DirtyBitmap& frames);

}  // namespace colo
