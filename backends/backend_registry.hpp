// Backends by name ("kvm", "xen"). Each hypervisor library adds itself through its
// register_*_backend() function, called once from the toolstack (static libraries would drop
// self-registering globals at link time, so registration is explicit).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/guest_config.hpp"

namespace colo {

struct BackendFactory {
    std::string name;     // as given to --backend and `backend =` in a config
    std::string summary;  // one line for `colo-replicate --version` and help
    bool compiled_in = true;
    // Makes a backend for a new guest described by config, booted from its kernel or the built-in
    // guest. It is created paused: the first resume() starts it.
    std::function<std::unique_ptr<Backend>(const GuestConfig&)> create;
    // Makes a backend for a guest whose memory and state will arrive from a stream (restore,
    // migration, the secondary of a protected guest): memory and devices, no loader. Paused.
    std::function<std::unique_ptr<Backend>(const GuestConfig&)> create_incoming;
    // Optional, asked by `restore` before it builds anything: why a guest called `name` cannot be
    // made on this host, or "". Xen: a domain of that name exists outside colo-replicate. Unset
    // (KVM): colo-replicate's own "already runs" check is all there is.
    std::function<std::string(const std::string& name)> name_taken = {};
};

class BackendRegistry {
public:
    void add(BackendFactory factory);
    // Throws colo::Error naming the known backends when `name` is not one of them.
    [[nodiscard]] const BackendFactory& find(const std::string& name) const;
    [[nodiscard]] const std::vector<BackendFactory>& all() const { return factories_; }

private:
    std::vector<BackendFactory> factories_;
};

}  // namespace colo
