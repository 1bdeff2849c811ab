#include "kvm/devices/virtio_blk.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <string>

#include "backends/error.hpp"

namespace colo::kvm {

namespace {

using namespace virtio_mmio;
constexpr std::uint32_t kBlockDevice = 2;
constexpr std::uint64_t kFeatureSegMax = 1ull << 2;
constexpr std::uint64_t kFeatureRo = 1ull << 5;
constexpr std::uint64_t kFeatureFlush = 1ull << 9;
constexpr std::uint64_t kFeatureDiscard = 1ull << 13;
constexpr std::uint64_t kOffered = kFeatureVersion1 | kFeatureSegMax | kFeatureFlush | kFeatureDiscard;

// virtio_blk_req types and status values (virtio spec 5.2.6).
constexpr std::uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8, kTypeDiscard = 11;
constexpr std::uint8_t kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupp = 2;
constexpr std::size_t kHeaderBytes = 16;       // {u32 type, u32 reserved, u64 sector}
constexpr std::size_t kDiscardRangeBytes = 16;  // {u64 sector, u32 num_sectors, u32 flags}
constexpr std::size_t kIdBytes = 20;            // VIRTIO_BLK_ID_BYTES
// Data moves through a bounce buffer of at most this much at a time.
constexpr std::uint64_t kChunkBytes = 1 << 20;

// struct virtio_blk_config (virtio spec 5.2.4), the fields up to the discard ones.
constexpr std::size_t kConfigCapacity = 0x00, kConfigSegMax = 0x0c, kConfigMaxDiscardSectors = 0x24,
                      kConfigMaxDiscardSeg = 0x28, kConfigDiscardAlignment = 0x2c, kConfigBytes = 0x3c;
constexpr std::uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per discard request

std::uint64_t offered(const DiskConfig& config) { return kOffered | (config.read_only ? kFeatureRo : 0); }

// The device-readable or the device-writable bytes of a chain, in order, as one run of bytes.
class Bytes {
public:
    Bytes(DeviceMemory& memory, const Chain& chain, bool writable) : memory_(memory) {
        for (const Segment& s : chain.segments) {
            if (s.device_writable == writable && s.length > 0) {
                segments_.push_back(s);
                size_ += s.length;
            }
        }
    }
    [[nodiscard]] std::uint64_t size() const { return size_; }
    // Copies bytes [at, at + out.size()) out of guest memory.
    void gather(std::uint64_t at, std::span<std::byte> out) const {
        walk(at, out.size(), [&](std::span<std::byte> guest, std::uint64_t, std::size_t done) {
            std::memcpy(out.data() + done, guest.data(), guest.size());
        });
    }
    // Copies `in` into bytes [at, at + in.size()) and reports them written.
    void scatter(std::uint64_t at, std::span<const std::byte> in) const {
        walk(at, in.size(), [&](std::span<std::byte> guest, std::uint64_t gpa, std::size_t done) {
            std::memcpy(guest.data(), in.data() + done, guest.size());
            memory_.written(gpa, guest.size());
        });
    }

private:
    template <typename F>
    void walk(std::uint64_t at, std::size_t length, F&& f) const {
        std::size_t done = 0;
        for (const Segment& s : segments_) {
            if (done == length) return;
            if (at >= s.length) {
                at -= s.length;
                continue;
            }
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(s.length - at, length - done));
            f(memory_.map(s.gpa + at, n), s.gpa + at, done);
            done += n;
            at = 0;
        }
    }

    DeviceMemory& memory_;
    std::vector<Segment> segments_;
    std::uint64_t size_ = 0;
};

// A request the device answers with a status other than OK.
struct Refused {
    std::uint8_t status;
};

}  // namespace

VirtioBlk::VirtioBlk(DiskConfig config, std::unique_ptr<DiskImage> image, DeviceMemory& memory,
                     std::function<void()> interrupt)
    : config_(std::move(config)),
      image_(std::move(image)),
      memory_(memory),
      interrupt_(std::move(interrupt)),
      regs_(kBlockDevice, offered(config_), 1) {}

