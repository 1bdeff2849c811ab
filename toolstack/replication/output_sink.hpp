// Where released guest console output goes (the CLI: the --console-log file and console
// clients). `offset` is the position of bytes[0] in the guest's console stream; consecutive calls
// continue exactly where the previous one ended, across a failover too (the survivor's first
// call starts at the offset where the dead primary's last one ended).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace colo {

using OutputSink = std::function<void(std::uint64_t offset, std::span<const std::byte> bytes)>;

}  // namespace colo
