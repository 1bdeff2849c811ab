// The seam between the Xen backend and libxenctrl / libxenforeignmemory / libxenlight (STYLE §1):
// one method per library call the backend makes, in the project's own plain types, so the backend
// compiles and is unit-tested without libxen-dev (tests put a fake domain behind it).
//
// The public methods are not virtual. Each calls exactly one protected do_* hook that returns 0 or
// an errno value, and turns a failure into colo::SystemError named after the library call
// ("xc_shadow_control(CLEAN)", "xenforeignmemory_map"). The naming therefore lives in one place
// and is the same for the real library and the fake, and a unit test that injects an errno checks
// the exact message an operator would see.
//
// Threading: one thread at a time. Neither libxc handles nor the fake are shared across threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backends/guest_address.hpp"

namespace colo::xen {

class ForeignMapping;

using DomainId = std::uint32_t;

// What xc_domain_getinfo says about one domain, reduced to what the backend decides on.
struct DomainInfo {
    DomainId id = 0;
    bool hvm = false;  // HVM or PVH container (false: PV)
    bool hap = false;  // hardware-assisted paging: the only log-dirty Debian's Xen 4.17 has
    bool paused = false;
    bool shutdown = false;
    unsigned shutdown_reason = 0;  // SHUTDOWN_* when shutdown (kShutdownSuspend: it suspended itself)
    bool dying = false;
    std::uint64_t pages = 0;  // populated frames now
    unsigned vcpus = 0;       // online vCPUs
};

enum class MapAccess { read_only, read_write };

// HVM params the backend reads (numbers from xen/hvm/params.h, which this header must not need).
inline constexpr std::uint32_t kHvmParamCallbackIrq = 0;
inline constexpr std::uint32_t kHvmParamStorePfn = 1;
inline constexpr std::uint32_t kHvmParamConsolePfn = 17;
// SHUTDOWN_suspend (xen/sched.h): the reason a domain that suspended itself gives.
inline constexpr unsigned kShutdownSuspend = 2;

class XenCalls {
public:
    virtual ~XenCalls() = default;
    XenCalls() = default;
    XenCalls(const XenCalls&) = delete;
    XenCalls& operator=(const XenCalls&) = delete;

    // xc_domain_getinfo for exactly `domain` (ESRCH when it does not exist).
    [[nodiscard]] DomainInfo domain_info(DomainId domain);
    // xc_domain_pause / xc_domain_unpause: Xen counts pauses, so the caller keeps them paired.
    void pause(DomainId domain);
    void unpause(DomainId domain);
    // xc_domain_maximum_gpfn: the highest frame the domain has populated.
    [[nodiscard]] Pfn maximum_gpfn(DomainId domain);

    // xc_logdirty_control with SHADOW_OP_ENABLE_LOGDIRTY / SHADOW_OP_OFF / SHADOW_OP_CLEAN.
    // clean ORs nothing: it overwrites `bitmap` (bit i of word i/64 = frame i) for frames
    // [0, pages) and clears Xen's log; bitmap.size() * 64 >= pages.
    void logdirty_enable(DomainId domain);
    void logdirty_off(DomainId domain);
    void logdirty_clean(DomainId domain, std::span<std::uint64_t> bitmap, std::uint64_t pages);

    // xc_domain_hvm_getcontext (sized by a first call with no buffer) / xc_domain_hvm_setcontext.
    [[nodiscard]] std::vector<std::byte> hvm_get_context(DomainId domain);
    void hvm_set_context(DomainId domain, std::span<const std::byte> context);
    // xc_hvm_param_get.
    [[nodiscard]] std::uint64_t hvm_param(DomainId domain, std::uint32_t index);
    // xc_hvm_param_set.
    void hvm_param_set(DomainId domain, std::uint32_t index, std::uint64_t value);

    // xc_domain_resume(fast): a domain that suspended itself (SHUTDOWN_suspend) returns from its
    // suspend hypercall with 1, "cancelled", and so keeps every binding it has (xl remus's resume
    // after a checkpoint). The domain stays paused while the caller holds a pause.
    void resume_cancelled(DomainId domain);

    // xenevtchn_bind_interdomain / xenevtchn_notify: a channel to a port the guest offers (its
    // suspend event channel). Bound channels go when the seam does.
    [[nodiscard]] std::uint32_t evtchn_bind(DomainId domain, std::uint32_t remote_port);
    void evtchn_notify(std::uint32_t local_port);

    // xs_read / xs_write on xenstore, outside a transaction. read: nullopt when the node does not
    // exist.
    [[nodiscard]] std::optional<std::string> xenstore_read(const std::string& path);
    void xenstore_write(const std::string& path, const std::string& value);

