#include "kvm/register.hpp"

#include "kvm/kvm_backend.hpp"

namespace colo::kvm {

void register_backend(BackendRegistry& registry) {
    registry.add(BackendFactory{
        "kvm", "KVM (/dev/kvm, built-in VMM)", true,
        [](const GuestConfig& config) -> std::unique_ptr<Backend> { return KvmBackend::create(config); },
        [](const GuestConfig& config) -> std::unique_ptr<Backend> { return KvmBackend::create_incoming(config); }});
}

}  // namespace colo::kvm
