// Built instead of register_stub.cpp when SCons found libxen-dev. The "xen" backend:
//   create           attaches to the running domain named by the config (made with `xl create`;
//                    libxl resolves the name);
//   create_incoming  builds the receiving side's own domain from the sender's libxl configuration
//                    (GuestConfig::domain_config), paused, as NAME--incoming (incoming_domain.hpp).
// Opening the libxc handles needs dom0 privileges.
#include <memory>

#include "backends/error.hpp"
#include "xen/libxc_calls.hpp"
#include "xen/register.hpp"
#include "xen/xen_backend.hpp"

namespace colo::xen {

void register_backend(BackendRegistry& registry) {
    const auto attach = [](const GuestConfig& config) -> std::unique_ptr<Backend> {
        if (!config.disks.empty()) {
            throw Error("xen: disk is for the KVM backend; a Xen domain's disks are those of its xl config, "
                        "and colo-replicate does not replicate them yet");
        }
        auto calls = std::make_unique<LibxcCalls>();
        const DomainId domain = calls->domain_by_name(config.name);
        return std::make_unique<XenBackend>(std::move(calls), domain, config.name, MapCache::kDefaultChunkPages,
                                            parse_checkpoint_style(config.checkpoint_style), config.vifs);
    };
    const auto incoming = [](const GuestConfig& config) -> std::unique_ptr<Backend> {
        if (config.domain_config.empty()) {
            throw Error("xen: no libxl domain configuration came with guest '" + config.name +
                        "': a Xen domain is built only from a sender's (protect or migrate), "
                        "not from an image or a colo-replicate config");
        }
        return std::make_unique<XenBackend>(std::make_unique<LibxcCalls>(),
                                            IncomingGuest{config.name, config.domain_config, config.vifs});
    };
    registry.add(BackendFactory{"xen",
                                "Xen (libxenctrl; attaches to a running PVH/HVM domain by name, "
                                "builds a receiver's domain with libxl)",
                                true, attach, incoming});
}

}  // namespace colo::xen
