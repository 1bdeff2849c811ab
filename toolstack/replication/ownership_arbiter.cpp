#include "toolstack/replication/ownership_arbiter.hpp"

#include <unistd.h>

#include <cstdio>
#include <random>
#include <thread>

#include "backends/error.hpp"

namespace colo {

OwnershipArbiter::OwnershipArbiter(std::shared_ptr<Witness> witness, std::string guest, std::string self)
    : witness_(std::move(witness)), guest_(std::move(guest)), self_(std::move(self)) {}

std::string OwnershipArbiter::owner_id(const std::string& role, const std::string& guest) {
    char host[256] = "?";
    (void)::gethostname(host, sizeof host - 1);
    std::random_device random;
    char tag[16];
    std::snprintf(tag, sizeof tag, "%08x", static_cast<unsigned>(random()));
    return role + " " + guest + "@" + host + " pid " + std::to_string(::getpid()) + " " + tag;
}

void OwnershipArbiter::claim_at_protect() {
    // Another protect (or a takeover) may move the key between our read and our claim: read again.
    for (int attempt = 0; attempt < 5; ++attempt) {
        const Owner before = witness_->read_owner(guest_);
        Owner now;
        if (witness_->claim(guest_, self_, before.revision, &now)) {
            std::lock_guard lock(mutex_);
            known_ = now;
            return;
        }
    }
    throw Error("the witness " + witness_->describe() + " would not let this host claim " + guest_ +
                ": its owner keeps changing (another protect or takeover of the same guest?)");
}

void OwnershipArbiter::learn_owner() {
    const Owner now = witness_->read_owner(guest_);
    if (now.revision == 0) {
        throw Error("the witness " + witness_->describe() + " names no owner of " + guest_ +
                    " (give the primary's protect the same --witness as this receive)");
    }
    std::lock_guard lock(mutex_);
    known_ = now;
}

OwnershipArbiter::Verdict OwnershipArbiter::arbitrate(const std::function<bool()>& give_up,
                                                      const std::function<void(const std::string&, bool)>& waiting,
                                                      std::chrono::milliseconds retry) noexcept {
    Owner from;
    {
        std::lock_guard lock(mutex_);
        from = known_;
    }
    for (bool first = true;; first = false) {
        if (give_up()) return Verdict::gave_up;
        try {
            Owner now;
            if (witness_->claim(guest_, self_, from.revision, &now)) {
                std::lock_guard lock(mutex_);
                known_ = now;
                return Verdict::won;
            }
            // A claim whose answer was lost may have been applied: then the key names us (owner
            // ids are unique per process), and this retry found it moved by our own hand.
            now = witness_->read_owner(guest_);
            std::lock_guard lock(mutex_);
            known_ = now;
            if (now.id == self_) return Verdict::won;
            winner_ = now.id.empty() ? "(nobody: the key was removed)" : now.id;
            return Verdict::lost;
        } catch (const std::exception& e) {
            // Unreachable, or an answer we cannot read: nobody goes live on a guess.
            try {
                waiting(e.what(), first);
            } catch (...) {
            }
        }
        const auto until = std::chrono::steady_clock::now() + retry;
        while (std::chrono::steady_clock::now() < until && !give_up()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::string OwnershipArbiter::describe() const {
    std::lock_guard lock(mutex_);
    return witness_->describe() + ": owner " + (known_.id.empty() ? "-" : known_.id) + " at revision " + std::to_string(known_.revision);
}

std::string OwnershipArbiter::winner() const {
    std::lock_guard lock(mutex_);
    return winner_;
}

}  // namespace colo
