// A backend with no hypervisor behind it, for unit tests of the pipeline: memory is a plain
// buffer (a private mapping, so that map_copy_on_write works as on KVM, with the same kernel
// calls; set_copy_on_write(false) makes it refuse, as Xen does), "the guest" is whatever the test does through guest_write(), and every call is
// counted and journaled, so a test can check exactly what the pipeline did and in what order.
// Any call can be made to fail (fail_call): the way tests drive each step of a checkpoint into
// a backend error and check that the pipeline still ends where it says.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.hpp"
#include "backends/memory_mapping.hpp"
#include "backends/fake_disk.hpp"
#include "backends/fake_nic.hpp"

namespace colo {

class FakeBackend final : public Backend, private GuestMemory {
public:
    // One region of `pages` frames starting at `first`.
    FakeBackend(std::string name, std::uint64_t pages, Pfn first = Pfn{0});

    // --- Backend
    [[nodiscard]] BackendKind kind() const override { return BackendKind::fake; }
    [[nodiscard]] std::string name() const override { return name_; }
    [[nodiscard]] GuestMemory& memory() override { return *this; }
    void pause() override;
    void resume() override;
    [[nodiscard]] bool paused() const override { return paused_; }
    void set_realtime_pause(bool on) override { realtime_pause_ = on; }
    [[nodiscard]] bool realtime_pause() const { return realtime_pause_; }
    void start_dirty_log() override;
    void stop_dirty_log() override;
    void harvest_dirty(DirtyBitmap& into) override;
    [[nodiscard]] std::vector<StateRecord> save_state() override;
    void restore_state(std::span<const StateRecord> state) override;
    void set_console_sink(ConsoleSink sink) override;
    void checkpoint_committed(std::uint64_t epoch) override;
    [[nodiscard]] std::vector<GuestNic*> nics() override;

    // A NIC (vif) more; `attached` false makes it an incoming guest's NIC, with no TAP yet.
    FakeNic& add_nic(VifConfig config = {}, bool attached = true);
    [[nodiscard]] FakeNic& nic(std::size_t index) { return *nics_.at(index); }
    [[nodiscard]] std::vector<GuestDisk*> disks() override;
    // A disk more, with an image of `size_bytes` zeros.
    FakeDisk& add_disk(std::uint64_t size_bytes, DiskConfig config = {});
    [[nodiscard]] FakeDisk& disk(std::size_t index) { return *disks_.at(index); }

    // --- calls, and failures on demand
    enum class Call { pause, resume, start_dirty_log, stop_dirty_log, harvest_dirty, save_state, restore_state,
                      read_pages, write_pages, checkpoint_committed, drop_private_copies };
    [[nodiscard]] static const char* name_of(Call call);
    // Every call above, in the order made (a failed one too).
    [[nodiscard]] const std::vector<Call>& calls() const { return calls_; }
    // The `occurrence`-th next call of `call` (0: the very next one) does nothing and throws
    // SystemError("fake NAME", EIO). One failure armed per call kind.
    void fail_call(Call call, unsigned occurrence = 0);

    // --- what "the guest" does
    // Fills the frame with `fill` as a running guest would; refused while paused.
    void guest_write(Pfn pfn, std::byte fill);
    // Writes to the guest console.
    void guest_print(const std::string& text);
    // The vCPU state that save_state returns.
    void set_vcpu_state(std::vector<std::byte> bytes) { vcpu_state_ = std::move(bytes); }
    [[nodiscard]] const std::vector<std::byte>& vcpu_state() const { return vcpu_state_; }
    [[nodiscard]] std::span<const std::byte> page(Pfn pfn) const;
    // Written since the last harvest: still in "the hypervisor's" dirty log, not yet handed out.
    [[nodiscard]] bool unharvested(Pfn pfn) const { return log_.test(pfn); }
    // Called at the start of every harvest_dirty while the guest is not paused, as if the guest
    // ran between two harvests: the test writes what the guest would (deterministically).
    void on_harvest(std::function<void(FakeBackend&)> guest) { harvest_hook_ = std::move(guest); }
    // Whether map_copy_on_write works (default) or says no, as a Xen domain's memory does.
    void set_copy_on_write(bool allowed) { copy_on_write_allowed_ = allowed; }
    // Whether memory is a copy-on-write view of a file now.
    [[nodiscard]] bool copy_on_write() const { return copy_on_write_; }
    // What replication_caveat() says (default: nothing).
    void set_replication_caveat(std::string text) { caveat_ = std::move(text); }
    [[nodiscard]] std::string replication_caveat() override { return caveat_; }
    // Called by resume() once the guest runs again, as its first instructions would be.
    void on_resume(std::function<void(FakeBackend&)> guest) { resume_hook_ = std::move(guest); }

    // --- what the pipeline did
    struct Counters {
        unsigned pauses = 0, resumes = 0, harvests = 0, saves = 0, restores = 0;
        unsigned realtime_saves = 0;  // save_state called from a thread running SCHED_FIFO
        std::uint64_t pages_read = 0, pages_written = 0;
    };
    [[nodiscard]] const Counters& counters() const { return counters_; }

private:
    // --- GuestMemory
    [[nodiscard]] std::vector<MemoryRegion> regions() const override { return {region_}; }
    void read_pages(std::span<const Pfn> frames, std::span<std::byte> out) override;
    void write_pages(std::span<const Pfn> frames, std::span<const std::byte> in) override;
    [[nodiscard]] bool map_copy_on_write(int fd) override;
    void drop_private_copies(const DirtyBitmap& frames) override;
    std::byte* frame(Pfn pfn);
    // Journals `call` and throws if a failure was armed for it.
    void enter(Call call);

    std::string name_;
    MemoryRegion region_;
    Mapping ram_;
    bool copy_on_write_allowed_ = true;
    bool copy_on_write_ = false;
    DirtyBitmap log_;
    bool logging_ = false;
    bool paused_ = false;
    bool realtime_pause_ = false;
    std::vector<std::byte> vcpu_state_;
    ConsoleSink sink_;
    std::function<void(FakeBackend&)> harvest_hook_;
    std::function<void(FakeBackend&)> resume_hook_;
    std::string caveat_;
    Counters counters_;
    std::vector<Call> calls_;
    std::vector<std::pair<Call, unsigned>> armed_;  // call, occurrences still to let through
    std::vector<std::unique_ptr<FakeNic>> nics_;
    std::vector<std::unique_ptr<FakeDisk>> disks_;
};

// Record tag FakeBackend uses for its single piece of state.
inline constexpr std::uint32_t kFakeVcpuStateTag = 1;
// ... and for NIC N's (the number of frames its guest received): this plus N.
inline constexpr std::uint32_t kFakeNicStateTag = 0x100;

}  // namespace colo
