#pragma once

namespace colo {

inline constexpr const char* kVersion = "0.1.0";
inline constexpr unsigned kStreamFormatVersion = 1;  // must equal protocol::kStreamVersion

}  // namespace colo
