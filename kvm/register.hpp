// Adds the "kvm" backend (our own VMM on /dev/kvm) to a registry.
#pragma once

#include "backends/backend_registry.hpp"

namespace colo::kvm {

void register_backend(BackendRegistry& registry);

}  // namespace colo::kvm
