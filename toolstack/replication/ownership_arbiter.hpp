// Which copy of a protected guest may go live, decided on a witness (an etcd key naming the
// guest's owner, changed only by compare-and-swap on its revision: toolstack/failover/witness.hpp).
//
// Without it a partition of the replication link makes two live copies: the secondary takes over
// because it hears nothing, and the primary goes on because it hears nothing either. With it:
//   - `protect` makes the primary the owner (claim_at_protect); the secondary notes the owner's
//     revision when protection starts (learn_owner);
//   - a secondary that lost its primary, and a primary that lost its secondary, each claim the
//     guest from that revision before going live (arbitrate). One compare-and-swap wins; the other
//     finds the revision moved and stops its copy for good;
//   - while the witness cannot be reached, neither goes live: the secondary waits, the primary
//     holds its output (its guest paused), both retrying.
// A primary that won goes on unprotected at the new revision (a later protect claims again).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "toolstack/failover/witness.hpp"

namespace colo {

class OwnershipArbiter {
public:
    enum class Verdict { won, lost, gave_up };

    // `self` names this side in the witness ("primary web1@hostA pid 4711 5f3a..."): owner_id().
    OwnershipArbiter(std::shared_ptr<Witness> witness, std::string guest, std::string self);

    // A side's id: ROLE GUEST@HOSTNAME pid PID and 8 random hex digits (a restarted process with
    // the same pid is another owner).
    [[nodiscard]] static std::string owner_id(const std::string& role, const std::string& guest);

    // The primary at protect: it runs the guest, so it becomes the owner, from whatever revision
    // the key has. Throws WitnessUnreachable (protect then fails: no protection that could not be
    // arbitrated) or colo::Error.
    void claim_at_protect();
    // The secondary when protection starts: the owner's id and revision, claimed from later.
    void learn_owner();

    // Before going live: one compare-and-swap from the remembered revision. While the witness
    // cannot be reached, tries again every `retry`, calling `waiting(why, first)` each time (first:
    // the first time, for a log line said once); `give_up()`
    // returning true ends the wait (gave_up: stopping, destroyed). Never throws.
    Verdict arbitrate(const std::function<bool()>& give_up, const std::function<void(const std::string&, bool)>& waiting,
                      std::chrono::milliseconds retry = std::chrono::milliseconds(250)) noexcept;

    // "etcd://10.0.0.5:2379: owner <id> at revision R" (or the last failure), for status and logs.
    [[nodiscard]] std::string describe() const;
    // After a lost arbitration: the owner that won.
    [[nodiscard]] std::string winner() const;
    [[nodiscard]] const std::string& self() const noexcept { return self_; }

private:
    std::shared_ptr<Witness> witness_;
    std::string guest_;
    std::string self_;
    mutable std::mutex mutex_;
    Owner known_;        // the owner as last read or claimed
    std::string winner_;
};

}  // namespace colo
