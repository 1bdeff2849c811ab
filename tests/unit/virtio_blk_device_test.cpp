// The raw disk image (backends/disk_image.hpp) and the virtio-blk device (kvm/devices/virtio_blk.hpp)
// over plain memory, driven through its registers and request queue as a driver would: reads and
// writes reaching the image, flush and discard, the requests it refuses (with the guest running
// on), a DiskIo that fails, set_io interposing, every written byte reported, the state round trip
// and a broken queue. The real guest is in the kvm tier.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/disk_image.hpp"
#include "kvm/devices/virtio_blk.hpp"
#include "tests/unit/error_of.hpp"
#include "tests/unit/linux_test_images.hpp"
#include "tests/unit/plain_device_memory.hpp"

using namespace colo::kvm;
using colo::DiskConfig;
using colo::DiskImage;
using colo::test::error_of;
using device_test::PlainMemory;

namespace {

constexpr std::uint32_t kIn = 0, kOut = 1, kFlush = 4, kGetId = 8, kDiscard = 11;
constexpr std::uint8_t kOk = 0, kIoErr = 1, kUnsupp = 2;
constexpr std::uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kHeader = 0x4000, kStatus = 0x4100,
                        kData = 0x8000;
constexpr std::uint16_t kQueueSize = 8;

void make_file(const std::filesystem::path& path, std::uint64_t bytes) {
    std::ofstream(path, std::ios::binary).close();
    std::filesystem::resize_file(path, bytes);
}

std::vector<std::byte> file_bytes(const std::filesystem::path& path, std::uint64_t offset, std::size_t n) {
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    std::vector<std::byte> out(n);
    in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
    return out;
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 7 + seed * 13) & 0xff);
    return out;
}

// A driver that brought the disk up: VERSION_1 (and FLUSH, DISCARD) acked, queue 0 ready.
struct Driver {
    linux_test::TempDir dir;
    std::filesystem::path path = dir.path() / "disk.img";
    PlainMemory m;
    unsigned interrupts = 0;
    std::unique_ptr<VirtioBlk> disk;
    std::uint16_t avail = 0;

    explicit Driver(std::uint64_t bytes = 64 * 1024, bool read_only = false) {
        make_file(path, bytes);
        open(read_only);
        disk->write(0x070, 4, 1 | 2);
        disk->write(0x024, 4, 1);
        disk->write(0x020, 4, 1);  // VERSION_1
        disk->write(0x024, 4, 0);
        disk->write(0x020, 4, (1u << 9) | (1u << 13));  // FLUSH, DISCARD
        disk->write(0x070, 4, 1 | 2 | 8);
        disk->write(0x030, 4, 0);
        disk->write(0x038, 4, kQueueSize);
        disk->write(0x080, 4, kDesc);
        disk->write(0x090, 4, kAvail);
        disk->write(0x0a0, 4, kUsed);
        disk->write(0x044, 4, 1);
        disk->write(0x070, 4, 1 | 2 | 8 | 4);  // DRIVER_OK
    }
    void open(bool read_only) {
        disk = std::make_unique<VirtioBlk>(DiskConfig{path, "xvda", read_only},
                                           std::make_unique<DiskImage>(path, !read_only), m, [this] { ++interrupts; });
    }
    void descriptor(std::uint16_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags, std::uint16_t next = 0) {
        m.put<std::uint64_t>(kDesc + 16 * i, addr);
        m.put<std::uint32_t>(kDesc + 16 * i + 8, len);
        m.put<std::uint16_t>(kDesc + 16 * i + 12, flags);
        m.put<std::uint16_t>(kDesc + 16 * i + 14, next);
    }
    // One request: header, `len` bytes of data at kData (device-writable for IN and GET_ID), and
    // the status byte; returns the status the device wrote (0xff: none).
    std::uint8_t request(std::uint32_t type, std::uint64_t sector, std::uint32_t len) {
        m.put<std::uint32_t>(kHeader, type);
        m.put<std::uint32_t>(kHeader + 4, 0);
        m.put<std::uint64_t>(kHeader + 8, sector);
        m.put<std::uint8_t>(kStatus, 0xff);
        const bool device_writes = type == kIn || type == kGetId;
        if (len > 0) {
            descriptor(0, kHeader, 16, 1, 1);
            descriptor(1, kData, len, static_cast<std::uint16_t>(1 | (device_writes ? 2 : 0)), 2);
        } else {
            descriptor(0, kHeader, 16, 1, 2);
        }
        descriptor(2, kStatus, 1, 2);
        m.put<std::uint16_t>(kAvail + 4 + 2 * (avail % kQueueSize), 0);
        m.put<std::uint16_t>(kAvail + 2, ++avail);
        disk->write(0x050, 4, 0);  // QueueNotify
        return m.get<std::uint8_t>(kStatus);
    }
    [[nodiscard]] std::uint16_t used() const { return m.get<std::uint16_t>(kUsed + 2); }
    void put_data(std::span<const std::byte> data) { std::memcpy(m.ram.data() + kData, data.data(), data.size()); }
    [[nodiscard]] std::vector<std::byte> data(std::size_t n) const {
        return {m.ram.begin() + kData, m.ram.begin() + static_cast<std::ptrdiff_t>(kData + n)};
    }
};

