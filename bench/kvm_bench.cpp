// kvm_bench: what the KVM backend costs on this machine. Prints, for a 1 GiB built-in guest:
// boot time (create, and create to first console line), pause latency (p50/p99/max over many
// pauses of a running guest), state size and save/restore time, and the cost of harvesting
// 1k/10k/100k dirty pages (KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG over a 1 GiB slot), and
// for comparison the same with KVM's dirty ring; and what a COLO secondary's checkpoint commit
// costs with the SVM's memory a copy of its own (copied into from the RAM cache) and as a
// copy-on-write view of the cache (staged pages into the file, the SVM's own pages dropped).
//
// Usage: kvm_bench [pause-samples]   (default 200)
//        kvm_bench copy-after-resume  (only that part)
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
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
#include "toolstack/replication/ram_cache.hpp"

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

// Points the writer (kWriter) at `pages` pages from 16 MiB on, every `stride`th, one byte each,
// ending with a store to an MMIO address that stops the run.
void start_writer(Vcpu& vcpu, const EntryState& entry, std::uint64_t pages, std::uint64_t stride = 1) {
    enter_long_mode(vcpu, entry);
    auto regs = vcpu.get_regs();
    regs.rdi = std::uint64_t{16} << 20;
    regs.rcx = pages;
    regs.rdx = kPageSize * stride;
    regs.rax = 1;
    regs.rbx = 0xd0000000;
    vcpu.set_regs(regs);
}

// A 1 GiB VM whose one vCPU runs the writer (kWriter) in ring 3 from the built-in guest's image
// address, with long-mode tables identity-mapping 4 GiB.
struct WriterMachine {
    System system;
    Vm vm = system.create_vm();
    GuestRam ram{init_vm(vm), std::uint64_t{1} << 30};
    Vcpu vcpu = vm.create_vcpu(0);
    EntryState entry;

    WriterMachine() {
        vcpu.set_cpuid2(vcpu_cpuid(system.get_supported_cpuid(), 0, true));
        entry.user_mode = true;
        entry.rip = layout::kBuiltinImage.value;
        entry.rsp = layout::kBuiltinStackTop.value;
        entry.identity_map_bytes = layout::kMaxIdentityMapBytes;
        write_long_mode_tables(ram, entry, std::nullopt);
        ram.write(layout::kBuiltinImage, std::as_bytes(std::span(kWriter)));
    }
    static Vm& init_vm(Vm& vm) {
        vm.set_tss_addr(layout::kKvmRealModeTss.value);
        return vm;
    }
};

