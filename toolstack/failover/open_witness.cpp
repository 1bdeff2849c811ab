#include "toolstack/failover/witness.hpp"

namespace colo {

std::shared_ptr<Witness> open_witness(const std::string& url) {
    throw Error("--witness " + url + ": no witness client in this build yet");
}

}  // namespace colo
