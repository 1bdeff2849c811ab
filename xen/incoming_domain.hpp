// The receiving side's own Xen domain for an incoming guest (a protected guest's secondary, a
// migration target), made the way `xl migrate`'s receiving side makes it: built by libxl from the
// sender's domain configuration (libxl's JSON, GuestConfig::domain_config), paused, under the
// temporary name NAME--incoming, because on one Xen host the sender's domain still holds NAME.
//
// Lifecycle: created → (commit) committed. commit() is the takeover or the migration's end: the
// domain is renamed to NAME if no other domain holds it; if one does (the old primary on the same
// host), it keeps NAME--incoming and commit() says so. Until commit() the destructor destroys the
// domain, so a replication that fails before takeover leaves no half-filled domain behind.
#pragma once

#include <string>

#include "xen/xen_calls.hpp"

namespace colo::xen {

// "NAME--incoming", the name xl gives a domain while it receives a migration.
[[nodiscard]] std::string incoming_name(const std::string& name);

class IncomingDomain {
public:
    // Builds the domain through `calls` (which must outlive this object).
    IncomingDomain(XenCalls& calls, const std::string& config_json, std::string name);
    // Destroys the domain unless committed; never throws (a failure is reported on stderr).
    ~IncomingDomain();
    IncomingDomain(const IncomingDomain&) = delete;
    IncomingDomain& operator=(const IncomingDomain&) = delete;

    [[nodiscard]] DomainId id() const noexcept { return id_; }
    // The name the domain has now: NAME--incoming, or NAME once committed and renamed.
    [[nodiscard]] const std::string& current_name() const noexcept { return current_name_; }
    [[nodiscard]] bool committed() const noexcept { return committed_; }

    // Makes the domain the guest's: it is no longer destroyed with this object, and it takes the
    // guest's name if that is free. Returns what happened, for the log. A second call does nothing
    // and returns "". Throws SystemError if the rename itself fails (the domain stays committed).
    [[nodiscard]] std::string commit();

private:
    XenCalls& calls_;
    std::string name_;          // the guest's name, NAME
    std::string current_name_;  // what Xen calls the domain now
    DomainId id_ = 0;
    bool committed_ = false;
};

}  // namespace colo::xen
