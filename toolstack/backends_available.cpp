#include "toolstack/backends_available.hpp"

#include "kvm/register.hpp"
#include "xen/register.hpp"

namespace colo {

const BackendRegistry& backends_available() {
    static const BackendRegistry registry = [] {
        BackendRegistry r;
        kvm::register_backend(r);
        xen::register_backend(r);
        return r;
    }();
    return registry;
}

}  // namespace colo
