// A disk with no device model behind it, for unit tests of the disk checkpoint device
// (FakeBackend owns them). Its image is bytes in memory; "the guest" is the test: guest_write,
// guest_read, guest_discard and guest_flush go through the installed DiskIo (or straight to the
// image), as a device's requests would. image_bytes() is the image as the host would see it.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "backends/guest_disk.hpp"

namespace colo {

class FakeDisk final : public GuestDisk {
public:
    FakeDisk(DiskConfig config, std::uint64_t size_bytes);

    [[nodiscard]] const DiskConfig& config() const override { return config_; }
    [[nodiscard]] std::uint64_t size_bytes() const override;
    [[nodiscard]] DiskIo& image() override { return image_; }
    void resize(std::uint64_t bytes) override;
    void set_io(DiskIo* io) override;
    [[nodiscard]] DiskStats stats() const override;

    // --- the test, as the guest
    void guest_write(std::uint64_t offset, std::span<const std::byte> data);
    [[nodiscard]] std::vector<std::byte> guest_read(std::uint64_t offset, std::uint64_t length);
    void guest_discard(std::uint64_t offset, std::uint64_t length);
    void guest_flush();
    // --- the test, as the host
    [[nodiscard]] std::vector<std::byte> image_bytes() const;
    [[nodiscard]] unsigned image_flushes() const;
    // Writes to the image fail from now on (an I/O error of the host's disk).
    void fail_image_writes(bool fail);
    // Called at every set_io, before it changes anything (a test looks at the guest then).
    void on_set_io(std::function<void()> hook) { on_set_io_ = std::move(hook); }
    // Called at every flush of the image, after it is counted (a test makes the host's disk slow).
    void on_image_flush(std::function<void()> hook) { on_image_flush_ = std::move(hook); }

private:
    class Image final : public DiskIo {
    public:
        explicit Image(FakeDisk& disk) : disk_(disk) {}
        void read(std::uint64_t offset, std::span<std::byte> out) override;
        void write(std::uint64_t offset, std::span<const std::byte> data) override;
        void discard(std::uint64_t offset, std::uint64_t length) override;
        void flush() override;

    private:
        FakeDisk& disk_;
    };
    void check_range(std::uint64_t offset, std::uint64_t length) const;  // holds mutex_
    DiskIo& io_for_request();

    const DiskConfig config_;
    Image image_{*this};
    mutable std::mutex mutex_;
    std::vector<std::byte> bytes_;
    unsigned flushes_ = 0;
    bool fail_writes_ = false;
    std::mutex request_mutex_;  // held while a request runs: set_io waits for it
    DiskIo* io_ = nullptr;
    DiskStats stats_;
    std::function<void()> on_set_io_;
    std::function<void()> on_image_flush_;
};

}  // namespace colo
