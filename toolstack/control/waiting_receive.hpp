// A `receive CONFIG` for guest NAME that has no sender yet has no control socket (the guest does
// not exist here), but `status NAME` and a cluster manager's monitor must still see it waiting:
// it leaves RUN_DIR/NAME.receive ("PID ADDRESS") for as long as it waits, locked (flock) by the
// waiting process, so a file left behind by one that died is told apart from one that waits.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "backends/unique_fd.hpp"

namespace colo::control {

class WaitingReceive {
public:
    // Written into the owned run dir; throws colo::SystemError.
    WaitingReceive(std::string guest_name, const std::string& listen_address);
    ~WaitingReceive();
    WaitingReceive(const WaitingReceive&) = delete;
    WaitingReceive& operator=(const WaitingReceive&) = delete;

private:
    std::string guest_name_;
    UniqueFd lock_;
};

struct WaitingReceiveInfo {
    pid_t pid = 0;
    std::string listen_address;
};

// The receive waiting for NAME, when one left its file and still holds its lock.
[[nodiscard]] std::optional<WaitingReceiveInfo> find_waiting_receive(const std::string& guest_name);

}  // namespace colo::control
