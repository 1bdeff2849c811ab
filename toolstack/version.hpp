#pragma once

namespace colo {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace colo