// A DiskIo that records what reaches it and can be told to fail or to block in write.
class RecordingIo final : public colo::DiskIo {
public:
    std::vector<std::pair<std::uint64_t, std::vector<std::byte>>> writes;
    unsigned flushes = 0, reads = 0, discards = 0;
    bool fail = false;
    bool fail_otherwise = false;  // not a colo::Error: the device still answers IOERR
    bool block = false;
    std::mutex mutex;
    std::condition_variable changed;
    bool blocked = false, released = false;

    void read(std::uint64_t, std::span<std::byte> out) override {
        if (fail) throw colo::SystemError("pread test.img", EIO);
        ++reads;
        std::fill(out.begin(), out.end(), std::byte{0x5a});
    }
    void write(std::uint64_t offset, std::span<const std::byte> data) override {
        if (fail) throw colo::SystemError("pwrite test.img", EIO);
        if (block) {
            std::unique_lock lock(mutex);
            blocked = true;
            changed.notify_all();
            changed.wait(lock, [&] { return released; });
        }
        writes.emplace_back(offset, std::vector<std::byte>(data.begin(), data.end()));
    }
    void discard(std::uint64_t, std::uint64_t) override {
        if (fail) throw colo::SystemError("fallocate test.img", EIO);
        ++discards;
    }
    void flush() override {
        if (fail) throw colo::SystemError("fdatasync test.img", EIO);
        if (fail_otherwise) throw std::runtime_error("out of something");
        ++flushes;
    }
};

}  // namespace

TEST_CASE("disk image: missing, misfit, foreign-locked images are refused with one line; incoming ones are made") {
    linux_test::TempDir dir;
    const auto path = dir.path() / "a.img";
    CHECK(error_of([&] { DiskImage image(path, true); }) ==
          "open disk image " + path.string() + ": No such file or directory (errno 2)");
    {
        DiskImage made(path, true, DiskImage::Missing::create);  // an incoming guest's new image
        CHECK(made.size_bytes() == 0);
        struct stat st {};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }
    make_file(path, 1000);
    CHECK(error_of([&] { DiskImage image(path, true); }) ==
          "disk image " + path.string() + " is 1000 bytes, not a multiple of 512");
    make_file(path, 4096);
    {
        DiskImage first(path, true);
        // The lock belongs to the open file description: a second opener in the same process is
        // refused as another process would be.
        CHECK(error_of([&] { DiskImage second(path, true); }) == "disk image " + path.string() + " is in use by another process");
        CHECK(error_of([&] { DiskImage reader(path, false); }) == "disk image " + path.string() + " is in use by another process");
    }
    {
        DiskImage reader1(path, false);
        DiskImage reader2(path, false);  // read-only disks share
        CHECK(error_of([&] { DiskImage writer(path, true); }) == "disk image " + path.string() + " is in use by another process");
        const std::vector<std::byte> data(512, std::byte{1});
        CHECK(error_of([&] { reader1.write(0, data); }) == "write " + path.string() + ": the image is read-only");
    }
    DiskImage image(path, true);  // the locks went with the descriptors
    CHECK(error_of([&] { DiskImage dir_image(dir.path(), false); }) == "disk image " + dir.path().string() + " is not a regular file");
}

