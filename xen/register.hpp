// Adds the "xen" backend to a registry: the libxenctrl backend when built with Xen support,
// otherwise a stub whose every use fails with a clear message.
#pragma once

#include "backends/backend_registry.hpp"

namespace colo::xen {

void register_backend(BackendRegistry& registry);

}  // namespace colo::xen
