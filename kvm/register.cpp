#include "kvm/register.hpp"

#include "backends/error.hpp"

namespace colo::kvm {

void register_backend(BackendRegistry& registry) {
    registry.add(BackendFactory{"kvm", "KVM (/dev/kvm, built-in VMM)", true,
                                [](const GuestConfig&) -> std::unique_ptr<Backend> {
                                    throw Error("the KVM backend is not available yet");
                                }});
}

}  // namespace colo::kvm
