// The registry of every backend this binary was built with.
#pragma once

#include "backends/backend_registry.hpp"

namespace colo {

[[nodiscard]] const BackendRegistry& backends_available();

}  // namespace colo