std::uint64_t VirtioBlk::read(std::uint64_t offset, unsigned width) {
    std::lock_guard lock(mutex_);
    if (offset >= kConfig) {
        std::array<std::byte, kConfigBytes> space{};
        const auto put32 = [&](std::size_t at, std::uint32_t v) { std::memcpy(space.data() + at, &v, sizeof v); };
        const std::uint64_t capacity = image_->size_bytes() / kSectorBytes;
        std::memcpy(space.data() + kConfigCapacity, &capacity, sizeof capacity);
        put32(kConfigSegMax, kMaxQueueSize - 2);  // all descriptors but the header's and the status's
        put32(kConfigMaxDiscardSectors, kMaxDiscardSectors);
        put32(kConfigMaxDiscardSeg, 1);
        put32(kConfigDiscardAlignment, 1);
        std::uint64_t value = 0;
        for (unsigned i = 0; i < width && i < 8; ++i) {
            const std::uint64_t at = offset - kConfig + i;
            if (at < space.size()) value |= std::uint64_t{std::to_integer<std::uint8_t>(space[at])} << (8 * i);
        }
        return value;
    }
    return width == 4 ? regs_.read(offset) : 0;
}

void VirtioBlk::write(std::uint64_t offset, unsigned width, std::uint64_t value) {
    if (width != 4) return;
    std::lock_guard lock(mutex_);
    switch (regs_.write(memory_, offset, static_cast<std::uint32_t>(value))) {
        case Registers::Effect::notify: if (value == 0) serve_locked(); break;
        case Registers::Effect::broken: if (interrupt_) interrupt_(); break;
        case Registers::Effect::reset:
        case Registers::Effect::status:
        case Registers::Effect::none: break;
    }
}

void VirtioBlk::serve_locked() {
    QueueState& q = regs_.queue(0);
    if (!regs_.running() || !q.ready) return;
    bool used = false;
    try {
        while (auto chain = pop_chain(memory_, q)) {
            const std::uint32_t written = serve_chain_locked(*chain);
            push_used(memory_, q, chain->head, written);
            used = true;
        }
    } catch (const VirtqueueError&) {
        // The guest broke its own queue: stop using it until it resets the device.
        regs_.set_needs_reset();
        if (interrupt_) interrupt_();
        return;
    }
    if (used && wants_interrupt(memory_, q)) {
        regs_.raise(kInterruptUsed);
        if (interrupt_) interrupt_();
    }
}

void VirtioBlk::count_error() {
    std::lock_guard lock(stats_mutex_);
    ++stats_.errors;
}

