// A Xen domain with no Xen behind it, for unit tests of the Xen backend: it implements the
// XenCalls seam the way Xen 4.17 behaves for an HVM/PVH guest (log-dirty refuses a second
// ENABLE with EINVAL and CLEAN while off; unpopulated frames fail to map with EINVAL; frames
// being paged in fail with ENOENT), counts every call, and lets a test inject any call's failure.
//
// Guest RAM is a memfd; a foreign mapping maps the same file pages, so a page "the guest" writes
// after the backend mapped it shows through the cached mapping, as with real foreign mappings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/dirty_bitmap.hpp"
#include "xen/xen_calls.hpp"

namespace colo::xen {

class FakeDomain final : public XenCalls {
public:
    FakeDomain(DomainId id, std::uint64_t frames);
    ~FakeDomain() override;

    // --- set-up
    DomainInfo info;                          // what domain_info reports (hvm + hap by default)
    std::vector<std::byte> hvm_context;       // what hvm_get_context returns; hvm_set_context stores
    std::map<std::uint32_t, std::uint64_t> params;  // HVM params (absent: 0); hvm_param_set stores
    std::map<std::string, DomainId> names;    // for domain_by_name; create/rename keep it up to date
    std::string config_json;                  // what domain_config returns
    // create_domain "builds" this fake domain: it records the config and the name it was given
    // and answers info.id. destroy_domain marks it destroyed (and drops its name).
    std::string created_from;
    std::string created_as;
    bool destroyed = false;
    void make_hole(Pfn first, std::uint64_t count);  // unpopulated: maps fail with EINVAL
    void defer_frame(Pfn pfn, unsigned times);       // next `times` maps of it fail with ENOENT
    void fail_frame(Pfn pfn, int error_number);      // every later map of it fails so
    // The next `times` calls of seam operation `op` ("pause", "logdirty_clean", "map_foreign",
    // ... the do_* names without "do_") fail with `error_number`.
    void fail_next(const std::string& op, int error_number, unsigned times = 1);
    bool logdirty_on = false;
    // xenstore, path -> value. A write also calls on_xenstore_write (the guest's watch), which
    // may answer: clear the node and suspend (info.shutdown, kShutdownSuspend), as Linux does.
    std::map<std::string, std::string> xenstore;
    std::function<void(const std::string& path, const std::string& value)> on_xenstore_write;
    // Makes the guest a cooperative one: PV drivers (callback irq), feature-suspend, and a watch
    // that suspends at once on "suspend" (unless `answers` is false: then it never does).
    void make_cooperative(bool answers = true);
    // A guest that offers a suspend event channel (port `port` of its own) and no feature-suspend:
    // a notification of it suspends the guest at once.
    void offer_suspend_channel(std::uint32_t port);
    std::map<std::uint32_t, std::uint32_t> bound_ports;  // local port -> the guest's port
    unsigned notifications = 0;
    // A cooperative guest (xenstore, or its suspend event channel when it offers one) that takes
    // a request at once (clears control/shutdown) but suspends only `delay` later, as a loaded
    // Linux does while it freezes its tasks; asked again while suspended, it acts on that request
    // once resumed (its watch fires then, or the pending notification).
    void take_requests_late(std::chrono::milliseconds delay);
    unsigned suspend_requests = 0;  // requests it took

    // --- the guest
    void guest_write(Pfn pfn, std::byte fill);  // fills the frame; logged when log-dirty is on
    [[nodiscard]] std::byte* frame(Pfn pfn);    // the guest's own view of a frame

