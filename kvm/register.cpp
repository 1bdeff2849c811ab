#include "kvm/register.hpp"

#include "backends/error.hpp"

namespace colo::kvm {

void register_backend(BackendRegistry& registry) {
    const auto not_yet = [](const GuestConfig&) -> std::unique_ptr<Backend> {
        throw Error("the KVM backend is not available yet");
    };
    registry.add(BackendFactory{"kvm", "KVM (/dev/kvm, built-in VMM)", true, not_yet, not_yet});
}

}  // namespace colo::kvm