std::uint32_t VirtioBlk::serve_chain_locked(const Chain& chain) {
    const Bytes in(memory_, chain, false);
    const Bytes out(memory_, chain, true);
    if (in.size() < kHeaderBytes || out.size() < 1) {
        count_error();  // no header or no status byte: nothing to answer with
        return 0;
    }
    std::array<std::byte, kHeaderBytes> header_bytes{};
    in.gather(0, header_bytes);
    std::uint32_t type = 0;
    std::uint64_t sector = 0;
    std::memcpy(&type, header_bytes.data(), sizeof type);
    std::memcpy(&sector, header_bytes.data() + 8, sizeof sector);
    const std::uint64_t data_in = in.size() - kHeaderBytes;  // bytes after the header (OUT data, discard ranges)
    const std::uint64_t data_out = out.size() - 1;           // bytes before the status (IN data, the ID)
    DiskIo& io = io_ != nullptr ? *io_ : *image_;

    // Whole sectors within the disk, or IOERR.
    const auto check_range = [&](std::uint64_t first_sector, std::uint64_t bytes) {
        const std::uint64_t size = image_->size_bytes();
        if (bytes % kSectorBytes != 0 || first_sector > size / kSectorBytes ||
            bytes > size - first_sector * kSectorBytes) {
            throw Refused{kStatusIoErr};
        }
        return first_sector * kSectorBytes;
    };
    std::uint8_t status = kStatusOk;
    std::uint32_t written = 0;  // bytes of data the device wrote into the guest's buffers
    try {
        switch (type) {
            case kTypeIn: {
                std::uint64_t offset = check_range(sector, data_out);
                std::vector<std::byte> buffer(std::min(data_out, kChunkBytes));
                for (std::uint64_t done = 0; done < data_out;) {
                    const std::span chunk(buffer.data(), static_cast<std::size_t>(std::min(data_out - done, kChunkBytes)));
                    io.read(offset, chunk);
                    out.scatter(done, chunk);
                    done += chunk.size();
                    offset += chunk.size();
                }
                written = static_cast<std::uint32_t>(data_out);
                std::lock_guard lock(stats_mutex_);
                ++stats_.reads;
                stats_.read_bytes += data_out;
                break;
            }
            case kTypeOut: {
                if (config_.read_only) throw Refused{kStatusIoErr};
                std::uint64_t offset = check_range(sector, data_in);
                std::vector<std::byte> buffer(std::min(data_in, kChunkBytes));
                for (std::uint64_t done = 0; done < data_in;) {
                    const std::span chunk(buffer.data(), static_cast<std::size_t>(std::min(data_in - done, kChunkBytes)));
                    in.gather(kHeaderBytes + done, chunk);
                    io.write(offset, chunk);
                    done += chunk.size();
                    offset += chunk.size();
                }
                std::lock_guard lock(stats_mutex_);
                ++stats_.writes;
                stats_.write_bytes += data_in;
                break;
            }
            case kTypeFlush: {
                const auto start = std::chrono::steady_clock::now();
                io.flush();
                const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
                std::lock_guard lock(stats_mutex_);
                ++stats_.flushes;
                stats_.flush_ns += static_cast<std::uint64_t>(ns.count());
                const auto us = static_cast<std::uint32_t>(std::min<std::int64_t>(ns.count() / 1000, UINT32_MAX));
                if (recent_flush_us_.size() < kRecentFlushes) {
                    recent_flush_us_.push_back(us);
                } else {
                    recent_flush_us_[recent_next_] = us;
                    recent_next_ = (recent_next_ + 1) % kRecentFlushes;
                }
                break;
            }
            case kTypeGetId: {
                // The serial number: the vdev name, NUL-padded (no NUL when all 20 bytes are used).
                std::array<std::byte, kIdBytes> id{};
                std::memcpy(id.data(), config_.vdev.data(), std::min(config_.vdev.size(), kIdBytes));
                const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(data_out, kIdBytes));
                out.scatter(0, std::span(id.data(), n));
                written = static_cast<std::uint32_t>(n);
                break;
            }
            case kTypeDiscard: {
                if (config_.read_only) throw Refused{kStatusIoErr};
                // One range (max_discard_seg = 1): {u64 sector, u32 num_sectors, u32 flags}.
                if (data_in != kDiscardRangeBytes) throw Refused{kStatusIoErr};
                std::array<std::byte, kDiscardRangeBytes> range{};
                in.gather(kHeaderBytes, range);
                std::uint64_t first = 0;
                std::uint32_t sectors = 0, flags = 0;
                std::memcpy(&first, range.data(), sizeof first);
                std::memcpy(&sectors, range.data() + 8, sizeof sectors);
                std::memcpy(&flags, range.data() + 12, sizeof flags);
                if (flags != 0) throw Refused{kStatusUnsupp};  // "unmap" belongs to WRITE_ZEROES, not offered
                if (sectors > kMaxDiscardSectors) throw Refused{kStatusIoErr};
                const std::uint64_t bytes = std::uint64_t{sectors} * kSectorBytes;
                io.discard(check_range(first, bytes), bytes);
                std::lock_guard lock(stats_mutex_);
                ++stats_.discards;
                break;
            }
            default:
                throw Refused{kStatusUnsupp};
        }
    } catch (const Refused& r) {
        status = r.status;
        written = 0;
    } catch (const std::exception&) {
        // The DiskIo could not do it (colo::Error by its contract; the disk's owner logs why if it
        // cares), or a bounce buffer could not be had: an I/O error for the guest, whose driver
        // retries or fails the request; the vCPU and the VMM run on.
        status = kStatusIoErr;
        written = 0;
    }
    if (status != kStatusOk) count_error();
    out.scatter(data_out, std::span(reinterpret_cast<const std::byte*>(&status), 1));
    return written + 1;
}

void VirtioBlk::set_io(DiskIo* io) {
    std::lock_guard lock(mutex_);  // waits for a request being served
    io_ = io;
}

DiskStats VirtioBlk::stats() const {
    std::lock_guard lock(stats_mutex_);
    DiskStats out = stats_;
    recent_flush_percentiles(recent_flush_us_, out);
    return out;
}

std::uint32_t VirtioBlk::device_status() const {
    std::lock_guard lock(mutex_);
    return regs_.status();
}

std::vector<std::byte> VirtioBlk::save_state() const {
    std::lock_guard lock(mutex_);
    StateWriter w;
    regs_.save(w);
    return std::move(w.out);
}

void VirtioBlk::restore_state(std::span<const std::byte> state) {
    StateReader r(state, "virtio-blk state");
    Registers regs(kBlockDevice, offered(config_), 1);
    regs.load(r, memory_);
    if (!r.done()) r.fail("trailing bytes");
    std::lock_guard lock(mutex_);
    regs_ = regs;
}

}  // namespace colo::kvm
