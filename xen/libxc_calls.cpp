#include "xen/libxc_calls.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

// The Xen libraries' headers have no extern "C" guards of their own.
extern "C" {
#include <libxl.h>
#include <libxl_utils.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xenstore.h>
#include <xentoollog.h>
}

#include "backends/error.hpp"
#include "xen/hvm_params.hpp"
#include "xen/peer_domain_policy.hpp"

namespace colo::xen {

namespace {

// The seam's numbers are Xen's (xen_calls.hpp and hvm_params.hpp must not include its headers).
static_assert(kHvmParamCallbackIrq == HVM_PARAM_CALLBACK_IRQ && kHvmParamStorePfn == HVM_PARAM_STORE_PFN &&
              kHvmParamConsolePfn == HVM_PARAM_CONSOLE_PFN && kShutdownSuspend == SHUTDOWN_suspend);
consteval bool carried_index_is(const char* name, std::uint32_t index) {
    for (const CarriedHvmParam& p : kCarriedHvmParams) {
        if (std::string_view(p.name) == name) return p.index == index;
    }
    return false;
}
#define COLO_CARRIED(NAME) static_assert(carried_index_is(#NAME, HVM_PARAM_##NAME), #NAME)
COLO_CARRIED(STORE_PFN);
COLO_CARRIED(IOREQ_PFN);
COLO_CARRIED(BUFIOREQ_PFN);
COLO_CARRIED(PAGING_RING_PFN);
COLO_CARRIED(MONITOR_RING_PFN);
COLO_CARRIED(SHARING_RING_PFN);
COLO_CARRIED(VM86_TSS_SIZED);
COLO_CARRIED(CONSOLE_PFN);
COLO_CARRIED(ACPI_IOPORTS_LOCATION);
COLO_CARRIED(VIRIDIAN);
COLO_CARRIED(IDENT_PT);
COLO_CARRIED(VM_GENERATION_ID_ADDR);
COLO_CARRIED(IOREQ_SERVER_PFN);
COLO_CARRIED(NR_IOREQ_SERVER_PAGES);
COLO_CARRIED(X87_FIP_WIDTH);
COLO_CARRIED(MCA_CAP);
#undef COLO_CARRIED

// The errno of a call that failed. Xen's libraries report errors through errno, but a few paths
// fail with errno left at 0, which must still count as a failure (as `fallback`). So every call
// clears errno first: otherwise such a failure would report whatever an earlier call left in it.
int failed_errno(int fallback = EIO) { return errno != 0 ? errno : fallback; }

// Turns a libxc result into 0 or errno.
int errno_of(long long rc) { return rc >= 0 ? 0 : failed_errno(); }

// libxl answers with its own ERROR_* codes; the seam promises errno values. The codes with an
// errno meaning map to it; for the rest, errno as the failing library call left it, if any.
int errno_of_libxl(int rc) {
    switch (rc) {
        case 0: return 0;
        case ERROR_NOMEM: return ENOMEM;
        case ERROR_INVAL: return EINVAL;
        case ERROR_DOMAIN_NOTFOUND: return ESRCH;
        case ERROR_NOTFOUND: return ENOENT;
        case ERROR_TIMEDOUT:
        case ERROR_GUEST_TIMEDOUT: return ETIMEDOUT;
        case ERROR_NI: return ENOSYS;
        case ERROR_JSON_CONFIG_EMPTY: return ENODATA;
        default: return failed_errno();
    }
}

// libxl_domain_config with its dispose (libxl's types own their strings).
class LibxlDomainConfig {
public:
    LibxlDomainConfig() { libxl_domain_config_init(&config_); }
    ~LibxlDomainConfig() { libxl_domain_config_dispose(&config_); }
    LibxlDomainConfig(const LibxlDomainConfig&) = delete;
    LibxlDomainConfig& operator=(const LibxlDomainConfig&) = delete;
    libxl_domain_config* get() { return &config_; }

private:
    libxl_domain_config config_;
};

struct XcCloser {
    void operator()(xc_interface* x) const noexcept { xc_interface_close(x); }
};
struct ForeignMemoryCloser {
    void operator()(xenforeignmemory_handle* h) const noexcept { xenforeignmemory_close(h); }
};
struct EvtchnCloser {
    void operator()(xenevtchn_handle* h) const noexcept { xenevtchn_close(h); }  // unbinds its ports
};
struct XenstoreCloser {
    void operator()(xs_handle* h) const noexcept { xs_close(h); }
};
struct LibxlCloser {
    void operator()(libxl_ctx* c) const noexcept { libxl_ctx_free(c); }
};

// libxl insists on a logger. Ours prints warnings and errors to stderr with a prefix, so
// libxl's own diagnostics reach the operator next to our one-line error. (Written here rather
// than using xtl_createlogger_stdiostream so we need not link libxentoollog directly.)
struct StderrLogger {
    xentoollog_logger base;
};

void log_message(xentoollog_logger*, xentoollog_level level, int errnoval, const char* context,
                 const char* format, va_list args) {
    if (level < XTL_WARN) return;
    std::fprintf(stderr, "colo-replicate: %s: ", context != nullptr ? context : "libxl");
    std::vfprintf(stderr, format, args);
    if (errnoval >= 0) std::fprintf(stderr, ": %s", std::strerror(errnoval));
    std::fputc('\n', stderr);
}

void log_destroy(xentoollog_logger*) {}

StderrLogger g_logger{{log_message, nullptr, log_destroy}};

}  // namespace

struct LibxcCalls::Handles {
    std::unique_ptr<xc_interface, XcCloser> xc;
    std::unique_ptr<xenforeignmemory_handle, ForeignMemoryCloser> foreign;
    std::unique_ptr<libxl_ctx, LibxlCloser> libxl;
    // Opened on first use: only a primary with a cooperative guest talks to xenstore itself.
    std::unique_ptr<xs_handle, XenstoreCloser> xenstore;
    // Opened on first use too: only for a guest that offers a suspend event channel.
    std::unique_ptr<xenevtchn_handle, EvtchnCloser> evtchn;

