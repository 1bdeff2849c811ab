#include "backends/fake_backend.hpp"

#include <algorithm>
#include <cstring>

#include "backends/error.hpp"

namespace colo {

FakeBackend::FakeBackend(std::string name, std::uint64_t pages, Pfn first)
    : name_(std::move(name)),
      region_{first, pages},
      ram_(pages * kPageSize),
      log_(first.value + pages) {}

void FakeBackend::pause() {
    if (!paused_) ++counters_.pauses;
    paused_ = true;
}

void FakeBackend::resume() {
    if (!paused_) return;
    ++counters_.resumes;
    paused_ = false;
    if (resume_hook_) resume_hook_(*this);
}

void FakeBackend::start_dirty_log() {
    logging_ = true;
    log_.clear_all();
}

void FakeBackend::stop_dirty_log() { logging_ = false; }

void FakeBackend::harvest_dirty(DirtyBitmap& into) {
    if (!logging_) throw Error("fake backend: harvest without dirty logging");
    if (harvest_hook_ && !paused_) harvest_hook_(*this);
    ++counters_.harvests;
    into |= log_;
    log_.clear_all();
}

std::vector<StateRecord> FakeBackend::save_state() {
    if (!paused_) throw Error("fake backend: cannot save state while the guest runs");
    ++counters_.saves;
    return {StateRecord{kFakeVcpuStateTag, 1, vcpu_state_}};
}

void FakeBackend::restore_state(std::span<const StateRecord> state) {
    if (!paused_) throw Error("fake backend: cannot restore state while the guest runs");
    if (state.size() != 1 || state[0].tag != kFakeVcpuStateTag || state[0].version != 1) {
        throw Error("fake backend: unexpected state records");
    }
    ++counters_.restores;
    vcpu_state_ = state[0].data;
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
    if (out.size() != frames.size() * kPageSize) throw Error("fake backend: read buffer size");
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::memcpy(out.data() + i * kPageSize, frame(frames[i]), kPageSize);
    }
    counters_.pages_read += frames.size();
}

void FakeBackend::write_pages(std::span<const Pfn> frames, std::span<const std::byte> in) {
    if (in.size() != frames.size() * kPageSize) throw Error("fake backend: write buffer size");
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::memcpy(frame(frames[i]), in.data() + i * kPageSize, kPageSize);
    }
    counters_.pages_written += frames.size();
}

}  // namespace colo
