#include "backends/fake_backend.hpp"

#include <sched.h>

#include <algorithm>
#include <cstring>

#include "backends/error.hpp"

namespace colo {

FakeBackend::FakeBackend(std::string name, std::uint64_t pages, Pfn first)
    : name_(std::move(name)),
      region_{first, pages},
      ram_(map_anonymous(pages * kPageSize)),
      log_(first.value + pages) {}

const char* FakeBackend::name_of(Call call) {
    switch (call) {
        case Call::pause: return "pause";
        case Call::resume: return "resume";
        case Call::start_dirty_log: return "start_dirty_log";
        case Call::stop_dirty_log: return "stop_dirty_log";
        case Call::harvest_dirty: return "harvest_dirty";
        case Call::save_state: return "save_state";
        case Call::restore_state: return "restore_state";
        case Call::read_pages: return "read_pages";
        case Call::write_pages: return "write_pages";
        case Call::checkpoint_committed: return "checkpoint_committed";
        case Call::drop_private_copies: return "drop_private_copies";
    }
    return "?";
}

void FakeBackend::fail_call(Call call, unsigned occurrence) {
    std::erase_if(armed_, [&](const auto& armed) { return armed.first == call; });
    armed_.emplace_back(call, occurrence);
}

void FakeBackend::enter(Call call) {
    calls_.push_back(call);
    for (auto it = armed_.begin(); it != armed_.end(); ++it) {
        if (it->first != call) continue;
        if (it->second > 0) {
            --it->second;
            return;
        }
        armed_.erase(it);
        throw SystemError(std::string("fake ") + name_of(call), EIO);
    }
}

void FakeBackend::pause() {
    enter(Call::pause);
    if (!paused_) ++counters_.pauses;
    paused_ = true;
}

void FakeBackend::resume() {
    enter(Call::resume);
    if (!paused_) return;
    ++counters_.resumes;
    paused_ = false;
    if (resume_hook_) resume_hook_(*this);
}

void FakeBackend::start_dirty_log() {
    enter(Call::start_dirty_log);
    logging_ = true;
    log_.clear_all();
}

void FakeBackend::stop_dirty_log() {
    enter(Call::stop_dirty_log);
    logging_ = false;
}

void FakeBackend::checkpoint_committed(std::uint64_t) { enter(Call::checkpoint_committed); }

void FakeBackend::harvest_dirty(DirtyBitmap& into) {
    enter(Call::harvest_dirty);
    if (!logging_) throw Error("fake backend: harvest without dirty logging");
    if (harvest_hook_ && !paused_) harvest_hook_(*this);
    ++counters_.harvests;
    into |= log_;
    log_.clear_all();
}

std::vector<StateRecord> FakeBackend::save_state() {
    enter(Call::save_state);
    if (!paused_) throw Error("fake backend: cannot save state while the guest runs");
    ++counters_.saves;
    if (::sched_getscheduler(0) == SCHED_FIFO) ++counters_.realtime_saves;
    std::vector<StateRecord> out{StateRecord{kFakeVcpuStateTag, 1, vcpu_state_}};
    for (std::uint32_t i = 0; i < nics_.size(); ++i) {
        // Every frame the guest received, each as u32 length and bytes (host order: a test's own).
        std::vector<std::byte> data;
        for (const auto& frame : nics_[i]->received()) {
            const auto size = static_cast<std::uint32_t>(frame.size());
            const auto* bytes = reinterpret_cast<const std::byte*>(&size);
            data.insert(data.end(), bytes, bytes + sizeof size);
            data.insert(data.end(), frame.begin(), frame.end());
        }
        out.push_back(StateRecord{kFakeNicStateTag + i, 1, std::move(data)});
    }
    return out;
}

void FakeBackend::restore_state(std::span<const StateRecord> state) {
    enter(Call::restore_state);
    if (!paused_) throw Error("fake backend: cannot restore state while the guest runs");
    if (state.size() != 1 + nics_.size() || state[0].tag != kFakeVcpuStateTag || state[0].version != 1) {
        throw Error("fake backend: unexpected state records");
    }
    for (std::uint32_t i = 0; i < nics_.size(); ++i) {
        const StateRecord& nic = state[1 + i];
        if (nic.tag != kFakeNicStateTag + i) throw Error("fake backend: unexpected NIC state record");
    }
    ++counters_.restores;
    vcpu_state_ = state[0].data;
    for (std::uint32_t i = 0; i < nics_.size(); ++i) {
        std::vector<FakeNic::Frame> received;
        const auto& data = state[1 + i].data;
        for (std::size_t at = 0; at < data.size();) {
            std::uint32_t size = 0;
            if (data.size() - at < sizeof size) throw Error("fake backend: NIC state record cut short");
            std::memcpy(&size, data.data() + at, sizeof size);
            at += sizeof size;
            if (data.size() - at < size) throw Error("fake backend: NIC state record cut short");
            received.emplace_back(data.begin() + static_cast<std::ptrdiff_t>(at),
                                  data.begin() + static_cast<std::ptrdiff_t>(at + size));
            at += size;
        }
        nics_[i]->set_received(std::move(received));
    }
}

std::vector<GuestNic*> FakeBackend::nics() {
    std::vector<GuestNic*> out;
    for (auto& nic : nics_) out.push_back(nic.get());
    return out;
}

std::vector<GuestDisk*> FakeBackend::disks() {
    std::vector<GuestDisk*> out;
    for (auto& disk : disks_) out.push_back(disk.get());
    return out;
}

FakeDisk& FakeBackend::add_disk(std::uint64_t size_bytes, DiskConfig config) {
    if (config.vdev.empty()) config.vdev = "xvd" + std::string(1, static_cast<char>('a' + disks_.size()));
    disks_.push_back(std::make_unique<FakeDisk>(std::move(config), size_bytes));
    return *disks_.back();
}

FakeNic& FakeBackend::add_nic(VifConfig config, bool attached) {
    nics_.push_back(std::make_unique<FakeNic>(std::move(config), attached));
    return *nics_.back();
}

void FakeBackend::set_console_sink(ConsoleSink sink) { sink_ = std::move(sink); }

void FakeBackend::guest_write(Pfn pfn, std::byte fill) {
    if (paused_) throw Error("fake backend: the guest is paused");
    std::memset(frame(pfn), static_cast<int>(fill), kPageSize);
    if (logging_) log_.set(pfn);
}

void FakeBackend::guest_print(const std::string& text) {
    if (sink_) sink_(std::as_bytes(std::span(text.data(), text.size())));
}

std::span<const std::byte> FakeBackend::page(Pfn pfn) const {
    if (!region_.contains(pfn)) throw Error("fake backend: frame outside guest memory");
    return {ram_.data() + (pfn.value - region_.first.value) * kPageSize, kPageSize};
}

std::byte* FakeBackend::frame(Pfn pfn) {
    if (!region_.contains(pfn)) {
        throw Error("fake backend: frame " + std::to_string(pfn.value) + " outside guest memory");
    }
    return ram_.data() + (pfn.value - region_.first.value) * kPageSize;
}

void FakeBackend::read_pages(std::span<const Pfn> frames, std::span<std::byte> out) {
    enter(Call::read_pages);
    if (out.size() != frames.size() * kPageSize) throw Error("fake backend: read buffer size");
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::memcpy(out.data() + i * kPageSize, frame(frames[i]), kPageSize);
    }
    counters_.pages_read += frames.size();
}

void FakeBackend::write_pages(std::span<const Pfn> frames, std::span<const std::byte> in) {
    enter(Call::write_pages);
    if (in.size() != frames.size() * kPageSize) throw Error("fake backend: write buffer size");
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::memcpy(frame(frames[i]), in.data() + i * kPageSize, kPageSize);
    }
    counters_.pages_written += frames.size();
}

}  // namespace colo

namespace colo {

bool FakeBackend::map_copy_on_write(int fd) {
    if (!copy_on_write_allowed_) return false;
    map_copy_on_write_over(ram_.data(), ram_.size(), fd);
    copy_on_write_ = true;
    return true;
}

void FakeBackend::drop_private_copies(const DirtyBitmap& frames) {
    enter(Call::drop_private_copies);
    if (!copy_on_write_) throw Error("fake backend: drop_private_copies without a copy-on-write mapping");
    drop_private_runs(ram_.data(), {region_}, frames);
}

}  // namespace colo
