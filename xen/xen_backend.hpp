// colo::Backend for a running Xen HVM or PVH domain, driven through the XenCalls seam.
//
// On the sending side it attaches to a domain that already exists (made by `xl create`). On the
// receiving side it makes its own (xen/incoming_domain.hpp): from the sender's libxl
// configuration, paused, as NAME--incoming, destroyed with the backend unless commit_incoming()
// made it the guest (renamed to NAME) first.
// What each Backend operation is in Xen terms:
//   pause / resume     xc_domain_pause / xc_domain_unpause, paired: Xen counts pauses, so
//                      this backend pauses at most once and unpauses only its own pause.
//   dirty logging      SHADOW_OP_ENABLE_LOGDIRTY; if that fails (log-dirty already on from an
//                      earlier run; there is no query op), OFF then ENABLE again, as Xen's save
//                      code does. harvest = SHADOW_OP_CLEAN over [0, max gpfn].
//   memory             the frames Xen lets us map (MapCache::probe), kept mapped; read-only
//                      until the first write_pages (only a secondary writes).
//   state              two records: the HVM context blob (hvm_context.hpp), then the HVM params
//                      Xen's migration stream carries (hvm_params.hpp), set before the context
//                      as Xen's restore does. A state of the context alone (older senders and
//                      images) is accepted.
//   incoming memory    libxl built the incoming domain with its kernel, firmware and start info
//                      in it: the first restore_state zeroes every frame not written since, so
//                      the domain holds exactly what was sent (an image leaves zero pages out).
//   cooperative        a guest with PV drivers (an event-channel upcall registered and
//   checkpoints        control/feature-suspend published: Linux) is asked to suspend itself
//                      through its suspend event channel when it offers one, else xenstore
//                      control/shutdown, before each checkpoint and resumed
//                      with xc_domain_resume(fast) after it (backends/guest_suspend.hpp).
//   NICs               one XenVifNic per vif of the colo-replicate config (xen/vif_nic.hpp):
//                      the domain's vif N, bridged privately with a TAP the NIC owns.
//   console            the PV console ring (HVM_PARAM_CONSOLE_PFN), read without consuming it
//                      (console_ring.hpp) by a reader thread every 20 ms (console_reader.hpp),
//                      and also whenever the pipeline pauses or harvests, so all output written
//                      before a checkpoint has reached the sink when the checkpoint is taken.
//                      A write of the ring's page (a secondary loading a checkpoint) restarts
//                      the reader after the written output: it is the sender's, not this guest's.
//
// PV domains are refused: Debian's Xen 4.17 is built without shadow paging, so log-dirty on a PV
// guest fails with EOPNOTSUPP; HVM and PVH guests use HAP, which has it.
//
// Threading: as Backend, and pause(), resume(), paused() are also safe from several threads at
// once: Xen counts pauses, so a check-then-pause raced by a second caller would pause twice and
// unpause once, leaving the domain paused; pause_mutex_ makes each check and its hypercall one
// step. (Only the pairing is made safe here: two parties that pause and resume still undo each
// other; GuestService decides who owns the guest.) The console sink is called from the console reader's thread or from the
// pipeline's thread (inside pause/harvest_dirty/poll_console), one at a time; it must not call
// back into the backend.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/dirty_bitmap.hpp"
#include "backends/guest_suspend.hpp"
#include "xen/console_reader.hpp"
#include "xen/incoming_domain.hpp"
#include "xen/map_cache.hpp"
#include "xen/vif_nic.hpp"
#include "xen/xen_calls.hpp"

namespace colo::xen {

// What the receiving side builds its domain from: the guest's name and the sender's
// Backend::domain_config (libxl's JSON).
// How checkpoints stop an attached domain (GuestConfig::checkpoint_style).
enum class CheckpointStyle {
    automatic,    // cooperative when the guest can suspend itself, else transparent
    cooperative,  // always; attaching fails when the guest cannot
    transparent,  // paused from outside only
};

// "auto", "cooperative", "transparent"; throws colo::Error for anything else.
[[nodiscard]] CheckpointStyle parse_checkpoint_style(const std::string& text);

struct IncomingGuest {
    std::string name;
    std::string domain_config;
    std::vector<VifConfig> vifs;  // colo-replicate's view of its vifs (xen/vif_nic.hpp)
};

class XenBackend final : public Backend, private GuestMemory, private GuestSuspend {
public:
    // Attaches to a running domain. Checks it can be replicated (HVM/PVH with HAP, alive) and
    // maps its memory.
    XenBackend(std::unique_ptr<XenCalls> calls, DomainId domain, std::string name,
               std::uint64_t map_chunk_pages = MapCache::kDefaultChunkPages,
               CheckpointStyle style = CheckpointStyle::automatic, const std::vector<VifConfig>& vifs = {});
    // Creates the incoming domain (paused, NAME--incoming), then checks and maps it as above; if
    // that fails, the new domain is destroyed again.
    XenBackend(std::unique_ptr<XenCalls> calls, const IncomingGuest& incoming,
               std::uint64_t map_chunk_pages = MapCache::kDefaultChunkPages);
    // Turns log-dirty off if this backend turned it on. Leaves the domain as it is otherwise:
    // whether a paused guest runs again is the pipeline's decision, not a destructor's.
    ~XenBackend() override;
    XenBackend(const XenBackend&) = delete;
    XenBackend& operator=(const XenBackend&) = delete;