    // xenforeignmemory_map: frames[i] appears at page i of the result. A frame that cannot be
    // mapped leaves errors[i] != 0 (a positive errno: ENOENT while Xen pages it in or unshares it,
    // EINVAL for a frame the domain has not populated) and the rest still map. Throws only when
    // the call as a whole fails. errors.size() == frames.size().
    [[nodiscard]] ForeignMapping map_foreign(DomainId domain, MapAccess access,
                                             std::span<const Pfn> frames, std::span<int> errors);

    // libxl_name_to_domid.
    [[nodiscard]] DomainId domain_by_name(const std::string& name);
    // The same, but "no such name" is an answer (nullopt), not an error.
    [[nodiscard]] std::optional<DomainId> find_domain_by_name(const std::string& name);

    // Domains through libxenlight, for the receiving side (xen/incoming_domain.hpp).
    // libxl_retrieve_domain_configuration then libxl_domain_config_to_json: the configuration
    // libxl would rebuild `domain` from, as libxl's own JSON.
    [[nodiscard]] std::string domain_config(DomainId domain);
    // libxl_domain_config_from_json, the name replaced by `name`, then libxl_domain_create_new:
    // the domain is built from that configuration and left paused (as `xl create -p`).
    [[nodiscard]] DomainId create_domain(const std::string& config_json, const std::string& name);
    // libxl_domain_rename, checking that the domain is still called `from`.
    void rename_domain(DomainId domain, const std::string& from, const std::string& to);
    // libxl_domain_destroy.
    void destroy_domain(DomainId domain);

protected:
    // Each returns 0 on success or the errno of the failed call.
    virtual int do_domain_info(DomainId domain, DomainInfo& out) = 0;
    virtual int do_pause(DomainId domain) = 0;
    virtual int do_unpause(DomainId domain) = 0;
    virtual int do_maximum_gpfn(DomainId domain, std::uint64_t& out) = 0;
    virtual int do_logdirty_enable(DomainId domain) = 0;
    virtual int do_logdirty_off(DomainId domain) = 0;
    virtual int do_logdirty_clean(DomainId domain, std::span<std::uint64_t> bitmap,
                                  std::uint64_t pages) = 0;
    virtual int do_hvm_context_size(DomainId domain, std::uint32_t& out) = 0;
    // Fills `buffer` and sets `used` to the bytes written.
    virtual int do_hvm_get_context(DomainId domain, std::span<std::byte> buffer,
                                   std::uint32_t& used) = 0;
    virtual int do_hvm_set_context(DomainId domain, std::span<const std::byte> context) = 0;
    virtual int do_hvm_param(DomainId domain, std::uint32_t index, std::uint64_t& out) = 0;
    virtual int do_hvm_param_set(DomainId domain, std::uint32_t index, std::uint64_t value) = 0;
    virtual int do_resume_cancelled(DomainId domain) = 0;
    virtual int do_evtchn_bind(DomainId domain, std::uint32_t remote_port, std::uint32_t& local_port) = 0;
    virtual int do_evtchn_notify(std::uint32_t local_port) = 0;
    // ENOENT when the node does not exist.
    virtual int do_xenstore_read(const std::string& path, std::string& out) = 0;
    virtual int do_xenstore_write(const std::string& path, const std::string& value) = 0;
    virtual int do_map_foreign(DomainId domain, MapAccess access, std::span<const Pfn> frames,
                               std::span<int> errors, std::byte*& out) = 0;
    // Called from ForeignMapping's destructor: must not throw.
    virtual int do_unmap_foreign(std::byte* address, std::size_t pages) noexcept = 0;
    // ENOENT/ESRCH when no domain has that name.
    virtual int do_domain_by_name(const std::string& name, DomainId& out) = 0;
    // These wrap two library calls each; `failed_call` names the one that failed (it starts as
    // the second). libxl reports ERROR_* codes: the real seam turns them into errno values.
    virtual int do_domain_config(DomainId domain, std::string& json, const char*& failed_call) = 0;
    virtual int do_create_domain(const std::string& config_json, const std::string& name, DomainId& out,
                                 const char*& failed_call) = 0;
    virtual int do_rename_domain(DomainId domain, const std::string& from, const std::string& to) = 0;
    virtual int do_destroy_domain(DomainId domain) = 0;

private:
    friend class ForeignMapping;
    void unmap_foreign(std::byte* address, std::size_t pages) noexcept;
};

}  // namespace colo::xen
