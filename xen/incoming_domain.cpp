#include "xen/incoming_domain.hpp"

#include <cstdio>

#include "backends/error.hpp"

namespace colo::xen {

std::string incoming_name(const std::string& name) { return name + "--incoming"; }

IncomingDomain::IncomingDomain(XenCalls& calls, const std::string& config_json, std::string name)
    : calls_(calls), name_(std::move(name)), current_name_(incoming_name(name_)) {
    if (calls_.find_domain_by_name(current_name_)) {
        // A domain left over from an earlier receive that died before it could destroy its own.
        throw Error("a Xen domain named '" + current_name_ + "' already exists (left by an earlier receive?); "
                    "destroy it with `xl destroy " + current_name_ + "` first");
    }
    id_ = calls_.create_domain(config_json, current_name_);
}

IncomingDomain::~IncomingDomain() {
    if (committed_) return;
    try {
        calls_.destroy_domain(id_);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "colo-replicate: the incoming domain %s is left behind: %s\n", current_name_.c_str(),
                     e.what());
    }
}

std::string IncomingDomain::commit() {
    if (committed_) return {};
    committed_ = true;
    const std::string who = "xen domain " + std::to_string(id_);
    if (const auto holder = calls_.find_domain_by_name(name_); holder && *holder != id_) {
        return who + " keeps the name '" + current_name_ + "': '" + name_ + "' still belongs to domain " +
               std::to_string(*holder) + " (the old primary on this host?); rename it later with `xl rename " +
               current_name_ + " " + name_ + "`";
    }
    calls_.rename_domain(id_, current_name_, name_);
    const std::string note = who + " renamed from '" + current_name_ + "' to '" + name_ + "'";
    current_name_ = name_;
    return note;
}

}  // namespace colo::xen