    // --- Backend
    [[nodiscard]] BackendKind kind() const override { return BackendKind::xen; }
    [[nodiscard]] std::string name() const override { return name_; }
    [[nodiscard]] GuestMemory& memory() override { return *this; }
    void pause() override;
    void resume() override;
    [[nodiscard]] bool paused() const override;
    void start_dirty_log() override;
    void stop_dirty_log() override;
    void harvest_dirty(DirtyBitmap& into) override;
    [[nodiscard]] std::vector<StateRecord> save_state() override;
    void restore_state(std::span<const StateRecord> state) override;
    void set_console_sink(ConsoleSink sink) override;
    [[nodiscard]] std::string domain_config() override;
    [[nodiscard]] std::string commit_incoming() override;
    [[nodiscard]] std::string replication_caveat() override;
    [[nodiscard]] GuestSuspend* cooperative_suspend() override { return cooperative_ ? this : nullptr; }
    [[nodiscard]] std::vector<GuestNic*> nics() override;
    // libxl_domain_destroy: the domain was saved and goes, as after `xl save`.
    void destroy_after_save() override;

    // Passes new console output to the sink now.
    void poll_console();

    [[nodiscard]] DomainId domain() const noexcept { return domain_; }
    // The incoming domain this backend made, or nullptr when it attached to a running one.
    [[nodiscard]] const IncomingDomain* incoming() const noexcept { return incoming_ ? &*incoming_ : nullptr; }
    // Frames Xen said the domain had populated when we attached (what probing looked for).
    [[nodiscard]] std::uint64_t populated_frames() const noexcept { return populated_; }
    [[nodiscard]] const MapCache& map_cache() const noexcept { return cache_; }
    [[nodiscard]] std::uint64_t console_lost_bytes() const { return console_ ? console_->lost_bytes() : 0; }

private:
    // --- GuestMemory
    [[nodiscard]] std::vector<MemoryRegion> regions() const override { return regions_; }
    void read_pages(std::span<const Pfn> frames, std::span<std::byte> out) override;
    void write_pages(std::span<const Pfn> frames, std::span<const std::byte> in) override;

    // --- GuestSuspend
    void request() override;
    [[nodiscard]] bool suspended() override;
    [[nodiscard]] Withdrawal withdraw() override;
    void resume_cancelled() override;
    [[nodiscard]] std::string how() const override;

    void attach();  // the constructors' common part: check the domain, map its memory
    // The port of the guest's own suspend event channel (device/suspend/event-channel), if it
    // offers one (Mini-OS and classic XenLinux do; upstream Linux does not); throws colo::Error
    // when that node holds no port number.
    [[nodiscard]] std::optional<std::uint32_t> suspend_channel();
    [[nodiscard]] std::string control_path() const { return "/local/domain/" + std::to_string(domain_) + "/control"; }
    [[nodiscard]] std::string who() const;  // "xen domain 5 (name)", for messages
    void check_ram(Pfn pfn) const;
    // restore_state's parts: the params record checked against and set on this domain; the
    // incoming domain's frames nothing wrote, zeroed (once).
    void restore_hvm_params(std::span<const std::byte> record);
    void zero_unwritten();

    std::unique_ptr<XenCalls> calls_;  // first: outlives the mappings below
    // Second: an uncommitted incoming domain is destroyed after every mapping of it is gone.
    std::optional<IncomingDomain> incoming_;
    DomainId domain_;
    std::string name_;
    MapCache cache_;
    std::vector<MemoryRegion> regions_;
    DirtyBitmap ram_;                    // frames of regions_, for per-page checks
    std::vector<std::uint64_t> clean_;  // SHADOW_OP_CLEAN's bitmap, reused between rounds
    std::uint64_t log_frames_ = 0;      // frames CLEAN covers: max gpfn + 1
    std::uint64_t populated_ = 0;
    mutable std::mutex pause_mutex_;
    bool paused_ = false;  // guarded by pause_mutex_: this backend holds one Xen pause
    bool logging_ = false;
    // Checkpoints suspend the guest: through its suspend event channel when it offers one, else
    // through xenstore control/shutdown.
    bool cooperative_ = false;
    // The guest's suspend event channel, bound, when it offers one (device/suspend/event-channel):
    // notified instead of writing control/shutdown, as libxl does.
    std::optional<std::uint32_t> suspend_port_;
    std::uint32_t suspend_remote_port_ = 0;
    Pfn console_frame_{0};
    bool has_console_ = false;
    // An incoming domain's RAM frames not written since libxl built it, until the first
    // restore_state zeroes them (then empty).
    DirtyBitmap unwritten_;
    bool has_unwritten_ = false;
    bool destroyed_ = false;  // destroy_after_save ran: the domain is gone
    std::unique_ptr<ConsoleReader> console_;  // after cache_ and calls_: stops before they go
    std::vector<std::unique_ptr<XenVifNic>> nics_;  // last: the domain's vifs go back first
};

}  // namespace colo::xen
