#include "kvm/vcpu_thread.hpp"

#include "kvm/devices/mmio_bus.hpp"

#include <pthread.h>
#include <signal.h>

#include <cstring>

#include "backends/error.hpp"
#include "kvm/devices/port_io_bus.hpp"
#include "kvm/vcpu.hpp"

namespace colo::kvm {

namespace {

void ignore_kick(int) {}

const char* exit_name(std::uint32_t reason) {
    switch (reason) {
        case KVM_EXIT_SHUTDOWN: return "KVM_EXIT_SHUTDOWN (triple fault)";
        case KVM_EXIT_FAIL_ENTRY: return "KVM_EXIT_FAIL_ENTRY";
        case KVM_EXIT_INTERNAL_ERROR: return "KVM_EXIT_INTERNAL_ERROR";
        case KVM_EXIT_SYSTEM_EVENT: return "KVM_EXIT_SYSTEM_EVENT";
        case KVM_EXIT_UNKNOWN: return "KVM_EXIT_UNKNOWN";
        default: return "unexpected KVM exit";
    }
}

void set_immediate_exit(kvm_run* run, bool value) {
    __atomic_store_n(&run->immediate_exit, value ? 1 : 0, __ATOMIC_SEQ_CST);
}

}  // namespace

int VcpuThread::kick_signal() {
    static const int signal = [] {
        const int s = SIGRTMIN + 2;
        struct sigaction action {};
        action.sa_handler = ignore_kick;
        sigemptyset(&action.sa_mask);
        // SA_RESTART: a kick landing while the vCPU thread is in the console sink (a write to a
        // pipe or socket) must not fail that call. KVM_RUN itself is never restarted: KVM
        // answers a pending signal with -EINTR, which is not a restartable error.
        action.sa_flags = SA_RESTART;
        if (sigaction(s, &action, nullptr) < 0) throw SystemError("sigaction(vCPU kick)", errno);
        return s;
    }();
    return signal;
}

VcpuThread::VcpuThread(Vcpu& vcpu, PortIoBus& bus, MmioBus* mmio) : vcpu_(vcpu), bus_(bus), mmio_(mmio) {
    (void)kick_signal();
    thread_ = std::thread([this] { main(); });
}

VcpuThread::~VcpuThread() { stop(); }

void VcpuThread::kick() {
    set_immediate_exit(vcpu_.run_page().get(), true);
    pthread_kill(thread_.native_handle(), kick_signal());
}

void VcpuThread::resume() {
    std::lock_guard lock(mutex_);
    if (state_ == State::failed) throw Error("vCPU " + std::to_string(vcpu_.index()) + " has failed: " + failure_);
    if (state_ != State::paused) return;
    // A pause that the vCPU never answered (it failed first, then was revived) leaves its request
    // and immediate_exit behind; the vCPU would take them for a new kick and pause itself at once.
    // Firecracker clears immediate_exit on resume for the same reason. The vCPU thread is out of
    // KVM_RUN here (paused), so nothing races with these.
    pause_requested_ = false;
    set_immediate_exit(vcpu_.run_page().get(), false);
    boost_.reset();  // before it runs guest code again
    state_ = State::running;
    changed_.notify_all();
}

void VcpuThread::pause() {
    std::unique_lock lock(mutex_);
    if (state_ != State::running) return;
    if (realtime_pause_ && thread_id_ != 0) boost_.emplace(thread_id_.load());
    pause_requested_ = true;
    kick();
    changed_.notify_all();  // a vCPU idling after HLT waits on this, not in KVM_RUN
    changed_.wait(lock, [&] { return state_ != State::running; });
}

void VcpuThread::set_realtime_pause(bool on) {
    std::lock_guard lock(mutex_);
    realtime_pause_ = on;
    if (!on) boost_.reset();
}

void VcpuThread::stop() noexcept {
    {
        std::unique_lock lock(mutex_);
        if (!thread_.joinable()) return;
        stop_requested_ = true;
        boost_.reset();  // while the thread id still names this thread
        if (state_ == State::running) kick();
        changed_.notify_all();
    }
    thread_.join();
}

void VcpuThread::run_paused(const std::function<void(Vcpu&)>& task) {
    std::unique_lock lock(mutex_);
    if (state_ != State::paused && state_ != State::failed) {
        throw Error("vCPU " + std::to_string(vcpu_.index()) + ": refused while it is running (pause first)");
    }
    task_ = &task;
    task_done_ = false;
    task_error_ = nullptr;
    changed_.notify_all();
    changed_.wait(lock, [&] { return task_done_; });
    task_ = nullptr;
    if (task_error_) std::rethrow_exception(std::exchange(task_error_, nullptr));
}

void VcpuThread::revive() {
    std::lock_guard lock(mutex_);
    if (state_ != State::failed) return;
    state_ = State::paused;
    failure_.clear();
    changed_.notify_all();
}

VcpuThread::State VcpuThread::state() const {
    std::lock_guard lock(mutex_);
    return state_;
}

std::string VcpuThread::failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
}