    // --- what the backend did
    struct Counters {
        unsigned map_calls = 0, unmaps = 0, pauses = 0, unpauses = 0, enables = 0, offs = 0, cleans = 0,
                 set_contexts = 0, param_sets = 0;
        std::uint64_t mapped_frames = 0;
        // Xen's pause count (xc_domain_pause increments it, unpause decrements it; the domain
        // runs at 0) and the highest it reached. pause and unpause may come from several
        // threads at once, as Xen takes them.
        int pause_depth = 0, max_pause_depth = 0;
        unsigned cancelled_resumes = 0;  // resume_cancelled of a suspended domain
    };
    Counters counters;
    std::vector<std::string> log;            // every seam call, by op name, in order
    // The same, shared so a test can read it after the backend (which owns the fake) is gone;
    // the fake's destructor adds "destroyed with N mappings".
    std::shared_ptr<std::vector<std::string>> journal = std::make_shared<std::vector<std::string>>();
    std::vector<MapAccess> map_accesses;     // the access of each map call
    [[nodiscard]] std::size_t live_mappings() const { return live_.size(); }

protected:
    int do_domain_info(DomainId domain, DomainInfo& out) override;
    int do_pause(DomainId domain) override;
    int do_unpause(DomainId domain) override;
    int do_maximum_gpfn(DomainId domain, std::uint64_t& out) override;
    int do_logdirty_enable(DomainId domain) override;
    int do_logdirty_off(DomainId domain) override;
    int do_logdirty_clean(DomainId domain, std::span<std::uint64_t> bitmap, std::uint64_t pages) override;
    int do_hvm_context_size(DomainId domain, std::uint32_t& out) override;
    int do_hvm_get_context(DomainId domain, std::span<std::byte> buffer, std::uint32_t& used) override;
    int do_hvm_set_context(DomainId domain, std::span<const std::byte> context) override;
    int do_hvm_param(DomainId domain, std::uint32_t index, std::uint64_t& out) override;
    int do_hvm_param_set(DomainId domain, std::uint32_t index, std::uint64_t value) override;
    int do_resume_cancelled(DomainId domain) override;
    int do_evtchn_bind(DomainId domain, std::uint32_t remote_port, std::uint32_t& local_port) override;
    int do_evtchn_notify(std::uint32_t local_port) override;
    int do_xenstore_read(const std::string& path, std::string& out) override;
    int do_xenstore_write(const std::string& path, const std::string& value) override;
    int do_map_foreign(DomainId domain, MapAccess access, std::span<const Pfn> frames,
                       std::span<int> errors, std::byte*& out) override;
    int do_unmap_foreign(std::byte* address, std::size_t pages) noexcept override;
    int do_domain_by_name(const std::string& name, DomainId& out) override;
    int do_domain_config(DomainId domain, std::string& json, const char*& failed_call) override;
    int do_create_domain(const std::string& config_json, const std::string& name, DomainId& out,
                         const char*& failed_call) override;
    int do_rename_domain(DomainId domain, const std::string& from, const std::string& to) override;
    int do_destroy_domain(DomainId domain) override;

private:
    // 0, or the error to fail `op` with (and records the call).
    int enter(const std::string& op, DomainId domain);
    [[nodiscard]] int frame_error(Pfn pfn);
    // The late-taking guest (take_requests_late): a request arrived.
    void take_request();
    [[nodiscard]] std::string shutdown_node() const;
    void catch_up();  // suspends now if its time came (time is looked at on every call to it)

    std::optional<std::chrono::milliseconds> take_delay_;
    std::optional<std::chrono::steady_clock::time_point> suspend_at_;  // taken, suspends then
    bool queued_ = false;  // notified on its suspend channel while suspended

    std::mutex pause_mutex_;  // pause and unpause are safe from several threads, as in Xen
    std::uint64_t frames_;
    int memfd_ = -1;
    std::byte* ram_ = nullptr;
    DirtyBitmap dirty_;
    std::set<std::uint64_t> holes_;
    std::map<std::uint64_t, unsigned> deferred_;
    std::map<std::uint64_t, int> failed_;
    struct Injected {
        int error_number;
        unsigned times;
    };
    std::map<std::string, Injected> injected_;
    std::map<std::byte*, std::size_t> live_;  // mappings handed out and not yet unmapped
};

// A well-framed HVM context (header, one CPU record filled from `seed`, END), as Xen writes it.
[[nodiscard]] std::vector<std::byte> make_hvm_context(std::uint8_t seed);

}  // namespace colo::xen
