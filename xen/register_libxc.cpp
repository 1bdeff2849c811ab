// Built instead of register_stub.cpp when SCons found libxen-dev: the "xen" backend attaches to
// the running domain named by the config (create it with `xl create` first; libxl resolves the
// name). Opening the libxc handles needs dom0 privileges.
#include <memory>

#include "xen/libxc_calls.hpp"
#include "xen/register.hpp"
#include "xen/xen_backend.hpp"

namespace colo::xen {

void register_backend(BackendRegistry& registry) {
    // Xen builds and boots domains itself (xl); the backend attaches to the one named in the
    // config. The primary's domain runs the guest; a secondary's is created paused (`xl create
    // -p`) with the same config and receives memory and state: both attach the same way.
    const auto attach = [](const GuestConfig& config) -> std::unique_ptr<Backend> {
        auto calls = std::make_unique<LibxcCalls>();
        const DomainId domain = calls->domain_by_name(config.name);
        return std::make_unique<XenBackend>(std::move(calls), domain, config.name);
    };
    registry.add(BackendFactory{"xen", "Xen (libxenctrl; attaches to a running PVH/HVM domain by name)", true,
                                attach, attach});
}

}  // namespace colo::xen