    int open_xenstore() {
        if (xenstore) return 0;
        errno = 0;
        xenstore.reset(xs_open(0));
        return xenstore ? 0 : failed_errno();
    }
    // xc_logdirty_control needs its bitmap in hypercall-safe memory; kept between rounds so a
    // checkpoint does not allocate. Set up by hand as DECLARE_HYPERCALL_BUFFER would (its
    // designated initialisers are C, not C++): no bounce buffering, so ubuf is the -1 marker.
    xc_hypercall_buffer_t bitmap{nullptr, nullptr, 0, reinterpret_cast<void*>(-1), 0};
    int bitmap_pages = 0;

    void free_bitmap() noexcept {
        if (bitmap.hbuf != nullptr) xc__hypercall_buffer_free_pages(xc.get(), &bitmap, bitmap_pages);
        bitmap.hbuf = nullptr;
        bitmap_pages = 0;
    }
};

LibxcCalls::LibxcCalls() : handles_(std::make_unique<Handles>()) {
    handles_->xc.reset(xc_interface_open(nullptr, nullptr, 0));
    if (!handles_->xc) throw SystemError("xc_interface_open", failed_errno(), "is this dom0?");
    handles_->foreign.reset(xenforeignmemory_open(nullptr, 0));
    if (!handles_->foreign) throw SystemError("xenforeignmemory_open", failed_errno());
    libxl_ctx* ctx = nullptr;
    if (libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, &g_logger.base) != 0 || ctx == nullptr) {
        throw SystemError("libxl_ctx_alloc", failed_errno(), "is xenstored running?");
    }
    handles_->libxl.reset(ctx);
}

LibxcCalls::~LibxcCalls() { handles_->free_bitmap(); }

