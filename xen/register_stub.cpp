// Built instead of the real Xen backend when SCons found no libxen-dev (xen=no or xen=auto
// without it), so a Xen command fails with one clear line instead of a link error.
#include "backends/error.hpp"
#include "xen/register.hpp"

namespace colo::xen {

void register_backend(BackendRegistry& registry) {
    const auto unsupported = [](const GuestConfig&) -> std::unique_ptr<Backend> {
        throw Error("colo-replicate was built without Xen support");
    };
    registry.add(BackendFactory{"xen", "Xen (not compiled in: rebuild with libxen-dev and xen=yes)", false,
                                unsupported, unsupported});
}

}  // namespace colo::xen