void VcpuThread::main() {
    thread_id_ = current_thread_id();
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [&] {
            return stop_requested_ || (task_ != nullptr && !task_done_) || state_ == State::running;
        });
        if (stop_requested_) {
            state_ = State::stopped;
            changed_.notify_all();
            return;
        }
        if (task_ != nullptr && !task_done_) {
            try {
                (*task_)(vcpu_);
            } catch (...) {
                task_error_ = std::current_exception();
            }
            task_done_ = true;
            changed_.notify_all();
            continue;
        }
        lock.unlock();
        bool exited = false;
        std::string error;
        try {
            exited = vcpu_.run();
            if (exited) handle_exit();
        } catch (const std::exception& e) {
            error = e.what();
        }
        lock.lock();
        if (!error.empty()) {
            failure_ = error;
            state_ = State::failed;
            changed_.notify_all();
            continue;
        }
        if (state_ == State::failed) {
            changed_.notify_all();
            continue;
        }
        if (!exited && (pause_requested_ || stop_requested_)) {
            // The kick arrived: KVM_RUN ran with immediate_exit and completed any pending I/O.
            set_immediate_exit(vcpu_.run_page().get(), false);
            pause_requested_ = false;
            state_ = State::paused;
            changed_.notify_all();
        }
    }
}

void VcpuThread::handle_exit() {
    VcpuRunPage& run = vcpu_.run_page();
    switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            const auto& io = run->io;
            bus_.dispatch(io.port, io.direction == KVM_EXIT_IO_OUT, io.size, io.count,
                          std::span(run.io_data(), std::size_t{io.size} * io.count));
            return;
        }
        case KVM_EXIT_MMIO:
            mmio_exits_.fetch_add(1, std::memory_order_relaxed);
            if (mmio_ != nullptr) {
                mmio_->dispatch(run->mmio.phys_addr, run->mmio.is_write != 0,
                                std::span(run->mmio.data, std::min<std::size_t>(run->mmio.len, sizeof run->mmio.data)));
            } else if (!run->mmio.is_write) {
                std::memset(run->mmio.data, 0xff, sizeof run->mmio.data);
            }
            return;
        case KVM_EXIT_INTR:
            return;
        case KVM_EXIT_HLT: {
            // Only without an in-kernel irqchip: nothing can wake the vCPU but the VMM.
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [&] { return stop_requested_ || pause_requested_; });
            return;
        }
        default: {
            std::string why = exit_name(run->exit_reason);
            if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR) why += " suberror " + std::to_string(run->internal.suberror);
            if (run->exit_reason == KVM_EXIT_FAIL_ENTRY) {
                why += " reason " + std::to_string(run->fail_entry.hardware_entry_failure_reason);
            }
            std::string rip;
            try {
                rip = " at rip " + std::to_string(vcpu_.get_regs().rip);
            } catch (const std::exception&) {
            }
            std::lock_guard lock(mutex_);
            failure_ = "vCPU " + std::to_string(vcpu_.index()) + ": " + why + rip;
            state_ = State::failed;
            return;
        }
    }
}

}  // namespace colo::kvm
