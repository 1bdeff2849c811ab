// An in-memory Witness for unit tests of the failover paths (beside FakeBackend): the claim rules
// of EtcdWitness (tests/witness/witness_contract.hpp checks both the same way), one revision
// counter for all keys as etcd has, and set_reachable(false) to make every call throw
// WitnessUnreachable, as etcd cut off or frozen would. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "toolstack/failover/witness.hpp"

namespace colo::test {

class FakeWitness final : public Witness {
public:
    [[nodiscard]] Owner read_owner(const std::string& name) override {
        const std::lock_guard lock(mutex_);
        arrive();
        const auto it = owners_.find(name);
        return it == owners_.end() ? Owner{} : it->second;
    }

    [[nodiscard]] bool claim(const std::string& name, const std::string& new_owner_id, std::int64_t expected_revision,
                             Owner* now = nullptr) override {
        const std::lock_guard lock(mutex_);
        arrive();
        Owner& owner = owners_[name];  // {"", 0}: absent, as etcd compares a missing key
        const bool won = owner.revision == expected_revision;
        if (won) owner = Owner{new_owner_id, ++revision_};
        if (now != nullptr) *now = owner;
        return won || owner.id == new_owner_id;
    }

    [[nodiscard]] std::string describe() const override { return "fake://witness"; }

    void set_reachable(bool reachable) {
        const std::lock_guard lock(mutex_);
        reachable_ = reachable;
    }
    // Calls that reached the witness or were refused by set_reachable(false).
    [[nodiscard]] int calls() const {
        const std::lock_guard lock(mutex_);
        return calls_;
    }

private:
    void arrive() {
        ++calls_;
        if (!reachable_) throw WitnessUnreachable("witness fake://witness: unreachable (set_reachable(false))");
    }

    mutable std::mutex mutex_;
    std::map<std::string, Owner> owners_;
    std::int64_t revision_ = 1;  // etcd's store starts at revision 1
    bool reachable_ = true;
    int calls_ = 0;
};

}  // namespace colo::test
