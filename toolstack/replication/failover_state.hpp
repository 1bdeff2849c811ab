// A replication side's role, changed only by compare-and-swap so that when several parties race
// to change it (the peer-timeout check, a link error, an operator's `failover` request) exactly
// one wins and performs the change; the others see they lost and do nothing.
#pragma once

#include <atomic>
#include <cstdint>

namespace colo {

enum class Role : std::uint8_t {
    syncing,      // primary: initial migration; secondary: receiving it
    protecting,   // primary and secondary: replication in force
    unprotected,  // primary: the secondary is gone, the PVM runs alone
    failing_over, // secondary: taking over (transient)
    active,       // secondary after failover or migration: it is the running guest now
    stopped,      // replication ended on purpose or by error
};

[[nodiscard]] const char* to_string(Role role);

class FailoverState {
public:
    explicit FailoverState(Role initial) : role_(initial) {}

    [[nodiscard]] Role role() const { return role_.load(); }
    // Moves from `from` to `to`; false (and no change) when the role was not `from`.
    [[nodiscard]] bool transition(Role from, Role to) {
        return role_.compare_exchange_strong(from, to);
    }

private:
    std::atomic<Role> role_;
};

}  // namespace colo
