#include "toolstack/failover/open_witness.hpp"

namespace colo {

std::shared_ptr<Witness> open_witness(const std::string& url) {
    return std::make_shared<EtcdWitness>(parse_witness_url(url));
}

}  // namespace colo
