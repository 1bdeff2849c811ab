#include "backends/backend.hpp"

namespace colo {

const char* to_string(BackendKind kind) {
    switch (kind) {
        case BackendKind::fake: return "fake";
        case BackendKind::kvm: return "kvm";
        case BackendKind::xen: return "xen";
    }
    return "unknown";
}

}  // namespace colo