void bench_harvest() {
    WriterMachine machine;
    GuestRam& ram = machine.ram;
    Vcpu& vcpu = machine.vcpu;
    const EntryState& entry = machine.entry;
    ram.start_dirty_log();
    DirtyBitmap bitmap(ram.frame_limit());
    ram.harvest_dirty(bitmap);

    const auto write = [&](std::uint64_t pages) {
        start_writer(vcpu, entry, pages);
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

// The same writes with KVM's dirty ring (KVM_CAP_DIRTY_LOG_RING) instead of the bitmap, for
// comparison only: the backend uses the bitmap. Raw ioctls, since nothing else uses the ring.
// x86 maps each vCPU's ring at page 64 of the vCPU fd (KVM_DIRTY_LOG_PAGE_OFFSET in the
// kernel's asm/kvm.h; Debian 12's copy of that header predates it).
constexpr std::uint64_t kDirtyRingPageOffset = 64;
constexpr std::uint32_t kRingEntries = 65536;

void bench_dirty_ring() {
    System system;
    if (system.check_extension(KVM_CAP_DIRTY_LOG_RING) < static_cast<int>(kRingEntries * sizeof(kvm_dirty_gfn))) {
        std::printf("dirty ring: not supported with %u entries, skipped\n", kRingEntries);
        return;
    }
    Vm vm = system.create_vm();
    vm.enable_cap(KVM_CAP_DIRTY_LOG_RING, kRingEntries * sizeof(kvm_dirty_gfn));
    vm.set_tss_addr(layout::kKvmRealModeTss.value);
    GuestRam ram(vm, std::uint64_t{1} << 30);
    Vcpu vcpu = vm.create_vcpu(0);
    vcpu.set_cpuid2(vcpu_cpuid(system.get_supported_cpuid(), 0, true));
    const long page = sysconf(_SC_PAGESIZE);
    const std::size_t ring_bytes = kRingEntries * sizeof(kvm_dirty_gfn);
    void* mapping = mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.fd(),
                         static_cast<off_t>(kDirtyRingPageOffset * static_cast<std::uint64_t>(page)));
    if (mapping == MAP_FAILED) throw SystemError("mmap(dirty ring)", errno);
    auto* ring = static_cast<kvm_dirty_gfn*>(mapping);
    std::uint32_t fetch = 0;

    EntryState entry;
    entry.user_mode = true;
    entry.rip = layout::kBuiltinImage.value;
    entry.rsp = layout::kBuiltinStackTop.value;
    entry.identity_map_bytes = layout::kMaxIdentityMapBytes;
    write_long_mode_tables(ram, entry, std::nullopt);
    ram.write(layout::kBuiltinImage, std::as_bytes(std::span(kWriter)));
    ram.start_dirty_log();

    double harvest_ms = 0;
    std::uint64_t harvested = 0;
    const auto harvest = [&] {
        const auto h0 = Clock::now();
        for (;;) {
            kvm_dirty_gfn& e = ring[fetch % kRingEntries];
            if (!(__atomic_load_n(&e.flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY)) break;
            ++harvested;
            __atomic_store_n(&e.flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
            ++fetch;
        }
        check_syscall(ioctl(vm.fd(), KVM_RESET_DIRTY_RINGS, 0), "KVM_RESET_DIRTY_RINGS");
        harvest_ms += ms_since(h0);
    };
    const auto write = [&](std::uint64_t pages) {
        start_writer(vcpu, entry, pages);
        const auto t0 = Clock::now();
        for (;;) {
            if (!vcpu.run()) continue;
            if (vcpu.run_page()->exit_reason == KVM_EXIT_DIRTY_RING_FULL) {
                harvest();  // counted as harvest time, not write time
                continue;
            }
            break;
        }
        return ms_since(t0);
    };
    (void)write(1);
    harvest();
    for (const std::uint64_t pages : {std::uint64_t{1000}, std::uint64_t{10000}, std::uint64_t{100000}}) {
        harvest_ms = 0;
        harvested = 0;
        const double write_ms = write(pages);
        harvest();
        std::printf("dirty ring (%u entries), %6llu dirty pages: harvest %.3f ms in all (found %llu; guest wrote "
                    "them in %.1f ms less harvests, %.2f us/page)\n",
                    kRingEntries, static_cast<unsigned long long>(pages), harvest_ms,
                    static_cast<unsigned long long>(harvested), write_ms - harvest_ms,
                    (write_ms - harvest_ms) * 1000.0 / static_cast<double>(pages));
    }
    munmap(mapping, ring_bytes);
}

// Copy-after-resume (issue #14 item 3), measured before building it: what a checkpoint's pause
// would cost if, instead of copying every dirty page while the guest stands still, it armed a
// userfaultfd write protection on those pages, resumed, and copied them behind the guest's back
// (a write to a page not yet copied waits for a handler that copies it first, as QEMU's
// background snapshot does). Against the copy we do: memcpy of the same pages into a buffer.
// Scattered pages (every third frame), a real KVM guest writing them, 1 GiB of guest RAM.
void bench_copy_after_resume() {
    WriterMachine machine;
    GuestRam& ram = machine.ram;
    Vcpu& vcpu = machine.vcpu;
    const EntryState& entry = machine.entry;
    constexpr std::uint64_t kStride = 3;
    const auto write = [&](std::uint64_t pages) {
        start_writer(vcpu, entry, pages, kStride);
        const auto t0 = Clock::now();
        while (!vcpu.run()) {
        }
        return ms_since(t0);
    };
    (void)write(50000);  // every page the runs below touch is populated once

    const int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (uffd < 0) {
        std::printf("copy-after-resume: userfaultfd: %s, skipped\n", std::strerror(errno));
        return;
    }
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    if (ioctl(uffd, UFFDIO_API, &api) != 0) {
        std::printf("copy-after-resume: UFFDIO_API with write protection of shared memory: %s, skipped\n",
                    std::strerror(errno));
        close(uffd);
        return;
    }
    auto* base = reinterpret_cast<std::byte*>(ram.host(Gpa{0}, ram.bytes()).data());
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<std::uint64_t>(base);
    reg.range.len = ram.bytes();
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
        std::printf("copy-after-resume: UFFDIO_REGISTER (WP) of guest RAM: %s, skipped\n", std::strerror(errno));
        close(uffd);
        return;
    }
    const auto protect = [&](std::uint64_t offset, std::uint64_t len, bool on) {
        uffdio_writeprotect wp{};
        wp.range.start = reinterpret_cast<std::uint64_t>(base) + offset;
        wp.range.len = len;
        wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
        check_syscall(ioctl(uffd, UFFDIO_WRITEPROTECT, &wp), "UFFDIO_WRITEPROTECT");
    };
    std::vector<std::byte> staging(std::size_t{50000} * kPageSize);

    for (const std::uint64_t pages : {std::uint64_t{1000}, std::uint64_t{5000}, std::uint64_t{20000}}) {
        std::vector<std::uint64_t> offsets;
        for (std::uint64_t i = 0; i < pages; ++i) offsets.push_back((std::uint64_t{16} << 20) + i * kStride * kPageSize);

        // Today: the pause copies every dirty page.
        auto t0 = Clock::now();
        for (std::uint64_t i = 0; i < pages; ++i) std::memcpy(staging.data() + i * kPageSize, base + offsets[i], kPageSize);
        const double copy_ms = ms_since(t0);

        // Copy-after-resume: the pause arms a protection per dirty page ...
        t0 = Clock::now();
        for (const std::uint64_t offset : offsets) protect(offset, kPageSize, true);
        const double arm_ms = ms_since(t0);
        // ... the guest runs on and writes every one of them again before the copier reaches it
        // (the worst case), each write waiting for the handler to copy and release that page.
        std::atomic<bool> done{false};
        std::atomic<std::uint64_t> served{0};
        std::thread handler([&] {
            while (!done) {
                uffd_msg msg{};
                if (read(uffd, &msg, sizeof msg) != static_cast<ssize_t>(sizeof msg)) {
                    std::this_thread::yield();
                    continue;
                }
                if (msg.event != UFFD_EVENT_PAGEFAULT || !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) continue;
                const std::uint64_t offset = (msg.arg.pagefault.address & ~(kPageSize - 1)) - reinterpret_cast<std::uint64_t>(base);
                std::memcpy(staging.data(), base + offset, kPageSize);
                protect(offset, kPageSize, false);
                ++served;
            }
        });
        const double faulted_write_ms = write(pages);
        done = true;
        handler.join();
        const double plain_write_ms = write(pages);
        // The copier's own share, had the guest not touched the pages: copy then release each.
        for (const std::uint64_t offset : offsets) protect(offset, kPageSize, true);
        t0 = Clock::now();
        for (std::uint64_t i = 0; i < pages; ++i) {
            std::memcpy(staging.data() + i * kPageSize, base + offsets[i], kPageSize);
            protect(offsets[i], kPageSize, false);
        }
        const double copier_ms = ms_since(t0);
        // Arming the whole of guest RAM at once instead (one call; the guest then faults on any
        // page it writes, dirty or not).
        t0 = Clock::now();
        protect(0, ram.bytes(), true);
        const double arm_all_ms = ms_since(t0);
        protect(0, ram.bytes(), false);
        std::printf("copy-after-resume, %5llu dirty pages: pause copying them %.3f ms (%.2f us/page); pause arming "
                    "userfaultfd WP on them %.3f ms (%.2f us/page), or on all 1 GiB %.3f ms; the guest writing them "
                    "all again %.2f us/page with the handler (%llu faults) vs %.2f us/page without; copier %.2f "
                    "us/page\n",
                    static_cast<unsigned long long>(pages), copy_ms, copy_ms * 1000 / static_cast<double>(pages), arm_ms,
                    arm_ms * 1000 / static_cast<double>(pages), arm_all_ms,
                    faulted_write_ms * 1000 / static_cast<double>(pages), static_cast<unsigned long long>(served.load()),
                    plain_write_ms * 1000 / static_cast<double>(pages), copier_ms * 1000 / static_cast<double>(pages));
    }
    close(uffd);
}

}  // namespace

// The secondary's commit (ram_cache.hpp) on a running 1 GiB guest dirtying 10k pages/s as the
// SVM: every 100 ms, pause, harvest its own writes, commit `received` pages from the PVM (random
// frames, staged before the pause as the stream would) and them, resume.
void bench_svm_commit() {
    auto config = gib_guest();
    config.working_set_mib = 960;
    test::ConsoleCapture console;
    auto guest = KvmBackend::create(config);
    guest->set_console_sink(console.sink());
    guest->resume();
    if (!console.wait_for("seq=20 ", 60s)) throw Error("the guest printed no seq=20: " + guest->vcpu_failure());
    const std::uint64_t working_first = (std::uint64_t{32} << 20) / kPageSize;
    const std::uint64_t working_pages = (std::uint64_t{config.working_set_mib} << 20) / kPageSize;
    for (const bool shared : {false, true}) {
        for (const std::uint64_t received_pages : {1500, 6000}) {
            guest->pause();
            RamCache cache(guest->memory().regions());
            (void)cache.fill_from(guest->memory(), 256);
            if (shared && !cache.share_with(guest->memory())) throw Error("KVM guest RAM cannot be shared");
            guest->start_dirty_log();
            DirtyBitmap own(guest->memory().frame_limit());
            guest->harvest_dirty(own);
            guest->resume();
            std::srand(7);
            std::vector<double> commits;
            std::uint64_t own_pages = 0;
            for (int round = 0; round < 40; ++round) {
                std::this_thread::sleep_for(100ms);
                guest->pause();
                const auto h0 = Clock::now();
                own.clear_all();
                guest->harvest_dirty(own);
                const double harvest_ms = ms_since(h0);
                own_pages += own.count();
                // What the PVM sends: random pages, and (a deterministic guest) those the SVM
                // wrote too, with the content they have now, so the guest's memory check holds.
                DirtyBitmap received = own;
                for (std::uint64_t i = 0; i < received_pages; ++i) {
                    received.set(Pfn{working_first + static_cast<std::uint64_t>(std::rand()) % working_pages});
                }
                const auto frames = received.frames();
                std::vector<std::byte> data(frames.size() * kPageSize);
                guest->memory().read_pages(frames, data);
                cache.receive(frames, data);
                const auto c0 = Clock::now();
                (void)cache.commit(guest->memory(), received, own, 256);
                commits.push_back(harvest_ms + ms_since(c0));
                guest->resume();
            }
            std::printf("SVM harvest + commit, %s, %llu received + ~%llu own pages: p50 %.2f ms, p99 %.2f ms\n",
                        shared ? "copy-on-write view of the cache (stage into the file, drop own)"
                               : "a copy of its own (copy from the cache)",
                        static_cast<unsigned long long>(received_pages),
                        static_cast<unsigned long long>(own_pages / commits.size()), percentile(commits, 0.5),
                        percentile(commits, 0.99));
            guest->stop_dirty_log();
        }
    }
    guest->pause();
    if (console.text().find("CORRUPT") != std::string::npos) throw Error("the guest reported CORRUPT");
}

int main(int argc, char** argv) {
    try {
        if (argc > 1 && std::string(argv[1]) == "copy-after-resume") {  // that part alone (the nested tier's L1 runs it)
            bench_copy_after_resume();
            return 0;
        }
        const int samples = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
        bench_boot_pause_state(samples);
        bench_harvest();
        bench_dirty_ring();
        bench_copy_after_resume();
        bench_svm_commit();
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kvm_bench: %s\n", e.what());
        return 1;
    }
}
