// A COLO SVM's disk between checkpoints: its writes go here, over the secondary's copy of the
// image, which holds the last committed checkpoint and nothing else. Reads see the overlay's
// sectors where it has them and the image's elsewhere. A checkpoint replaces the SVM's state with
// the PVM's, so it drops the overlay (clear); a takeover keeps the SVM's state, so it writes the
// overlay into the image (write_back). QEMU's COLO keeps the same in its active and hidden disks.
//
// Flushes are not passed on: until a takeover the SVM's writes are thrown away anyway.
//
// Threading: the DiskIo side runs on the SVM's vCPU thread, clear and write_back on the
// pipeline thread while the SVM is paused; one mutex covers both.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <map>
#include <mutex>

#include "backends/guest_disk.hpp"

namespace colo::disk {

class DiskOverlay final : public DiskIo {
public:
    static constexpr std::uint64_t kChunkBytes = 4096;
    static constexpr std::uint64_t kSectorsPerChunk = kChunkBytes / kSectorBytes;

    explicit DiskOverlay(DiskIo& image) : image_(image) {}

    void read(std::uint64_t offset, std::span<std::byte> out) override;
    void write(std::uint64_t offset, std::span<const std::byte> data) override;
    void discard(std::uint64_t offset, std::uint64_t length) override;
    void flush() override {}

    void clear();
    // Writes every overlaid sector into the image (in ascending order) and clears.
    void write_back();
    [[nodiscard]] std::uint64_t bytes() const;  // sectors held, in bytes

private:
    struct Chunk {
        std::bitset<kSectorsPerChunk> present;
        std::array<std::byte, kChunkBytes> data{};
    };
    // Calls fn(chunk index, first sector in chunk, sectors, byte offset within the span) for
    // each piece of [offset, offset + length).
    template <typename Fn>
    static void for_each_piece(std::uint64_t offset, std::uint64_t length, Fn fn);
    void put_locked(std::uint64_t offset, std::uint64_t length, const std::byte* data);  // nullptr: zeros

    DiskIo& image_;
    mutable std::mutex mutex_;
    std::map<std::uint64_t, Chunk> chunks_;
    std::uint64_t sectors_ = 0;
};

}  // namespace colo::disk