TEST_CASE("disk image: positional I/O in whole sectors, discard reads back as zeros, resize") {
    linux_test::TempDir dir;
    const auto path = dir.path() / "b.img";
    make_file(path, 8192);
    DiskImage image(path, true);
    const auto data = pattern(4096, 1);
    image.write(2048, data);
    std::vector<std::byte> back(4096);
    image.read(2048, back);
    CHECK(back == data);
    CHECK(file_bytes(path, 2048, 4096) == data);
    image.discard(2560, 1024);
    image.read(2048, back);
    CHECK(std::all_of(back.begin() + 512, back.begin() + 1536, [](std::byte b) { return b == std::byte{0}; }));
    CHECK(std::equal(back.begin(), back.begin() + 512, data.begin()));
    CHECK(std::equal(back.begin() + 1536, back.end(), data.begin() + 1536));
    image.flush();
    CHECK(error_of([&] { image.read(8192 - 512, back); }) ==
          "read " + path.string() + ": 4096 bytes at 7680 are not whole sectors within its 8192 bytes");
    CHECK(error_of([&] { image.write(100, std::span(data).first(512)); }) ==
          "write " + path.string() + ": 512 bytes at 100 are not whole sectors within its 8192 bytes");
    image.resize(1 << 20);
    CHECK(image.size_bytes() == 1 << 20);
    CHECK(std::filesystem::file_size(path) == 1 << 20);
    CHECK(error_of([&] { image.resize(1000); }) == "disk image " + path.string() + ": size 1000 is not a multiple of 512");
}

TEST_CASE("virtio-blk device: writes reach the image, reads come back, every byte it writes is reported") {
    Driver d;
    CHECK(d.disk->read(0x000, 4) == 0x74726976);
    CHECK(d.disk->read(0x008, 4) == 2);  // block device
    CHECK(d.disk->read(0x100, 8) == 128);  // capacity: 64 KiB in sectors
    CHECK(d.disk->read(0x10c, 4) == 254);  // seg_max
    d.disk->write(0x014, 4, 0);
    CHECK((d.disk->read(0x010, 4) & (1u << 5)) == 0);  // not read-only
    const auto data = pattern(4096, 2);
    d.put_data(data);
    CHECK(d.request(kOut, 8, 4096) == kOk);
    CHECK(file_bytes(d.path, 8 * 512, 4096) == data);
    d.put_data(std::vector<std::byte>(4096));
    d.m.writes.clear();
    CHECK(d.request(kIn, 8, 4096) == kOk);
    CHECK(d.data(4096) == data);
    CHECK(d.used() == 2);
    CHECK(d.m.get<std::uint32_t>(kUsed + 4 + 8 * 1 + 4) == 4096 + 1);  // data and status written
    // Everything the device wrote is reported, so it is in the next checkpoint.
    CHECK(d.m.reported(kData, 4096));
    CHECK(d.m.reported(kStatus, 1));
    CHECK(d.m.reported(kUsed + 2, 2));
    CHECK(d.m.reported(kUsed + 4 + 8, 8));
    CHECK(d.interrupts == 2);
    const auto stats = d.disk->stats();
    CHECK(stats.reads == 1);
    CHECK(stats.read_bytes == 4096);
    CHECK(stats.writes == 1);
    CHECK(stats.write_bytes == 4096);
    CHECK(stats.errors == 0);
    CHECK(d.request(kGetId, 0, 20) == kOk);  // the serial number is the vdev
    CHECK(std::string(reinterpret_cast<const char*>(d.m.ram.data() + kData), 5) == std::string("xvda\0", 5));
}

