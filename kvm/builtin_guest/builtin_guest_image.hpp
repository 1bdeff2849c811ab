// The built-in test guest's flat image (kvm/builtin_guest/: header, code, data), embedded at
// build time. kvm/builtin_guest_loader.hpp puts it into a guest.
#pragma once

#include <cstddef>
#include <span>

namespace colo::kvm {

[[nodiscard]] std::span<const std::byte> builtin_guest_image();

}  // namespace colo::kvm