int LibxcCalls::do_domain_info(DomainId domain, DomainInfo& out) {
    xc_dominfo_t info{};
    errno = 0;
    const int n = xc_domain_getinfo(handles_->xc.get(), domain, 1, &info);
    if (n < 0) return errno_of(n);
    // getinfo returns the next domain at or after `domain`: the wrong one means ours is gone.
    if (n == 0 || info.domid != domain) return ESRCH;
    out.id = info.domid;
    out.hvm = info.hvm;
    out.hap = info.hap;
    out.paused = info.paused;
    out.shutdown = info.shutdown;
    out.shutdown_reason = info.shutdown_reason;
    out.dying = info.dying;
    out.pages = info.nr_pages;
    out.vcpus = info.nr_online_vcpus;
    return 0;
}

int LibxcCalls::do_pause(DomainId domain) {
    errno = 0;
    return errno_of(xc_domain_pause(handles_->xc.get(), domain));
}

int LibxcCalls::do_unpause(DomainId domain) {
    errno = 0;
    return errno_of(xc_domain_unpause(handles_->xc.get(), domain));
}

int LibxcCalls::do_maximum_gpfn(DomainId domain, std::uint64_t& out) {
    xen_pfn_t gpfn = 0;
    errno = 0;
    const int rc = xc_domain_maximum_gpfn(handles_->xc.get(), domain, &gpfn);
    if (rc < 0) return errno_of(rc);
    out = gpfn;
    return 0;
}

int LibxcCalls::do_logdirty_enable(DomainId domain) {
    errno = 0;
    return errno_of(xc_logdirty_control(handles_->xc.get(), domain,
                                        XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, nullptr, 0, 0, nullptr));
}

int LibxcCalls::do_logdirty_off(DomainId domain) {
    errno = 0;
    return errno_of(xc_logdirty_control(handles_->xc.get(), domain, XEN_DOMCTL_SHADOW_OP_OFF, nullptr,
                                        0, 0, nullptr));
}

int LibxcCalls::do_logdirty_clean(DomainId domain, std::span<std::uint64_t> bitmap, std::uint64_t pages) {
    xc_interface* xch = handles_->xc.get();
    const std::size_t bytes = ((pages + 63) / 64) * 8;
    const auto need = static_cast<int>((bytes + XC_PAGE_SIZE - 1) / XC_PAGE_SIZE);
    if (need > handles_->bitmap_pages) {
        handles_->free_bitmap();
        errno = 0;
        if (xc__hypercall_buffer_alloc_pages(xch, &handles_->bitmap, need) == nullptr) {
            return failed_errno(ENOMEM);
        }
        handles_->bitmap_pages = need;
    }
    std::memset(handles_->bitmap.hbuf, 0, bytes);
    xc_shadow_op_stats_t stats{};
    errno = 0;
    const long long rc = xc_logdirty_control(xch, domain, XEN_DOMCTL_SHADOW_OP_CLEAN, &handles_->bitmap,
                                             pages, 0, &stats);
    if (rc < 0) return errno_of(rc);
    std::memcpy(bitmap.data(), handles_->bitmap.hbuf, bytes);
    return 0;
}

int LibxcCalls::do_hvm_context_size(DomainId domain, std::uint32_t& out) {
    errno = 0;
    const int rc = xc_domain_hvm_getcontext(handles_->xc.get(), domain, nullptr, 0);
    if (rc < 0) return errno_of(rc);
    out = static_cast<std::uint32_t>(rc);
    return 0;
}

int LibxcCalls::do_hvm_get_context(DomainId domain, std::span<std::byte> buffer, std::uint32_t& used) {
    errno = 0;
    const int rc = xc_domain_hvm_getcontext(handles_->xc.get(), domain,
                                            reinterpret_cast<std::uint8_t*>(buffer.data()),
                                            static_cast<std::uint32_t>(buffer.size()));
    if (rc < 0) return errno_of(rc);
    used = static_cast<std::uint32_t>(rc);
    return 0;
}

int LibxcCalls::do_hvm_set_context(DomainId domain, std::span<const std::byte> context) {
    // libxc copies the context into a bounce buffer; it only takes a non-const pointer.
    std::vector<std::byte> copy(context.begin(), context.end());
    errno = 0;
    return errno_of(xc_domain_hvm_setcontext(handles_->xc.get(), domain,
                                             reinterpret_cast<std::uint8_t*>(copy.data()),
                                             static_cast<std::uint32_t>(copy.size())));
}