TEST_CASE("virtio-blk device: flush syncs, discard zeros a range, each is counted") {
    Driver d;
    d.put_data(pattern(4096, 3));
    CHECK(d.request(kOut, 0, 4096) == kOk);
    CHECK(d.request(kFlush, 0, 0) == kOk);
    // One discard range: {u64 sector, u32 sectors, u32 flags}.
    d.m.put<std::uint64_t>(kData, 2);
    d.m.put<std::uint32_t>(kData + 8, 4);
    d.m.put<std::uint32_t>(kData + 12, 0);
    CHECK(d.request(kDiscard, 0, 16) == kOk);
    const auto image = file_bytes(d.path, 0, 4096);
    CHECK(std::all_of(image.begin() + 1024, image.begin() + 3072, [](std::byte b) { return b == std::byte{0}; }));
    CHECK(image[1023] != std::byte{0});
    d.m.put<std::uint32_t>(kData + 12, 1);  // "unmap" belongs to WRITE_ZEROES
    CHECK(d.request(kDiscard, 0, 16) == kUnsupp);
    const auto stats = d.disk->stats();
    CHECK(stats.flushes == 1);
    CHECK(stats.discards == 1);
    CHECK(stats.errors == 1);
}

TEST_CASE("virtio-blk device: bad requests complete with IOERR or UNSUPP and the guest's disk goes on") {
    Driver d;
    CHECK(d.request(kIn, 127, 1024) == kIoErr);                   // past the end
    CHECK(d.request(kIn, std::uint64_t{1} << 60, 512) == kIoErr);  // sector * 512 overflows
    CHECK(d.request(kOut, 0, 100) == kIoErr);                     // not whole sectors
    CHECK(d.request(99, 0, 512) == kUnsupp);                      // unknown type
    d.m.put<std::uint64_t>(kData, 120);
    d.m.put<std::uint32_t>(kData + 8, 16);
    d.m.put<std::uint32_t>(kData + 12, 0);
    CHECK(d.request(kDiscard, 0, 16) == kIoErr);  // a range past the end
    CHECK(d.disk->stats().errors == 5);
    CHECK((d.disk->device_status() & 64) == 0);  // no reset needed: the queue is fine
    CHECK(d.request(kIn, 0, 512) == kOk);
    CHECK(d.used() == 6);
}

TEST_CASE("virtio-blk device: a read-only disk offers RO and refuses writes and discards") {
    Driver d(64 * 1024, true);
    d.disk->write(0x014, 4, 0);
    CHECK((d.disk->read(0x010, 4) & (1u << 5)) != 0);
    d.put_data(pattern(512, 4));
    CHECK(d.request(kOut, 0, 512) == kIoErr);
    d.m.put<std::uint64_t>(kData, 0);
    d.m.put<std::uint32_t>(kData + 8, 1);
    d.m.put<std::uint32_t>(kData + 12, 0);
    CHECK(d.request(kDiscard, 0, 16) == kIoErr);
    CHECK(d.request(kIn, 0, 512) == kOk);
    CHECK(file_bytes(d.path, 0, 512) == std::vector<std::byte>(512));
    CHECK(d.disk->stats().errors == 2);
}

TEST_CASE("virtio-blk device: set_io puts a DiskIo in between; one that throws gives the guest IOERR") {
    Driver d;
    RecordingIo io;
    d.disk->set_io(&io);
    const auto data = pattern(1024, 5);
    d.put_data(data);
    CHECK(d.request(kOut, 4, 1024) == kOk);
    REQUIRE(io.writes.size() == 1);
    CHECK(io.writes[0].first == 4 * 512);
    CHECK(io.writes[0].second == data);
    CHECK(file_bytes(d.path, 4 * 512, 1024) == std::vector<std::byte>(1024));  // the image was not written
    CHECK(d.request(kFlush, 0, 0) == kOk);
    CHECK(io.flushes == 1);
    CHECK(d.request(kIn, 0, 512) == kOk);
    CHECK(d.data(1)[0] == std::byte{0x5a});
    io.fail = true;
    CHECK(d.request(kOut, 4, 1024) == kIoErr);
    CHECK(d.request(kIn, 4, 1024) == kIoErr);
    CHECK(d.request(kFlush, 0, 0) == kIoErr);
    io.fail = false;
    io.fail_otherwise = true;
    CHECK(d.request(kFlush, 0, 0) == kIoErr);
    io.fail_otherwise = false;
    CHECK(d.disk->stats().errors == 4);
    CHECK((d.disk->device_status() & 64) == 0);
    d.disk->set_io(nullptr);  // back to the image
    d.put_data(data);
    CHECK(d.request(kOut, 4, 1024) == kOk);
    CHECK(file_bytes(d.path, 4 * 512, 1024) == data);
    CHECK(&d.disk->image() != static_cast<colo::DiskIo*>(&io));
}

