// A guest that takes part in its own checkpoints: asked, it brings itself to a point where all
// the state it keeps outside its memory and vCPUs (in the hypervisor) can be rebuilt, and stops
// there. Xen's PV-aware kernels are such guests: a Linux PVH domain's event channels, timers,
// vcpu_info and shared_info registrations live in Xen, and only a guest that suspended itself
// (SCHEDOP_shutdown/SHUTDOWN_suspend) re-binds them all when it wakes in another domain. So the
// image a checkpoint takes of such a guest is the suspended one: the replica that resumes from it
// rebinds everything; the primary is told the suspend was cancelled and keeps its bindings (what
// xl remus does at every checkpoint).
//
// The checkpoint device layer drives it (toolstack/replication/guest_suspend_device.hpp): request
// and wait for suspended() before the checkpoint pauses the guest, resume_cancelled after the
// checkpoint is captured and before the guest runs again.
//
// Threading: the pipeline thread only.
#pragma once

#include <string>

namespace colo {

class GuestSuspend {
public:
    virtual ~GuestSuspend() = default;

    // Asks the guest to suspend itself; returns at once (the guest takes milliseconds, or far
    // longer on a loaded host: the caller polls suspended() and keeps its link alive meanwhile).
    // Throws colo::Error when the request cannot be made at all.
    virtual void request() = 0;
    // Whether the guest is suspended now: it runs no code until resume_cancelled. Throws
    // colo::Error when it stopped for another reason (it shut down or crashed instead).
    [[nodiscard]] virtual bool suspended() = 0;
    // What withdraw found.
    enum class Withdrawal {
        withdrawn,  // the guest had not seen the request, and now never acts on it
        taken,      // it took the request already (or a notification, which cannot be taken
                    // back, is pending): it may suspend any moment, or run on if its own suspend fails
        suspended,  // it is suspended now
    };
    // It did not suspend in time: withdraws the request unless the guest has taken it already.
    // A taken request is the caller's to see through: wait a while for the suspension and resume
    // it (toolstack/replication/guest_suspend_device.hpp), or the guest stays suspended with
    // nobody to resume it.
    [[nodiscard]] virtual Withdrawal withdraw() = 0;
    // The guest is suspended: lets it continue as if the suspend had been cancelled, with every
    // binding it had. A paused guest (a checkpoint's) continues once unpaused; one that is not
    // (a suspension the caller gives up on) at once. Throws colo::SystemError.
    virtual void resume_cancelled() = 0;
    // How the guest is asked, for messages ("xenstore /local/domain/5/control/shutdown"). The
    // same for the guest's whole life: callers may keep it.
    [[nodiscard]] virtual std::string how() const = 0;
};

}  // namespace colo
