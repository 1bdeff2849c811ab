#include "xen/xen_calls.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "backends/error.hpp"
#include "xen/foreign_mapping.hpp"

namespace colo::xen {

namespace {

std::string on_domain(DomainId domain) { return "domain " + std::to_string(domain); }

void check(int error_number, const char* operation, DomainId domain) {
    if (error_number != 0) throw SystemError(operation, error_number, on_domain(domain));
}

}  // namespace

DomainInfo XenCalls::domain_info(DomainId domain) {
    DomainInfo info;
    check(do_domain_info(domain, info), "xc_domain_getinfo", domain);
    return info;
}

void XenCalls::pause(DomainId domain) { check(do_pause(domain), "xc_domain_pause", domain); }

void XenCalls::unpause(DomainId domain) { check(do_unpause(domain), "xc_domain_unpause", domain); }

Pfn XenCalls::maximum_gpfn(DomainId domain) {
    std::uint64_t gpfn = 0;
    check(do_maximum_gpfn(domain, gpfn), "xc_domain_maximum_gpfn", domain);
    return Pfn{gpfn};
}

void XenCalls::logdirty_enable(DomainId domain) {
    check(do_logdirty_enable(domain), "xc_shadow_control(ENABLE_LOGDIRTY)", domain);
}

void XenCalls::logdirty_off(DomainId domain) {
    check(do_logdirty_off(domain), "xc_shadow_control(OFF)", domain);
}

void XenCalls::logdirty_clean(DomainId domain, std::span<std::uint64_t> bitmap, std::uint64_t pages) {
    if (bitmap.size() * 64 < pages) {
        throw Error("xc_shadow_control(CLEAN): bitmap of " + std::to_string(bitmap.size() * 64) +
                    " bits cannot hold " + std::to_string(pages) + " frames");
    }
    check(do_logdirty_clean(domain, bitmap, pages), "xc_shadow_control(CLEAN)", domain);
}

std::vector<std::byte> XenCalls::hvm_get_context(DomainId domain) {
    std::uint32_t size = 0;
    check(do_hvm_context_size(domain, size), "xc_domain_hvm_getcontext(size)", domain);
    std::vector<std::byte> context(size);
    std::uint32_t used = 0;
    check(do_hvm_get_context(domain, context, used), "xc_domain_hvm_getcontext", domain);
    // The size query is an upper bound; the context proper is usually shorter.
    if (used > size) throw SystemError("xc_domain_hvm_getcontext", EOVERFLOW, on_domain(domain));
    context.resize(used);
    return context;
}

void XenCalls::hvm_set_context(DomainId domain, std::span<const std::byte> context) {
    check(do_hvm_set_context(domain, context), "xc_domain_hvm_setcontext", domain);
}

std::uint64_t XenCalls::hvm_param(DomainId domain, std::uint32_t index) {
    std::uint64_t value = 0;
    const std::string operation = "xc_hvm_param_get(" + std::to_string(index) + ")";
    check(do_hvm_param(domain, index, value), operation.c_str(), domain);
    return value;
}

void XenCalls::hvm_param_set(DomainId domain, std::uint32_t index, std::uint64_t value) {
    const std::string operation = "xc_hvm_param_set(" + std::to_string(index) + ")";
    check(do_hvm_param_set(domain, index, value), operation.c_str(), domain);
}

ForeignMapping XenCalls::map_foreign(DomainId domain, MapAccess access, std::span<const Pfn> frames,
                                     std::span<int> errors) {
    if (errors.size() != frames.size() || frames.empty()) {
        throw Error("xenforeignmemory_map: " + std::to_string(frames.size()) + " frames but " +
                    std::to_string(errors.size()) + " error slots");
    }
    std::byte* address = nullptr;
    check(do_map_foreign(domain, access, frames, errors, address), "xenforeignmemory_map", domain);
    if (address == nullptr) throw SystemError("xenforeignmemory_map", EFAULT, on_domain(domain));
    return ForeignMapping(this, address, frames.size());
}

DomainId XenCalls::domain_by_name(const std::string& name) {
    DomainId domain = 0;
    if (const int e = do_domain_by_name(name, domain); e != 0) {
        throw SystemError("libxl_name_to_domid", e, "no running domain named '" + name + "'");
    }
    return domain;
}

std::optional<DomainId> XenCalls::find_domain_by_name(const std::string& name) {
    DomainId domain = 0;
    const int e = do_domain_by_name(name, domain);
    if (e == ESRCH || e == ENOENT) return std::nullopt;
    if (e != 0) throw SystemError("libxl_name_to_domid", e, "looking up '" + name + "'");
    return domain;
}

std::string XenCalls::domain_config(DomainId domain) {
    std::string json;
    const char* failed_call = "libxl_domain_config_to_json";
    const int e = do_domain_config(domain, json, failed_call);  // sets failed_call: call it first
    check(e, failed_call, domain);
    if (json.empty()) throw SystemError(failed_call, ENODATA, on_domain(domain));
    return json;
}

DomainId XenCalls::create_domain(const std::string& config_json, const std::string& name) {
    if (config_json.empty()) throw Error("libxl_domain_config_from_json: no domain configuration for '" + name + "'");
    DomainId domain = 0;
    const char* failed_call = "libxl_domain_create_new";
    if (const int e = do_create_domain(config_json, name, domain, failed_call); e != 0) {
        throw SystemError(failed_call, e, "domain '" + name + "'");
    }
    return domain;
}

void XenCalls::resume_cancelled(DomainId domain) {
    check(do_resume_cancelled(domain), "xc_domain_resume(fast)", domain);
}

std::uint32_t XenCalls::evtchn_bind(DomainId domain, std::uint32_t remote_port) {
    std::uint32_t local = 0;
    if (const int e = do_evtchn_bind(domain, remote_port, local); e != 0) {
        throw SystemError("xenevtchn_bind_interdomain", e, on_domain(domain) + " port " + std::to_string(remote_port));
    }
    return local;
}

void XenCalls::evtchn_notify(std::uint32_t local_port) {
    if (const int e = do_evtchn_notify(local_port); e != 0) {
        throw SystemError("xenevtchn_notify", e, "port " + std::to_string(local_port));
    }
}

std::optional<std::string> XenCalls::xenstore_read(const std::string& path) {
    std::string value;
    const int e = do_xenstore_read(path, value);
    if (e == ENOENT) return std::nullopt;
    if (e != 0) throw SystemError("xs_read", e, path);
    return value;
}

void XenCalls::xenstore_write(const std::string& path, const std::string& value) {
    if (const int e = do_xenstore_write(path, value); e != 0) throw SystemError("xs_write", e, path);
}

void XenCalls::rename_domain(DomainId domain, const std::string& from, const std::string& to) {
    if (const int e = do_rename_domain(domain, from, to); e != 0) {
        throw SystemError("libxl_domain_rename", e, on_domain(domain) + " from '" + from + "' to '" + to + "'");
    }
}

void XenCalls::destroy_domain(DomainId domain) {
    check(do_destroy_domain(domain), "libxl_domain_destroy", domain);
}

void XenCalls::unmap_foreign(std::byte* address, std::size_t pages) noexcept {
    // Runs in a destructor: a failed unmap leaks address space but must not throw, so it is
    // reported and the backend carries on.
    if (const int e = do_unmap_foreign(address, pages); e != 0) {
        std::fprintf(stderr, "colo-replicate: xenforeignmemory_unmap of %zu pages: %s\n", pages,
                     std::strerror(e));
    }
}

}  // namespace colo::xen