int LibxcCalls::do_hvm_param(DomainId domain, std::uint32_t index, std::uint64_t& out) {
    errno = 0;
    return errno_of(xc_hvm_param_get(handles_->xc.get(), domain, index, &out));
}

int LibxcCalls::do_hvm_param_set(DomainId domain, std::uint32_t index, std::uint64_t value) {
    errno = 0;
    return errno_of(xc_hvm_param_set(handles_->xc.get(), domain, index, value));
}

int LibxcCalls::do_resume_cancelled(DomainId domain) {
    errno = 0;
    return errno_of(xc_domain_resume(handles_->xc.get(), domain, 1));
}

int LibxcCalls::do_evtchn_bind(DomainId domain, std::uint32_t remote_port, std::uint32_t& local_port) {
    if (!handles_->evtchn) {
        errno = 0;
        handles_->evtchn.reset(xenevtchn_open(nullptr, 0));
        if (!handles_->evtchn) return failed_errno();
    }
    errno = 0;
    const xenevtchn_port_or_error_t port = xenevtchn_bind_interdomain(handles_->evtchn.get(), domain, remote_port);
    if (port < 0) return failed_errno();
    local_port = static_cast<std::uint32_t>(port);
    return 0;
}

int LibxcCalls::do_evtchn_notify(std::uint32_t local_port) {
    if (!handles_->evtchn) return EBADF;
    errno = 0;
    return errno_of(xenevtchn_notify(handles_->evtchn.get(), local_port));
}

int LibxcCalls::do_xenstore_read(const std::string& path, std::string& out) {
    if (const int e = handles_->open_xenstore(); e != 0) return e;
    unsigned int length = 0;
    errno = 0;
    void* value = xs_read(handles_->xenstore.get(), XBT_NULL, path.c_str(), &length);
    if (value == nullptr) return failed_errno();
    out.assign(static_cast<const char*>(value), length);
    std::free(value);
    return 0;
}

int LibxcCalls::do_xenstore_write(const std::string& path, const std::string& value) {
    if (const int e = handles_->open_xenstore(); e != 0) return e;
    errno = 0;
    if (!xs_write(handles_->xenstore.get(), XBT_NULL, path.c_str(), value.data(),
                  static_cast<unsigned int>(value.size()))) {
        return failed_errno();
    }
    return 0;
}

int LibxcCalls::do_map_foreign(DomainId domain, MapAccess access, std::span<const Pfn> frames,
                               std::span<int> errors, std::byte*& out) {
    std::vector<xen_pfn_t> gfns(frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) gfns[i] = frames[i].value;
    const int prot = access == MapAccess::read_write ? PROT_READ | PROT_WRITE : PROT_READ;
    errno = 0;
    void* address = xenforeignmemory_map(handles_->foreign.get(), domain, prot, gfns.size(), gfns.data(),
                                         errors.data());
    if (address == nullptr) return failed_errno();
    // Linux privcmd hands back negative errno values per page; the seam promises positive ones.
    for (int& e : errors) e = e < 0 ? -e : e;
    out = static_cast<std::byte*>(address);
    return 0;
}

int LibxcCalls::do_unmap_foreign(std::byte* address, std::size_t pages) noexcept {
    errno = 0;
    return errno_of(xenforeignmemory_unmap(handles_->foreign.get(), address, pages));
}

int LibxcCalls::do_domain_by_name(const std::string& name, DomainId& out) {
    std::uint32_t domid = 0;
    // libxl returns its own ERROR_* codes, not errno; every failure here means "no such name".
    if (libxl_name_to_domid(handles_->libxl.get(), name.c_str(), &domid) != 0) return ESRCH;
    out = domid;
    return 0;
}

