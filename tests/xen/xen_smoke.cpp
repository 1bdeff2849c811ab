// Runs in dom0 of the nested Xen tier and drives the real XenBackend (through the "xen" registry
// entry, so libxl resolves the name and libxenctrl does the work) against a running PVH domU
// whose dirtier keeps writing pages. One line per check, prefixed "XS " so the host harness can
// find it among kernel messages: "XS PASS name: what it proved" or "XS FAIL name: why".
// Measurements go on "XS MEASURE name value unit" lines.
//
//   xen_smoke <pvh-domain-name> [pv-domain-name|-] [rounds] [interval_ms]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend_registry.hpp"
#include "backends/error.hpp"
#include "xen/hvm_context.hpp"
#include "xen/hvm_params.hpp"
#include "xen/register.hpp"
#include "xen/xen_backend.hpp"

namespace {

using Clock = std::chrono::steady_clock;

int failures = 0;

void pass(const char* name, const std::string& what) { std::printf("XS PASS %s: %s\n", name, what.c_str()); }
void fail(const char* name, const std::string& why) {
    std::printf("XS FAIL %s: %s\n", name, why.c_str());
    ++failures;
}
void measure(const char* name, double value, const char* unit) {
    std::printf("XS MEASURE %s %.2f %s\n", name, value, unit);
}
double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}
void sleep_ms(unsigned ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Harvests once and returns how many frames were dirty.
std::uint64_t harvest(colo::Backend& b, double* took_ms = nullptr) {
    colo::DirtyBitmap bits(b.memory().frame_limit());
    const auto start = Clock::now();
    b.harvest_dirty(bits);
    if (took_ms != nullptr) *took_ms = ms_since(start);
    return bits.count();
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <pvh-domain> [pv-domain|-] [rounds] [interval_ms]\n", argv[0]);
        return 2;
    }
    const std::string pvh = argv[1];
    const std::string pv = argc > 2 && std::strcmp(argv[2], "-") != 0 ? argv[2] : "";
    const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
    const unsigned interval = argc > 4 ? static_cast<unsigned>(std::atoi(argv[4])) : 1000;

    colo::BackendRegistry registry;
    colo::xen::register_backend(registry);
    colo::GuestConfig config;
    config.backend = "xen";
    config.name = pvh;

    std::unique_ptr<colo::Backend> backend;
    colo::xen::XenBackend* xen = nullptr;
    try {
        const auto start = Clock::now();
        backend = registry.find("xen").create(config);
        measure("attach_ms", ms_since(start), "ms");
        xen = dynamic_cast<colo::xen::XenBackend*>(backend.get());
        if (xen == nullptr) throw colo::Error("the xen factory made something that is not a XenBackend");
        std::uint64_t ram = 0;
        std::string layout;
        for (const auto& r : backend->memory().regions()) {
            ram += r.pages;
            char run[64];
            std::snprintf(run, sizeof run, "%s0x%llx+%llu", layout.empty() ? "" : " ",
                          static_cast<unsigned long long>(r.first.value), static_cast<unsigned long long>(r.pages));
            layout += run;
        }
        std::printf("XS regions %s\n", layout.c_str());
        pass("attach", "domain " + std::to_string(xen->domain()) + " '" + pvh + "': " +
                           std::to_string(backend->memory().regions().size()) + " RAM regions, " +
                           std::to_string(ram) + " frames (" + std::to_string(ram / 256) + " MiB), " +
                           std::to_string(xen->map_cache().map_calls()) + " map calls to probe " +
                           std::to_string(xen->map_cache().limit()) + " frames for the " +
                           std::to_string(xen->populated_frames()) + " Xen reports populated");
    } catch (const std::exception& e) {
        fail("attach", e.what());
        std::printf("XS done failures=%d\n", failures + 1);
        return 1;
    }

    // --- console ring: the domU prints "seq=N" four times a second; the backend's reader thread must
    // deliver it while the guest runs, before any pause or harvest.
    std::mutex console_mutex;
    std::string console;
    backend->set_console_sink([&](std::span<const std::byte> bytes) {
        std::lock_guard lock(console_mutex);
        console.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    });
    sleep_ms(2500);
    {
        std::lock_guard lock(console_mutex);
        if (console.find("seq=") != std::string::npos) {
            std::string tail = console.substr(console.size() > 40 ? console.size() - 40 : 0);
            for (char& c : tail) if (c == '\n' || c == '\r') c = ' ';
            pass("console", std::to_string(console.size()) + " bytes from the console ring in 2.5 s with the guest "
                            "running and no checkpoint: '" + tail + "'");
        } else {
            fail("console", "no 'seq=' from the guest's console ring in 2.5 s (" + std::to_string(console.size()) +
                                " bytes)");
        }
    }

    // --- log-dirty rounds while the dirtier runs
    std::uint64_t running_min = ~std::uint64_t{0};
    try {
        backend->start_dirty_log();
        (void)harvest(*backend);  // whatever was logged before now
        std::string counts;
        bool all_dirty = true;
        for (int r = 1; r <= rounds; ++r) {
            sleep_ms(interval);
            double took = 0;
            const std::uint64_t n = harvest(*backend, &took);
            measure("harvest_ms", took, "ms");
            counts += (r > 1 ? "," : "") + std::to_string(n);
            running_min = std::min(running_min, n);
            all_dirty = all_dirty && n > 0;
        }
        if (all_dirty) {
            pass("logdirty_rounds", "dirty frames per " + std::to_string(interval) + " ms round: " + counts);
        } else {
            fail("logdirty_rounds", "a round with the dirtier running found no dirty frame: " + counts);
        }
    } catch (const std::exception& e) {
        fail("logdirty_rounds", e.what());
    }

    // --- pause; the final round's pages read through the map cache
    colo::DirtyBitmap last(backend->memory().frame_limit());
    try {
        sleep_ms(interval);  // let the dirtier write the pages this round reads
        backend->pause();
        backend->harvest_dirty(last);
        const std::vector<colo::Pfn> frames = last.frames();
        std::vector<std::byte> pages(frames.size() * colo::kPageSize);
        const std::uint64_t calls_before = xen->map_cache().map_calls();
        const auto start = Clock::now();
        for (int again = 0; again < 2; ++again) backend->memory().read_pages(frames, pages);
        const double took = ms_since(start);
        const std::uint64_t new_calls = xen->map_cache().map_calls() - calls_before;
        // The dirtier fills its buffer with 0x5a and stamps one byte per page per pass.
        std::uint64_t patterned = 0;
        for (std::size_t i = 0; i < frames.size(); ++i) {
            std::size_t n = 0;
            for (std::size_t j = 0; j < colo::kPageSize; ++j) n += pages[i * colo::kPageSize + j] == std::byte{0x5a};
            patterned += n > colo::kPageSize / 2;
        }
        measure("read_dirty_pages_ms", took / 2, "ms");
        if (frames.empty()) {
            fail("read_through_map_cache", "the round before the pause found no dirty frame to read");
        } else if (patterned == 0) {
            fail("read_through_map_cache", std::to_string(frames.size()) +
                                               " dirty frames read, none holds the dirtier's 0x5a fill");
        } else if (new_calls != 0) {
            fail("read_through_map_cache", "reading cached pages made " + std::to_string(new_calls) + " map calls");
        } else {
            pass("read_through_map_cache", std::to_string(frames.size()) + " dirty frames read twice with 0 new map "
                                           "calls; " + std::to_string(patterned) + " hold the dirtier's fill");
        }
    } catch (const std::exception& e) {
        fail("read_through_map_cache", e.what());
    }

    // --- a paused guest dirties (next to) nothing
    try {
        sleep_ms(interval);
        const std::uint64_t quiet = harvest(*backend);
        // Xen itself may still touch a page or two of a paused guest (event delivery to
        // vcpu_info), so "quiet" is judged against the running rate.
        if (backend->paused() && quiet * 4 < running_min) {
            pass("pause", "paused: " + std::to_string(quiet) + " dirty frames in " + std::to_string(interval) +
                              " ms (running: at least " + std::to_string(running_min) + ")");
        } else {
            fail("pause", "paused guest dirtied " + std::to_string(quiet) + " frames (running: " +
                              std::to_string(running_min) + ")");
        }
    } catch (const std::exception& e) {
        fail("pause", e.what());
    }

    // --- HVM context: save while paused, put it back, and the guest carries on
    try {
        const auto start = Clock::now();
        const std::vector<colo::StateRecord> state = backend->save_state();
        measure("save_state_ms", ms_since(start), "ms");
        if (state.size() != 2 || state[0].tag != colo::xen::kHvmContextTag || state[1].tag != colo::xen::kHvmParamsTag) {
            throw colo::Error("expected two state records, the HVM context and the HVM params");
        }
        colo::xen::check_hvm_context(state[0].data);
        std::string params;
        for (const colo::xen::HvmParam& p : colo::xen::decode_hvm_params(state[1].data)) {
            params += std::string(params.empty() ? "" : ", ") + colo::xen::carried_hvm_param(p.index)->name + "=" +
                      std::to_string(p.value);
        }
        backend->restore_state(state);
        pass("hvm_context", "saved " + std::to_string(state[0].data.size()) +
                                " bytes of HVM context, well framed, and the HVM params (" + params +
                                "), and set both back into the paused domain");
    } catch (const std::exception& e) {
        fail("hvm_context", e.what());
    }

    try {
        backend->resume();
        sleep_ms(interval);
        const std::uint64_t n = harvest(*backend);
        if (n > 0) {
            pass("resume", "after unpause the guest dirtied " + std::to_string(n) + " frames in " +
                               std::to_string(interval) + " ms");
        } else {
            fail("resume", "after unpause the guest dirtied nothing: it did not run on");
        }
        backend->stop_dirty_log();
    } catch (const std::exception& e) {
        fail("resume", e.what());
    }

    backend.reset();

    // --- a PV domain is refused with the reason
    if (!pv.empty()) {
        config.name = pv;
        try {
            auto refused = registry.find("xen").create(config);
            fail("pv_refused", "attached to PV domain '" + pv + "'");
        } catch (const colo::Error& e) {
            const std::string message = e.what();
            if (message.find("needs HAP") != std::string::npos) {
                pass("pv_refused", message);
            } else {
                fail("pv_refused", "wrong reason: " + message);
            }
        }
    }
    std::printf("XS done failures=%d\n", failures);
    return failures == 0 ? 0 : 1;
}
