// A guest's declared protection (GuestConfig::protection, man colo-replicate.cfg(5)) as the
// guest's process hands it to a `protect NAME` that names nothing itself: "KEY VALUE" lines over
// the control socket, one per key that is set, read back by protection_from_lines.
#pragma once

#include <string>
#include <vector>

#include "backends/guest_config.hpp"

namespace colo {

[[nodiscard]] std::vector<std::string> protection_lines(const ProtectionConfig& protection);
// Unknown keys are skipped (a newer guest process may say more than this command knows).
[[nodiscard]] ProtectionConfig protection_from_lines(const std::vector<std::string>& lines);

}  // namespace colo
