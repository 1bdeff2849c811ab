// A guest image: a whole paused guest as one replication stream (man colo-replicate(7)), the
// format of `save` files. Written in one pass while the guest is paused:
//
//   StreamHeader GuestConfigText PageBatch* DeviceState* MigrationCommit{pages}
//
// All-zero pages are left out: an image is always loaded into fresh, zeroed guest memory.
#pragma once

#include <cstdint>

#include "backends/backend.hpp"
#include "backends/guest_config.hpp"
#include "toolstack/protocol/byte_stream.hpp"
#include "toolstack/protocol/messages.hpp"

namespace colo {

struct GuestImageStats {
    std::uint64_t pages = 0;        // pages written (non-zero ones)
    std::uint64_t state_records = 0;
};

// The guest must be paused (so memory and state agree).
GuestImageStats write_guest_image(Backend& backend, const GuestConfig& config, protocol::ByteSink& sink);

class GuestImageReader {
public:
    // Reads and checks the header and the config.
    explicit GuestImageReader(protocol::ByteSource& source);

    [[nodiscard]] const GuestConfig& config() const { return config_; }
    [[nodiscard]] const protocol::StreamHeader& header() const { return header_; }

    // Loads the rest into a fresh, paused backend built from config() (create_incoming). Checks
    // that the memory layouts match and the page count agrees with the commit record.
    GuestImageStats load_into(Backend& backend);

private:
    protocol::ByteSource& source_;
    protocol::StreamHeader header_;
    GuestConfig config_;
};

}  // namespace colo
