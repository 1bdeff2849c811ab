// The replication requests of a guest this host runs as the primary: `protect`, `migrate` and
// `status` on its control socket. The pipeline (toolstack/replication/) does the work; this
// sets up the link the way replication.hpp describes and owns the pipeline's thread.
//
// Control requests (one line each, see control_socket.hpp):
//   protect HOST:PORT [mode=colo|remus] [interval=MS] [stream=0|1] [stream_period=MS]
//           [stream_threshold=PAGES] [heartbeat_timeout=MS] [cache_backup=0|1] [early_resume=0|1]
//       → ok once the link is up and the initial sync has started
//   migrate HOST:PORT [heartbeat_timeout=MS] → data "downtime_us=.. passes=.. pages=.. bytes=..", then
//       the guest here is destroyed
//   status → data "key value" lines (status_fields.hpp)
#pragma once

#include <memory>
#include <thread>

#include "toolstack/control/guest_service.hpp"
#include "toolstack/replication/colo_primary.hpp"
#include "toolstack/replication_link.hpp"

namespace colo {

class PrimarySide {
public:
    explicit PrimarySide(control::GuestService& service);
    // Ends protection (the secondary is told, so it does not take over) and joins the pipeline.
    ~PrimarySide();
    PrimarySide(const PrimarySide&) = delete;
    PrimarySide& operator=(const PrimarySide&) = delete;

private:
    void protect(const std::vector<std::string>& args);
    std::string migrate(const std::vector<std::string>& args);
    [[nodiscard]] bool protecting() const;

    control::GuestService& service_;
    std::unique_ptr<ReplicationLink> link_;
    std::unique_ptr<Primary> primary_;
    std::jthread worker_;
};

}  // namespace colo
