#include "backends/backend_registry.hpp"

#include "backends/error.hpp"

namespace colo {

void BackendRegistry::add(BackendFactory factory) {
    for (const auto& f : factories_) {
        if (f.name == factory.name) throw Error("backend '" + factory.name + "' registered twice");
    }
    factories_.push_back(std::move(factory));
}

const BackendFactory& BackendRegistry::find(const std::string& name) const {
    std::string known;
    for (const auto& f : factories_) {
        if (f.name == name) return f;
        known += (known.empty() ? "" : ", ") + f.name;
    }
    throw Error("unknown backend '" + name + "' (known: " + known + ")");
}

}  // namespace colo
