// Built instead of register_stub.cpp when SCons found libxen-dev. The "xen" backend:
//   create           attaches to the running domain named by the config (made with `xl create`;
//                    libxl resolves the name);
//   create_incoming  builds the receiving side's own domain from the sender's libxl configuration
//                    (GuestConfig::domain_config), paused, as NAME--incoming (incoming_domain.hpp);
//                    `restore` the same from the configuration `save` put into the image.
//   name_taken       a domain of that name exists (restore refuses then).
// Opening the libxc handles needs dom0 privileges.
#include <memory>
#include <string>

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
                        "': a Xen domain is built only from a sender's (protect or migrate) or from an image "
                        "`save` wrote with it, not from a colo-replicate config (or an image saved without it)");
        }
        return std::make_unique<XenBackend>(std::make_unique<LibxcCalls>(),
                                            IncomingGuest{config.name, config.domain_config, config.vifs});
    };
    // A restored domain is built as NAME--incoming and renamed to NAME once loaded: a domain that
    // holds NAME already would leave it half-named, so restore asks first.
    const auto name_taken = [](const std::string& name) -> std::string {
        LibxcCalls calls;
        if (const auto holder = calls.find_domain_by_name(name)) {
            return "a domain named '" + name + "' exists (xen domain " + std::to_string(*holder) + ")";
        }
        return {};
    };
    registry.add(BackendFactory{"xen",
                                "Xen (libxenctrl; attaches to a running PVH/HVM domain by name, "
                                "builds a receiver's or a restored domain with libxl)",
                                true, attach, incoming, name_taken});
}

}  // namespace colo::xen
