#include "toolstack/replication/replication_setup.hpp"

#include <string>

#include "backends/error.hpp"

namespace colo {

protocol::ReplicationSetup setup_for_protection(const PrimaryConfig& config) {
    protocol::ReplicationSetup setup;
    setup.purpose = config.mode == ProtectionMode::colo ? protocol::ReplicationPurpose::colo
                                                        : protocol::ReplicationPurpose::remus;
    setup.cache_backup = config.cache_backup;
    return setup;
}

protocol::ReplicationSetup setup_for_migration() {
    protocol::ReplicationSetup setup;
    setup.purpose = protocol::ReplicationPurpose::migrate;
    setup.cache_backup = false;
    return setup;
}

SecondaryConfig secondary_config_for(const protocol::ReplicationSetup& setup, SecondaryConfig base) {
    switch (setup.purpose) {
        case protocol::ReplicationPurpose::migrate:
            base.cache_backup = false;
            return base;
        case protocol::ReplicationPurpose::colo:
            base.mode = ProtectionMode::colo;
            base.cache_backup = setup.cache_backup;
            return base;
        case protocol::ReplicationPurpose::remus:
            base.mode = ProtectionMode::remus;
            base.cache_backup = setup.cache_backup;
            return base;
    }
    throw Error("replication-setup: unknown purpose " + std::to_string(static_cast<std::uint32_t>(setup.purpose)));
}

}  // namespace colo