int LibxcCalls::do_domain_config(DomainId domain, std::string& json, const char*& failed_call) {
    LibxlDomainConfig config;
    errno = 0;
    failed_call = "libxl_retrieve_domain_configuration";
    if (const int rc = libxl_retrieve_domain_configuration(handles_->libxl.get(), domain, config.get(), nullptr);
        rc != 0) {
        return errno_of_libxl(rc);
    }
    failed_call = "libxl_domain_config_to_json";
    char* text = libxl_domain_config_to_json(handles_->libxl.get(), config.get());
    if (text == nullptr) return failed_errno(ENOMEM);
    json = text;
    std::free(text);
    return 0;
}

int LibxcCalls::do_create_domain(const std::string& config_json, const std::string& name, DomainId& out,
                                 const char*& failed_call) {
    LibxlDomainConfig config;
    errno = 0;
    failed_call = "libxl_domain_config_from_json";
    if (const int rc = libxl_domain_config_from_json(handles_->libxl.get(), config.get(), config_json.c_str());
        rc != 0) {
        return errno_of_libxl(rc);
    }
    const libxl_domain_config& c = *config.get();
    PeerDomainShape shape;
    shape.disks = c.num_disks;
    // NICs are built, but only from what describes the guest's own side (devid, MAC, model,
    // type, MTU): the peer's script, bridge, vifname, addresses and COLO proxy settings are host
    // resources of the peer, so this host's defaults (its own vif hotplug script) apply, and
    // colo-replicate's NIC takes the vif over anyway (xen/vif_nic.hpp). A NIC served by another
    // driver domain is refused.
    for (int i = 0; i < c.num_nics; ++i) {
        libxl_device_nic& nic = config.get()->nics[i];
        if (nic.backend_domid != 0 || nic.backend_domname != nullptr) {
            ++shape.nics;
            continue;
        }
        libxl_device_nic own;
        libxl_device_nic_init(&own);
        own.devid = nic.devid;
        own.mtu = nic.mtu;
        own.nictype = nic.nictype;
        std::memcpy(own.mac, nic.mac, sizeof own.mac);
        if (nic.model != nullptr) own.model = strdup(nic.model);
        libxl_device_nic_dispose(&nic);
        nic = own;
    }
    shape.pci = c.num_pcidevs;
    shape.usb = c.num_usbctrls + c.num_usbdevs;
    shape.vtpms = c.num_vtpms;
    shape.p9s = c.num_p9s;
    shape.channels = c.num_channels;
    shape.displays = c.num_vfbs + c.num_vkbs + c.num_vdispls + c.num_vsnds;
    shape.other = c.num_rdms + c.num_dtdevs + c.num_pvcallsifs;
    shape.bootloader = c.b_info.bootloader != nullptr || (c.b_info.type == LIBXL_DOMAIN_TYPE_PV && c.b_info.u.pv.bootloader != nullptr);
    shape.device_model = c.b_info.device_model != nullptr;
    if (const std::string why = refuse_peer_domain(shape); !why.empty()) throw Error(why);
    // libxl owns the config's strings (freed by dispose with free()).
    std::free(config.get()->c_info.name);
    config.get()->c_info.name = strdup(name.c_str());
    if (config.get()->c_info.name == nullptr) return ENOMEM;
    failed_call = "libxl_domain_create_new";
    constexpr auto kNoDomain = static_cast<std::uint32_t>(INVALID_DOMID);
    std::uint32_t domid = kNoDomain;
    errno = 0;
    const int rc = libxl_domain_create_new(handles_->libxl.get(), config.get(), &domid, nullptr, nullptr);
    if (rc != 0) {
        // A half-made domain (ERROR_ABORTED leaves one) must not outlive the failure.
        if (domid != kNoDomain) libxl_domain_destroy(handles_->libxl.get(), domid, nullptr);
        return errno_of_libxl(rc);
    }
    out = domid;
    return 0;
}

int LibxcCalls::do_rename_domain(DomainId domain, const std::string& from, const std::string& to) {
    errno = 0;
    return errno_of_libxl(libxl_domain_rename(handles_->libxl.get(), domain, from.c_str(), to.c_str()));
}

int LibxcCalls::do_destroy_domain(DomainId domain) {
    errno = 0;
    return errno_of_libxl(libxl_domain_destroy(handles_->libxl.get(), domain, nullptr));
}

}  // namespace colo::xen
