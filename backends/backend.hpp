// The one interface the checkpoint pipeline drives (STYLE §2). It is consumer-side and small:
// exactly what a checkpoint needs, nothing of how a hypervisor provides it. KVM and Xen implement
// it; tests use FakeBackend. Optional hooks have no-op defaults.
//
// Threading: an implementation may assume no two calls overlap. Several threads do call it (the
// pipeline's, the auto-converge throttle's, the control thread's for `info` and `status`), so in a
// guest's process every call goes through control::GuestService's SerializedBackend, which makes
// them take turns. Who may pause and resume the guest is decided above the backend: the pipeline
// while it protects, migrates or receives the guest (GuestService refuses the operator then), and
// while a GuestThrottle runs the pipeline pauses through it. The console sink may be called from
// any thread the backend owns (a vCPU thread, a console reader) and must not block long.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/dirty_bitmap.hpp"
#include "backends/guest_disk.hpp"
#include "backends/guest_nic.hpp"
#include "backends/guest_suspend.hpp"
#include "backends/guest_memory.hpp"

namespace colo {

// Numbers are on the wire (stream header): never renumber.
enum class BackendKind : std::uint32_t {
    fake = 0x7f,
    kvm = 1,
    xen = 2,
};

[[nodiscard]] const char* to_string(BackendKind kind);

// One piece of vCPU, platform or device state, opaque to the pipeline. `tag` names what it is
// within its backend (a vCPU's registers, the PIT, the UART), `version` is that piece's own
// format version, so a restore can refuse what it does not understand.
struct StateRecord {
    std::uint32_t tag = 0;
    std::uint32_t version = 0;
    std::vector<std::byte> data;
    bool operator==(const StateRecord&) const = default;
};

using ConsoleSink = std::function<void(std::span<const std::byte>)>;

class Backend {
public:
    virtual ~Backend() = default;

    [[nodiscard]] virtual BackendKind kind() const = 0;
    [[nodiscard]] virtual std::string name() const = 0;  // the guest's name, for messages

    [[nodiscard]] virtual GuestMemory& memory() = 0;

    // Stops every vCPU and returns once none runs guest code. Idempotent.
    virtual void pause() = 0;
    // Lets the vCPUs run again. Idempotent.
    virtual void resume() = 0;
    [[nodiscard]] virtual bool paused() const = 0;
    // While paused, the threads a pause waits on (a KVM vCPU's own thread: it must leave KVM_RUN
    // and read its state) run at real-time priority when `on` and the host allows it
    // (realtime_boost.hpp). Off until the pipeline asks; backends with no such thread ignore it.
    virtual void set_realtime_pause(bool on) { (void)on; }

    // Dirty logging. Between start and stop, harvest_dirty ORs into `into` every frame written
    // since the previous harvest (or since start), by the guest or by the backend's own device
    // emulation, and clears the hypervisor's log. `into` must be frame_limit() frames long.
    virtual void start_dirty_log() = 0;
    virtual void stop_dirty_log() = 0;
    virtual void harvest_dirty(DirtyBitmap& into) = 0;

    // vCPU, platform and device state. save_state is refused (colo::Error) unless paused.
    [[nodiscard]] virtual std::vector<StateRecord> save_state() = 0;
    virtual void restore_state(std::span<const StateRecord> state) = 0;

    // The guest's console output: bytes as the guest writes them. Replaces any earlier sink.
    virtual void set_console_sink(ConsoleSink sink) = 0;

    // The guest's NICs, in the order of its config's `vif` list (backends/guest_nic.hpp). They
    // live as long as the backend.
    [[nodiscard]] virtual std::vector<GuestNic*> nics() { return {}; }
    // The guest's disks, in the order of its config's `disk` list (backends/guest_disk.hpp). They
    // live as long as the backend. An incoming guest's image is created (empty) when it is missing.
    [[nodiscard]] virtual std::vector<GuestDisk*> disks() { return {}; }

    // A guest that suspends itself cooperatively for each checkpoint (backends/guest_suspend.hpp),
    // or nullptr: the checkpoint pauses it from outside (the default; KVM, bare Xen guests). Lives
    // as long as the backend.
    [[nodiscard]] virtual GuestSuspend* cooperative_suspend() { return nullptr; }

    // `save` without -c wrote the guest's image and the guest ends: a guest that would outlive
    // this process (a Xen domain, made by xl) is destroyed here, as `xl save` destroys it. By
    // default nothing: the process's end frees the guest (KVM).
    virtual void destroy_after_save() {}

    // Optional hooks around a checkpoint (libxl's checkpoint devices). Defaults do nothing.
    virtual void checkpoint_committed(std::uint64_t /*epoch*/) {}

    // The backend's own description of the guest, for the receiving side to build its incoming
    // guest from (sent as GuestConfig::domain_config). Empty when the guest config says it all
    // (KVM). Xen: libxl's domain configuration as JSON.
    [[nodiscard]] virtual std::string domain_config() { return {}; }
    // Called once on the receiving side when the incoming guest becomes the one that runs
    // (migration committed, or takeover after the primary was lost). Returns a note for the log,
    // or "". Xen renames the domain from NAME--incoming to NAME here; until then destroying an
    // incoming backend destroys its domain.
    [[nodiscard]] virtual std::string commit_incoming() { return {}; }
    // What an operator must know before this guest is replicated, as one line, or "": state the
    // backend cannot carry to a replica. `protect` and `migrate` print it as a warning.
    [[nodiscard]] virtual std::string replication_caveat() { return {}; }
    // What the guest itself reports to its VMM, as (status key, value) pairs for `status`; none
    // by default. KVM's built-in test guest: its own stalls (guest_stall_max_us,
    // guest_stall_histogram), the bench's measure of what a checkpoint costs the guest.
    [[nodiscard]] virtual std::vector<std::pair<std::string, std::string>> guest_report() { return {}; }
};

}  // namespace colo
