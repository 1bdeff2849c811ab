// XenCalls on the real libraries: libxenctrl for domain control, libxenforeignmemory for mapping
// guest frames, libxenlight for names and for building, renaming and destroying whole domains, libxenguest for
// resuming a suspended one, libxenstore for asking a guest to suspend. Built only when SCons found
// libxen-dev (env['HAVE_XEN']); nothing outside xen/ includes it.
//
// Each handle is one std::unique_ptr with a deleter that closes it (STYLE §1). Opening needs a
// privileged dom0 (/dev/xen/privcmd); a failure says which handle could not be opened.
#pragma once

#include <cstdint>
#include <memory>

#include "xen/xen_calls.hpp"

namespace colo::xen {

class LibxcCalls final : public XenCalls {
public:
    LibxcCalls();  // opens all three handles; throws SystemError naming the one that failed
    ~LibxcCalls() override;

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
    // The libraries' types stay in the .cpp; these are their owners.
    struct Handles;
    std::unique_ptr<Handles> handles_;
};

}  // namespace colo::xen
