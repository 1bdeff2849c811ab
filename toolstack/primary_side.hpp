// The replication requests of a guest this host runs as the primary: `protect`, `migrate` and
// `status` on its control socket. The pipeline (toolstack/replication/) does the work; this
// sets up the link the way replication.hpp describes and owns the pipeline's thread.
//
// Control requests (one line each, see control_socket.hpp):
//   protect HOST:PORT [mode=colo|remus] [interval=MS] [stream=0|1] [stream_period=MS]
//           [stream_threshold=PAGES] [heartbeat_timeout=MS] [cache_backup=0|1] [early_resume=0|1]
//       → ok once the link is up and the initial sync has started
//   migrate HOST:PORT [heartbeat_timeout=MS] → data "downtime_us=.. passes=.. pages=.. bytes=..", then
//       the guest here is destroyed. The migration runs on a thread of its own and the request is
//       answered when it ends; meanwhile the control loop goes on serving (`list` and `info` show
//       mode "migrating", `status` state "migrating").
//   status → data "key value" lines (status_fields.hpp)
//
// Who owns the guest (GuestService::set_owner_check): the pipeline, while the guest is a
// secondary, is protected (syncing or protected) or is being migrated; the operator otherwise.
//
// Threading: the requests run on the control thread; the protection's pipeline and a migration
// each run on their own thread, never both at once (each is refused while the other runs).
//
// A guest that arrived here (the destination of a migration, or a secondary that took over) is a
// primary like any other once it runs here: `receive` gives it a PrimarySide too, so it can be
// protected again by a new secondary, or migrated on.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "toolstack/status_fields.hpp"

#include "toolstack/control/guest_service.hpp"
#include "toolstack/replication/colo_primary.hpp"
#include "toolstack/replication_link.hpp"

namespace colo {

class PrimarySide {
public:
    // For a guest that arrived by a replication stream, and where its console stream stands.
    struct Arrival {
        // Why the guest cannot be protected or migrated yet (it is still a secondary), or "".
        std::function<std::string()> not_yet_primary;
        // Where its console stream stands, so released output keeps its offsets across hosts
        // (a guest created here: the console fan-out's next offset).
        std::function<std::uint64_t()> console_offset;
    };

    explicit PrimarySide(control::GuestService& service, Arrival arrival = {});
    // Ends protection (the secondary is told, so it does not take over) and joins the pipeline.
    ~PrimarySide();
    PrimarySide(const PrimarySide&) = delete;
    PrimarySide& operator=(const PrimarySide&) = delete;

    // True once protect was asked here; status() then describes that protection.
    [[nodiscard]] bool protection_started() const { return primary_ != nullptr; }
    [[nodiscard]] StatusFields status() const;

private:
    // `save PATH [keep]`: the guest's image to a file; without keep the guest then ends here.
    void save(const std::vector<std::string>& args, control::Reply& reply);
    void protect(const std::vector<std::string>& args);
    // `handover`: the last checkpoint, then this copy ends (Primary::request_handover).
    void hand_over(control::Reply& reply);
    // The primary marker (control/primary_marker.hpp) goes unless the secondary may run the guest.
    void forget_marker_unless_secondary_may_run() noexcept;
    void refuse_unless_primary() const;
    // Checks the request (a bad one is answered at once, by throwing), then takes `client` and
    // starts the migration's thread, which answers it when the migration ends.
    void migrate(const std::vector<std::string>& args, UniqueFd& client);
    [[nodiscard]] bool protecting() const;
    // What the guest is while the pipeline owns it, for GuestService's refusals; "" otherwise.
    [[nodiscard]] std::string owner() const;
    void stop_migration();

    control::GuestService& service_;
    Arrival arrival_;
    std::string link_security_ = "-";  // status: how the protection's link is secured
    std::unique_ptr<ReplicationLink> link_;
    std::unique_ptr<Primary> primary_;
    std::jthread worker_;

    std::atomic<bool> migrating_{false};  // set on the control thread, cleared by a failed migration
    mutable std::mutex migration_mutex_;
    // Guarded by migration_mutex_: the running migration's link, closed on destruction, and
    // whether destruction began (a migration still connecting then stops before it sends).
    Channel* migration_channel_ = nullptr;
    bool migration_cancelled_ = false;
    const PrecopySender* migration_sender_ = nullptr;  // its progress, while the pre-copy runs
    std::jthread migration_;
};

}  // namespace colo
