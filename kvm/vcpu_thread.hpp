// A vCPU's own thread and its state machine (STYLE §5). Commands are messages answered when
// done: resume() returns once the thread has been told to run, pause() once it has left
// KVM_RUN, run_paused() once the task ran on the vCPU thread. A vCPU in KVM_RUN is kicked out
// with kKickSignal plus kvm_run->immediate_exit, so a kick that lands just before KVM_RUN is not
// lost: that KVM_RUN returns EINTR at once (after completing any pending port-I/O read, so the
// saved state is consistent).
//
//   paused --resume--> running --pause--> paused
//   running --(shutdown, entry failure, internal error)--> failed   (terminal; failure() says why)
//   any --stop / destructor--> stopped                               (terminal)
//
// Exits: port I/O goes to the PortIoBus, MMIO to the MmioBus (without one, MMIO reads as all
// ones and writes are dropped); MMIO exits are counted; HLT (only without an in-kernel irqchip) idles until resumed.
//
// Threading: all public methods may be called from any one controlling thread; the Vcpu and the
// bus are used only by the vCPU thread while it exists (run_paused hands the Vcpu to a task).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "backends/realtime_boost.hpp"

namespace colo::kvm {

class Vcpu;
class PortIoBus;
class MmioBus;

class VcpuThread {
public:
    enum class State { paused, running, failed, stopped };

    // The kick signal (SIGRTMIN + 2): a no-op handler, installed once per process.
    static int kick_signal();

    // Starts the thread in `paused`. vcpu and the buses must outlive this object.
    VcpuThread(Vcpu& vcpu, PortIoBus& bus, MmioBus* mmio = nullptr);
    VcpuThread(const VcpuThread&) = delete;
    VcpuThread& operator=(const VcpuThread&) = delete;
    ~VcpuThread();  // stop(); never throws

    // paused -> running, forgetting any kick left from before (a pause the vCPU answered by
    // failing). Throws colo::Error (with the reason) when the vCPU has failed.
    void resume();
    // running -> paused; returns when the vCPU is out of KVM_RUN. No-op unless running.
    void pause();
    // From the next pause on, the thread runs at real-time priority from the kick until resume()
    // (backends/realtime_boost.hpp): a pause then does not wait for it behind other work.
    void set_realtime_pause(bool on);
    void stop() noexcept;
    // Runs task(vcpu) on the vCPU thread and returns its result or rethrows its exception.
    // Refused (colo::Error) unless paused or failed: state is only read from a stopped vCPU.
    void run_paused(const std::function<void(Vcpu&)>& task);
    // failed -> paused, forgetting the failure: for after the vCPU's whole state was restored
    // (a COLO secondary that crashed between checkpoints is brought back by the next one).
    void revive();

    [[nodiscard]] State state() const;
    [[nodiscard]] std::string failure() const;
    [[nodiscard]] std::uint64_t mmio_exits() const noexcept { return mmio_exits_.load(); }

private:
    void main();
    void handle_exit();  // on the vCPU thread, after KVM_RUN returned an exit
    void kick();

    Vcpu& vcpu_;
    PortIoBus& bus_;
    MmioBus* mmio_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    State state_ = State::paused;
    bool pause_requested_ = false;
    bool stop_requested_ = false;
    const std::function<void(Vcpu&)>* task_ = nullptr;
    std::exception_ptr task_error_;
    bool task_done_ = false;
    std::string failure_;
    std::atomic<pid_t> thread_id_{0};  // set by the thread itself as it starts
    bool realtime_pause_ = false;
    std::optional<RealtimeBoost> boost_;  // while paused with realtime_pause_
    std::atomic<std::uint64_t> mmio_exits_{0};
    std::thread thread_;
};

}  // namespace colo::kvm
