// The hash the initial sync of a disk compares blocks by (disk-hashes, man colo-replicate(7)):
// SHA-256, so that "the secondary's copy already holds this block" is never wrong by accident.
#pragma once

#include <array>
#include <cstddef>
#include <span>

#include "toolstack/protocol/messages.hpp"

namespace colo::disk {

using BlockHash = std::array<std::byte, protocol::kDiskHashBytes>;

[[nodiscard]] BlockHash hash_block(std::span<const std::byte> block);

}  // namespace colo::disk
