// What `receive` does once a sender has connected: read the guest's config and the replication
// setup, build the incoming guest (paused, same memory layout), serve it on a control socket under
// its own name, and run the Secondary until an outcome (replication.hpp):
//   migrated / failed over → the guest runs here and this process serves it until destroyed;
//   stopped (the primary ended protection) → the SVM is destroyed and this returns.
//
// Control requests besides the guest's own: `status`, `failover` (take over now).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "backends/guest_config.hpp"
#include "toolstack/failover/open_witness.hpp"
#include "toolstack/replication_link.hpp"

namespace colo {

namespace control {
class GuestService;
}

struct ReceiveOptions {
    std::optional<std::string> console_log;  // released output is written here by console offset
    // The copy of disk VDEV of guest NAME is DIR/NAME-VDEV.img; none: the primary's path (another
    // host, the same layout, as with xl remus and DRBD).
    std::optional<std::filesystem::path> disk_dir;
    bool console_to_stdout = false;
    std::chrono::milliseconds peer_timeout{800};
    // --witness: a takeover must first win the guest on it (ownership_arbiter.hpp); null: none.
    std::shared_ptr<Witness> witness;
    // Called with the incoming guest's service once it serves, and with nullptr before the
    // service ends: `receive` points SIGTERM/SIGINT at it (request_stop()).
    std::function<void(control::GuestService*)> on_service;
    // `receive CONFIG`: only a sender of this guest is taken, and the guest keeps this host's own
    // protection keys (a survivor's `protect NAME` then protects it back to its peer).
    std::string guest_name;
    ProtectionConfig protection;
    // --takeover manual: a lost primary is not taken over until `failover` (a cluster manager's).
    bool manual_takeover = false;
};

// What a sender asks for before anything is made on this host: its guest's config and the
// replication setup.
struct IncomingRequest {
    GuestConfig config;
    protocol::ReplicationSetup setup;
};

// Reads the request that follows an accepted stream header. Throws colo::Error (LinkDown when the
// sender went away or stayed silent) when there is none; the sender is told why where it listens.
// Nothing on this host has changed then: `receive` goes back to waiting for a sender.
// With `guest_name`, a sender of another guest is refused the same way.
[[nodiscard]] IncomingRequest read_incoming_request(ReplicationLink& link, std::chrono::milliseconds peer_timeout,
                                                    const std::string& guest_name = {});

// Returns the process exit code: 0 when the guest migrated here, failed over here and was later
// destroyed, or was stopped by the primary; throws colo::Error when the stream was bad (the SVM is
// destroyed, nothing of it is left running).
int serve_incoming_guest(ReplicationLink& link, const IncomingRequest& request, const ReceiveOptions& options);

}  // namespace colo
