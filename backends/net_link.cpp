#include "backends/net_link.hpp"

#include <net/if.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "backends/error.hpp"
#include "backends/unique_fd.hpp"

namespace colo::net_link {

namespace {

ifreq request_for(const std::string& name) {
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    return request;
}

UniqueFd control_socket(const std::string& what) {
    UniqueFd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!control.valid()) throw SystemError("socket for " + what, errno);
    return control;
}

unsigned index_of(const std::string& name) {
    const unsigned index = ::if_nametoindex(name.c_str());
    if (index == 0) throw SystemError("if_nametoindex " + name, errno);
    return index;
}

void set_flags(int control, const std::string& name, bool up) {
    ifreq flags = request_for(name);
    if (::ioctl(control, SIOCGIFFLAGS, &flags) != 0) throw SystemError("SIOCGIFFLAGS " + name, errno);
    flags.ifr_flags = static_cast<short>(up ? (flags.ifr_flags | IFF_UP) : (flags.ifr_flags & ~IFF_UP));
    if (::ioctl(control, SIOCSIFFLAGS, &flags) != 0) {
        throw SystemError(std::string("SIOCSIFFLAGS ") + name + (up ? " up" : " down"), errno);
    }
}

void bridge_port(const std::string& bridge, const std::string& port, bool add) {
    const UniqueFd control = control_socket(bridge);
    ifreq request = request_for(bridge);
    request.ifr_ifindex = static_cast<int>(index_of(port));
    if (::ioctl(control.get(), add ? SIOCBRADDIF : SIOCBRDELIF, &request) != 0) {
        throw SystemError(std::string(add ? "SIOCBRADDIF " : "SIOCBRDELIF ") + port + (add ? " to" : " from") +
                              " bridge " + bridge,
                          errno);
    }
}

}  // namespace

bool exists(const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }

void set_up(const std::string& name) {
    const UniqueFd control = control_socket(name);
    set_flags(control.get(), name, true);
}

void create_bridge(const std::string& bridge) {
    const UniqueFd control = control_socket(bridge);
    if (::ioctl(control.get(), SIOCBRADDBR, bridge.c_str()) != 0) throw SystemError("SIOCBRADDBR " + bridge, errno);
    disable_ipv6(bridge);
    set_flags(control.get(), bridge, true);
}

void disable_ipv6(const std::string& name) noexcept {
    if (std::FILE* f = std::fopen(("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6").c_str(), "w")) {
        std::fputs("1", f);
        std::fclose(f);
    }
}

void delete_bridge(const std::string& bridge) noexcept {
    try {
        const UniqueFd control = control_socket(bridge);
        if (exists(bridge)) set_flags(control.get(), bridge, false);  // a bridge that is up cannot go
        if (::ioctl(control.get(), SIOCBRDELBR, bridge.c_str()) != 0 && errno != ENXIO) {
            throw SystemError("SIOCBRDELBR " + bridge, errno);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "colo-replicate: %s\n", e.what());
    }
}

void add_to_bridge(const std::string& bridge, const std::string& port) { bridge_port(bridge, port, true); }

void remove_from_bridge(const std::string& bridge, const std::string& port) { bridge_port(bridge, port, false); }

std::optional<std::string> bridge_of(const std::string& port) {
    std::error_code error;
    const auto master = std::filesystem::read_symlink("/sys/class/net/" + port + "/master", error);
    if (error) return std::nullopt;
    return master.filename().string();
}

}  // namespace colo::net_link
