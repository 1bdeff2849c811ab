// TapPort: attach and detach may come from any thread (a takeover attaches while a stop
// detaches); they must never start or join the reader thread twice. Needs CAP_NET_ADMIN for a
// TAP (the unit tier runs as root); without it the case says so and checks nothing.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <string>
#include <thread>
#include <vector>

#include "backends/error.hpp"
#include "backends/tap_port.hpp"

using colo::TapPort;

namespace {

bool interface_exists(const std::string& name) {
    struct stat st {};
    return ::stat(("/sys/class/net/" + name).c_str(), &st) == 0;
}

}  // namespace

TEST_CASE("tap port: attach and detach from several threads at once leave one reader or none") {
    TapPort port([](std::span<const std::byte>) {});
    try {
        port.attach("", "");
    } catch (const colo::SystemError& e) {
        MESSAGE("no TAP can be made here, nothing checked: " << e.what());
        return;
    }
    REQUIRE(port.attached());
    std::vector<std::string> names{port.name()};
    for (int round = 0; round < 30; ++round) {
        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i) {
            threads.emplace_back([&port, i] {
                if ((i & 1) != 0) {
                    port.detach();
                } else {
                    port.attach("", "");
                }
            });
        }
        for (auto& thread : threads) thread.join();
        // Whatever order they ran in, the port is consistent: attached with its TAP, or neither.
        const std::string name = port.name();
        CHECK(port.attached() == !name.empty());
        if (!name.empty()) {
            CHECK(interface_exists(name));
            names.push_back(name);
        }
    }
    port.detach();
    port.detach();  // idempotent
    CHECK_FALSE(port.attached());
    for (const auto& name : names) CHECK_FALSE(interface_exists(name));  // every TAP went away
}
