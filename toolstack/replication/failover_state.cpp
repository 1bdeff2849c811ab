#include "toolstack/replication/failover_state.hpp"

namespace colo {

const char* to_string(Role role) {
    switch (role) {
        case Role::syncing: return "syncing";
        case Role::protecting: return "protecting";
        case Role::unprotected: return "unprotected";
        case Role::failing_over: return "failing-over";
        case Role::active: return "active";
        case Role::stopped: return "stopped";
    }
    return "unknown";
}

}  // namespace colo
