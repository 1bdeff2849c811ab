// kvm_bench: what the KVM backend costs on this machine. Prints, for a 1 GiB built-in guest:
// boot time (create, and create to first console line), pause latency (p50/p99/max over many
// pauses of a running guest), state size and save/restore time, and the cost of harvesting
// 1k/10k/100k dirty pages (KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG over a 1 GiB slot).
//
// Usage: kvm_bench [pause-samples]   (default 200)
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "backends/dirty_bitmap.hpp"
#include "backends/error.hpp"
#include "kvm/guest_ram.hpp"
#include "kvm/kvm_backend.hpp"
#include "kvm/layout.hpp"
#include "kvm/long_mode_entry.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu.hpp"
#include "kvm/vcpu_cpuid.hpp"
#include "kvm/vm.hpp"
#include "tests/kvm/console_capture.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using namespace colo;
using namespace colo::kvm;

namespace {

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

GuestConfig gib_guest() {
    GuestConfig config;
    config.name = "bench";
    config.memory_mib = 1024;
    config.working_set_mib = 256;
    config.dirty_rate = 10000;
    config.seed = 5;
    config.print_interval_ms = 100;
    return config;
}

void bench_boot_pause_state(int samples) {
    test::ConsoleCapture console;
    const auto t0 = Clock::now();
    auto guest = KvmBackend::create(gib_guest());
    const double created = ms_since(t0);
    guest->set_console_sink(console.sink());
    guest->resume();
    if (!console.wait_for("seq=0 ", 30s)) throw Error("the guest printed nothing: " + guest->vcpu_failure());
    const double first_line = ms_since(t0);
    std::printf("boot (1 GiB, built-in guest): create %.1f ms, create to first console line %.1f ms\n", created,
                first_line);

    std::vector<double> pauses;
    std::srand(1);
    for (int i = 0; i < samples; ++i) {
        guest->resume();
        std::this_thread::sleep_for(std::chrono::microseconds(500 + std::rand() % 3000));
        const auto p0 = Clock::now();
        guest->pause();
        pauses.push_back(std::chrono::duration<double, std::micro>(Clock::now() - p0).count());
    }
    std::printf("pause -> paused (%d samples): p50 %.0f us, p99 %.0f us, max %.0f us\n", samples,
                percentile(pauses, 0.5), percentile(pauses, 0.99), percentile(pauses, 1.0));

    const auto s0 = Clock::now();
    const auto state = guest->save_state();
    const double save_ms = ms_since(s0);
    std::size_t bytes = 0;
    for (const auto& r : state) bytes += r.data.size();
    auto target = KvmBackend::create_incoming(gib_guest());
    const auto r0 = Clock::now();
    target->restore_state(state);
    const double restore_ms = ms_since(r0);
    std::printf("state: %zu records, %zu bytes; save_state %.2f ms, restore_state %.2f ms\n", state.size(), bytes,
                save_ms, restore_ms);
}

// Ring 3: for (; rcx; --rcx, rdi += rdx) *(u8*)rdi = al; then a store to rbx (MMIO exit).
constexpr std::array<std::uint8_t, 14> kWriter = {0x88, 0x07, 0x48, 0x01, 0xd7, 0x48, 0xff,
                                                  0xc9, 0x75, 0xf6, 0x88, 0x03, 0xeb, 0xfe};

void bench_harvest() {
    System system;
    Vm vm = system.create_vm();
    vm.set_tss_addr(layout::kKvmRealModeTss.value);
    GuestRam ram(vm, std::uint64_t{1} << 30);
    Vcpu vcpu = vm.create_vcpu(0);
    vcpu.set_cpuid2(vcpu_cpuid(system.get_supported_cpuid(), 0));
    EntryState entry;
    entry.user_mode = true;
    entry.rip = layout::kBuiltinImage.value;
    entry.rsp = layout::kBuiltinStackTop.value;
    entry.identity_map_bytes = layout::kMaxIdentityMapBytes;
    write_long_mode_tables(ram, entry, std::nullopt);
    ram.write(layout::kBuiltinImage, std::as_bytes(std::span(kWriter)));
    ram.start_dirty_log();
    DirtyBitmap bitmap(ram.frame_limit());
    ram.harvest_dirty(bitmap);

    const auto write = [&](std::uint64_t pages) {
        enter_long_mode(vcpu, entry);
        auto regs = vcpu.get_regs();
        regs.rdi = std::uint64_t{16} << 20;
        regs.rcx = pages;
        regs.rdx = kPageSize;
        regs.rax = 1;
        regs.rbx = 0xd0000000;
        vcpu.set_regs(regs);
        const auto t0 = Clock::now();
        while (!vcpu.run()) {
        }
        return ms_since(t0);
    };
    (void)write(1);  // map the code page
    bitmap.clear_all();
    ram.harvest_dirty(bitmap);
    for (const std::uint64_t pages : {std::uint64_t{0}, std::uint64_t{1000}, std::uint64_t{10000}, std::uint64_t{100000}}) {
        const double write_ms = pages ? write(pages) : 0.0;
        bitmap.clear_all();
        const auto h0 = Clock::now();
        ram.harvest_dirty(bitmap);
        const double harvest_ms = ms_since(h0);
        std::printf("harvest, 1 GiB slot, %6llu dirty pages: %.3f ms (found %llu; guest wrote them in %.1f ms, "
                    "%.2f us/page)\n",
                    static_cast<unsigned long long>(pages), harvest_ms, static_cast<unsigned long long>(bitmap.count()),
                    write_ms, pages ? write_ms * 1000.0 / static_cast<double>(pages) : 0.0);
    }
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const int samples = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
        bench_boot_pause_state(samples);
        bench_harvest();
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kvm_bench: %s\n", e.what());
        return 1;
    }
}