TEST_CASE("virtio-blk device: set_io returns only once no request runs on the old DiskIo") {
    Driver d;
    RecordingIo io;
    io.block = true;
    d.disk->set_io(&io);
    d.put_data(pattern(512, 6));
    std::thread vcpu([&] { (void)d.request(kOut, 0, 512); });
    {
        std::unique_lock lock(io.mutex);
        REQUIRE(io.changed.wait_for(lock, std::chrono::seconds(10), [&] { return io.blocked; }));
    }
    std::atomic<bool> swapped{false};
    std::thread control([&] {
        d.disk->set_io(nullptr);
        swapped = true;
    });
    // A negative can only be shown over a while: set_io must still be waiting after it.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK_FALSE(swapped.load());
    {
        std::lock_guard lock(io.mutex);
        io.released = true;
    }
    io.changed.notify_all();
    vcpu.join();
    control.join();
    CHECK(swapped.load());
    CHECK(io.writes.size() == 1);
}

TEST_CASE("virtio-blk device: state round trip continues the queue; bad records are refused whole") {
    Driver d;
    d.put_data(pattern(512, 7));
    CHECK(d.request(kOut, 1, 512) == kOk);
    CHECK(d.request(kOut, 2, 512) == kOk);
    const auto state = d.disk->save_state();
    d.disk.reset();  // releases the image's lock, as a saved guest's process would
    d.open(false);
    CHECK((d.disk->device_status() & 4) == 0);  // a new device, not yet driven
    d.disk->restore_state(state);
    CHECK((d.disk->device_status() & 4) != 0);
    CHECK(d.request(kIn, 1, 512) == kOk);
    CHECK(d.used() == 3);  // the queue position came with the state
    CHECK(d.disk->save_state() != state);
    auto cut = state;
    cut.pop_back();
    CHECK(error_of([&] { d.disk->restore_state(cut); }) == "virtio-blk state: cut short");
    auto longer = state;
    longer.push_back(std::byte{0});
    CHECK(error_of([&] { d.disk->restore_state(longer); }) == "virtio-blk state: trailing bytes");
    CHECK(d.request(kIn, 1, 512) == kOk);  // the refused records changed nothing
    CHECK(d.used() == 4);
}

TEST_CASE("virtio-blk device: a broken queue sets DEVICE_NEEDS_RESET until the driver resets") {
    Driver d;
    d.descriptor(0, 0xfffff000, 16, 1, 2);  // the header is outside RAM
    d.descriptor(2, kStatus, 1, 2);
    d.m.put<std::uint16_t>(kAvail + 4, 0);
    d.m.put<std::uint16_t>(kAvail + 2, 1);
    d.m.writes.clear();
    d.disk->write(0x050, 4, 0);
    CHECK((d.disk->device_status() & 64) != 0);
    CHECK(d.interrupts == 1);
    CHECK(d.m.writes.empty());  // nothing written into the broken queue
    d.disk->write(0x070, 4, 1 | 2 | 8 | 4);
    CHECK((d.disk->device_status() & 64) != 0);  // only a reset clears it
    d.disk->write(0x070, 4, 0);
    CHECK(d.disk->device_status() == 0);
}

TEST_CASE("virtio-blk device: the capacity it reports follows the image's size") {
    Driver d;
    CHECK(d.disk->size_bytes() == 64 * 1024);
    d.disk->resize(1 << 20);
    CHECK(d.disk->read(0x100, 4) == 2048);
    CHECK(d.disk->read(0x104, 4) == 0);
    CHECK(d.disk->config().vdev == "xvda");
}
