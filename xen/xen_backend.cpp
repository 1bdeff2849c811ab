#include "xen/xen_backend.hpp"

#include <bit>
#include <cstdlib>
#include <cstring>

#include "backends/error.hpp"
#include "xen/hvm_context.hpp"
#include "xen/hvm_params.hpp"

namespace colo::xen {

CheckpointStyle parse_checkpoint_style(const std::string& text) {
    if (text == "auto") return CheckpointStyle::automatic;
    if (text == "cooperative") return CheckpointStyle::cooperative;
    if (text == "transparent") return CheckpointStyle::transparent;
    throw Error("checkpoint_style must be \"auto\", \"cooperative\" or \"transparent\", not \"" + text + "\"");
}

XenBackend::XenBackend(std::unique_ptr<XenCalls> calls, DomainId domain, std::string name,
                       std::uint64_t map_chunk_pages, CheckpointStyle style, const std::vector<VifConfig>& vifs)
    : calls_(std::move(calls)), domain_(domain), name_(std::move(name)), cache_(*calls_, domain, map_chunk_pages) {
    attach();
    for (unsigned i = 0; i < vifs.size(); ++i) nics_.push_back(std::make_unique<XenVifNic>(domain_, i, vifs[i], true));
    if (style == CheckpointStyle::transparent) return;
    // A guest can suspend itself with PV drivers (an event-channel upcall) and a way to be asked.
    if (calls_->hvm_param(domain_, kHvmParamCallbackIrq) != 0) {
        if (const auto port = suspend_channel()) {
            suspend_remote_port_ = *port;
            suspend_port_ = calls_->evtchn_bind(domain_, suspend_remote_port_);
            cooperative_ = true;
        } else {
            // Linux writes control/feature-suspend = 1 once its shutdown watch is set up; before
            // that a "suspend" request would go unanswered.
            const auto feature = calls_->xenstore_read(control_path() + "/feature-suspend");
            cooperative_ = feature && *feature == "1";
        }
    }
    if (!cooperative_ && style == CheckpointStyle::cooperative) {
        throw Error(who() + ": checkpoint_style is \"cooperative\", but the guest cannot suspend itself (it needs "
                            "PV drivers, an event-channel upcall, and to publish control/feature-suspend in xenstore)");
    }
}

std::optional<std::uint32_t> XenBackend::suspend_channel() {
    const auto channel = calls_->xenstore_read("/local/domain/" + std::to_string(domain_) + "/device/suspend/event-channel");
    if (!channel || channel->empty()) return std::nullopt;
    char* end = nullptr;
    const unsigned long port = std::strtoul(channel->c_str(), &end, 10);
    if (*end != '\0' || port == 0 || port > 0xffffffffUL) {
        throw Error(who() + ": its device/suspend/event-channel is '" + *channel + "', not a port number");
    }
    return static_cast<std::uint32_t>(port);
}

XenBackend::XenBackend(std::unique_ptr<XenCalls> calls, const IncomingGuest& incoming, std::uint64_t map_chunk_pages)
    : calls_(std::move(calls)),
      incoming_(std::in_place, *calls_, incoming.domain_config, incoming.name),
      domain_(incoming_->id()),
      name_(incoming.name),
      cache_(*calls_, domain_, map_chunk_pages) {
    attach();
    // Detached: the PVM's NICs own the network until a takeover.
    for (unsigned i = 0; i < incoming.vifs.size(); ++i) {
        nics_.push_back(std::make_unique<XenVifNic>(domain_, i, incoming.vifs[i], false));
    }
    unwritten_ = ram_;
    has_unwritten_ = true;
    // libxl_domain_create_new leaves the domain paused; that pause is ours to undo in resume().
    std::lock_guard lock(pause_mutex_);
    paused_ = true;
}

void XenBackend::attach() {
    const DomainInfo info = calls_->domain_info(domain_);
    if (info.dying || info.shutdown) throw Error(who() + " is shutting down; nothing to replicate");
    if (!info.hvm) {
        throw Error(who() + " is a PV guest: dirty-page logging needs HAP, which only HVM and PVH "
                            "guests have (this Xen has no shadow paging); recreate it with type=\"pvh\"");
    }
    if (!info.hap) {
        throw Error(who() + " runs on shadow page tables: dirty-page logging needs HAP (hap=1 in its "
                            "config, and a CPU with EPT/NPT)");
    }
    log_frames_ = calls_->maximum_gpfn(domain_).value + 1;
    populated_ = info.pages;
    regions_ = cache_.probe(Pfn{log_frames_}, populated_);
    if (regions_.empty()) throw Error(who() + " has no memory that can be mapped");
    ram_ = DirtyBitmap(log_frames_);
    for (const auto& r : regions_) ram_.set_range(r.first, r.pages);
    clean_.assign((log_frames_ + 63) / 64, 0);
    const std::uint64_t console = calls_->hvm_param(domain_, kHvmParamConsolePfn);
    if (console != 0 && console < log_frames_ && ram_.test(Pfn{console})) {
        console_frame_ = Pfn{console};
        has_console_ = true;
    }
}

XenBackend::~XenBackend() {
    if (logging_ && !destroyed_) {
        try {
            calls_->logdirty_off(domain_);
        } catch (...) {
            // The domain may be gone (failover); log-dirty then went with it.
        }
    }
}

std::string XenBackend::who() const { return "xen domain " + std::to_string(domain_) + " (" + name_ + ")"; }

void XenBackend::pause() {
    {
        std::lock_guard lock(pause_mutex_);
        if (!paused_) {
            calls_->pause(domain_);
            paused_ = true;
        }
    }
    poll_console();
}

void XenBackend::resume() {
    std::lock_guard lock(pause_mutex_);
    if (paused_) {
        calls_->unpause(domain_);
        paused_ = false;
    }
}

bool XenBackend::paused() const {
    std::lock_guard lock(pause_mutex_);
    return paused_;
}

void XenBackend::start_dirty_log() {
    if (logging_) return;
    try {
        calls_->logdirty_enable(domain_);
    } catch (const SystemError&) {
        // There is no "is log-dirty on?" op. An earlier run that died without OFF leaves it on
        // and ENABLE then fails, so turn it off and enable again; if that fails too, the second
        // error is the one that explains.
        calls_->logdirty_off(domain_);
        calls_->logdirty_enable(domain_);
    }
    logging_ = true;
}

void XenBackend::stop_dirty_log() {
    if (!logging_) return;
    logging_ = false;
    calls_->logdirty_off(domain_);
}

void XenBackend::harvest_dirty(DirtyBitmap& into) {
    if (!logging_) throw Error(who() + ": harvest_dirty without start_dirty_log");
    if (into.size() != frame_limit()) {
        throw Error(who() + ": dirty bitmap has " + std::to_string(into.size()) + " frames, the guest " +
                    std::to_string(frame_limit()));
    }
    calls_->logdirty_clean(domain_, clean_, log_frames_);
    // Only RAM goes to the pipeline: a bit for a hole could not be read anyway.
    const auto ram_words = ram_.words();
    for (std::size_t w = 0; w < clean_.size(); ++w) {
        std::uint64_t bits = clean_[w] & ram_words[w];
        while (bits != 0) {
            const auto bit = static_cast<std::uint64_t>(std::countr_zero(bits));
            into.set(Pfn{w * 64 + bit});
            bits &= bits - 1;
        }
    }
    poll_console();
}

std::vector<StateRecord> XenBackend::save_state() {
    if (!paused()) throw Error(who() + ": cannot save its state while it runs; pause it first");
    std::vector<HvmParam> params;
    for (const CarriedHvmParam& p : kCarriedHvmParams) {
        // As in Xen's stream, a param that is 0 is left out: a fresh domain has it 0 too.
        if (const std::uint64_t value = calls_->hvm_param(domain_, p.index); value != 0) {
            params.push_back(HvmParam{p.index, value});
        }
    }
    std::vector<StateRecord> state;
    state.push_back(StateRecord{kHvmContextTag, kHvmContextVersion, calls_->hvm_get_context(domain_)});
    state.push_back(StateRecord{kHvmParamsTag, kHvmParamsVersion, encode_hvm_params(params)});
    return state;
}

void XenBackend::restore_state(std::span<const StateRecord> state) {
    if (!paused()) throw Error(who() + ": cannot restore state while it runs; pause it first");
    const StateRecord* context = nullptr;
    const StateRecord* params = nullptr;  // absent in a state from before the params were carried
    for (const StateRecord& record : state) {
        const StateRecord** slot = record.tag == kHvmContextTag ? &context : record.tag == kHvmParamsTag ? &params : nullptr;
        if (slot == nullptr) {
            throw Error(who() + ": unknown state record tag " + std::to_string(record.tag) +
                        " (expected the HVM context, tag " + std::to_string(kHvmContextTag) + ", and the HVM params, tag " +
                        std::to_string(kHvmParamsTag) + ")");
        }
        if (*slot != nullptr) throw Error(who() + ": two state records with tag " + std::to_string(record.tag));
        *slot = &record;
    }
    if (context == nullptr) {
        throw Error(who() + ": no HVM context record (tag " + std::to_string(kHvmContextTag) + ") among " +
                    std::to_string(state.size()) + " state records");
    }
    if (context->version != kHvmContextVersion) {
        throw Error(who() + ": HVM context record version " + std::to_string(context->version) +
                    " is not supported (have " + std::to_string(kHvmContextVersion) + ")");
    }
    if (params != nullptr && params->version != kHvmParamsVersion) {
        throw Error(who() + ": HVM params record version " + std::to_string(params->version) +
                    " is not supported (have " + std::to_string(kHvmParamsVersion) + ")");
    }
    check_hvm_context(context->data);
    // The params go first, as in Xen's restore: the context's records are checked against some
    // of them (a Viridian record needs VIRIDIAN set).
    if (params != nullptr) restore_hvm_params(params->data);
    zero_unwritten();
    calls_->hvm_set_context(domain_, context->data);
}

void XenBackend::restore_hvm_params(std::span<const std::byte> record) {
    const std::vector<HvmParam> params = decode_hvm_params(record);
    // Every check before the first set: a refused state changes nothing.
    std::vector<HvmParam> to_set;
    for (const HvmParam& p : params) {
        const CarriedHvmParam& carried = *carried_hvm_param(p.index);
        const std::uint64_t here = calls_->hvm_param(domain_, p.index);
        if (here == p.value) continue;
        if (carried.use == HvmParamUse::same_page) {
            throw Error(who() + ": HVM param " + carried.name + " is " + std::to_string(p.value) +
                        " in the sent state but " + std::to_string(here) +
                        " here, and dom0's services already use this domain's page (was it built from another "
                        "configuration?)");
        }
        to_set.push_back(p);
    }
    for (const HvmParam& p : to_set) calls_->hvm_param_set(domain_, p.index, p.value);
}

void XenBackend::zero_unwritten() {
    if (!has_unwritten_) return;
    unwritten_.for_each_run([&](Pfn first, std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
            const Pfn pfn = first + i;
            std::byte* page = cache_.page(pfn, MapAccess::read_write);
            const auto zero = [&] { std::memset(page, 0, kPageSize); };
            if (console_ && has_console_ && pfn == console_frame_) console_->rebase_around(zero);
            else zero();
        }
    });
    unwritten_ = DirtyBitmap();
    has_unwritten_ = false;
}

void XenBackend::set_console_sink(ConsoleSink sink) {
    if (!has_console_) return;
    if (console_) {
        // One reader for the domain's whole life: a new reader would start at the ring's current
        // end and lose what the guest wrote since the old one last looked (a console line lost
        // at every protect, when the pipeline takes the console over).
        console_->set_sink(std::move(sink));
        return;
    }
    if (!sink) return;
    // A mapping of its own: the cache may replace its chunk mappings (read-only to writable)
    // while the reader thread is looking at the ring.
    int error = 0;
    ForeignMapping ring = calls_->map_foreign(domain_, MapAccess::read_only, std::span(&console_frame_, 1),
                                              std::span(&error, 1));
    if (error != 0) throw SystemError("xenforeignmemory_map", error, who() + " console ring");
    console_ = std::make_unique<ConsoleReader>(std::move(ring), std::move(sink));
}

std::vector<GuestNic*> XenBackend::nics() {
    std::vector<GuestNic*> out;
    for (auto& nic : nics_) out.push_back(nic.get());
    return out;
}

std::string XenBackend::domain_config() { return calls_->domain_config(domain_); }

std::string XenBackend::commit_incoming() { return incoming_ ? incoming_->commit() : std::string{}; }

bool XenBackend::suspended() {
    const DomainInfo info = calls_->domain_info(domain_);
    if (!info.shutdown) return false;
    if (info.shutdown_reason == kShutdownSuspend) return true;
    throw Error(who() + " shut down (reason " + std::to_string(info.shutdown_reason) + ") instead of suspending");
}

void XenBackend::request() {
    // The event channel is the fast path (no xenstore round trip); Linux's watch on
    // control/shutdown acknowledges by clearing the node, then freezes its tasks and devices and
    // makes the suspend hypercall.
    if (suspend_port_) calls_->evtchn_notify(*suspend_port_);
    else calls_->xenstore_write(control_path() + "/shutdown", "suspend");
}

std::string XenBackend::how() const {
    if (suspend_port_) return "suspend event channel (guest port " + std::to_string(suspend_remote_port_) + ")";
    return "xenstore " + control_path() + "/shutdown";
}

GuestSuspend::Withdrawal XenBackend::withdraw() {
    bool taken = true;  // a notification cannot be taken back
    if (!suspend_port_) {
        // Linux reads and clears control/shutdown in one xenstore transaction: our write between
        // its read and its commit makes it retry and find nothing to do. A node it cleared
        // already means it took the request.
        const std::string request = control_path() + "/shutdown";
        const auto pending = calls_->xenstore_read(request);
        if (pending && *pending == "suspend") {
            calls_->xenstore_write(request, "");
            taken = false;
        }
    }
    if (suspended()) return Withdrawal::suspended;
    return taken ? Withdrawal::taken : Withdrawal::withdrawn;
}

void XenBackend::resume_cancelled() { calls_->resume_cancelled(domain_); }

void XenBackend::destroy_after_save() {
    calls_->destroy_domain(domain_);
    destroyed_ = true;
}

std::string XenBackend::replication_caveat() {
    if (cooperative_) return {};  // it rebinds what Xen holds itself, on a takeover's resume
    // A guest that registered an event-channel upcall (a PV-aware kernel such as Linux) keeps
    // state in Xen itself: bound event channels, its timer, where its vcpu_info and shared_info
    // live. None of it is guest memory or HVM context, so a replica built from those two waits
    // for events that never come. (xl remus and Xen's COLO suspend such a guest cooperatively at
    // every checkpoint so that it rebinds all of it on resume; colo-replicate does not yet.)
    std::uint64_t callback = 0;
    try {
        callback = calls_->hvm_param(domain_, kHvmParamCallbackIrq);
    } catch (const Error&) {
        return {};  // nothing known: no warning rather than a wrong one
    }
    if (callback == 0) return {};
    return "xen domain " + std::to_string(domain_) + " (" + name_ +
           ") uses Xen event channels (a PV-aware kernel such as Linux); their state lives in Xen, not in "
           "guest memory or the HVM context, so after a takeover or migration the replica will not get its "
           "events (see colo-replicate(7), Xen)";
}

void XenBackend::poll_console() {
    if (console_) console_->poll();
}

void XenBackend::check_ram(Pfn pfn) const {
    if (pfn.value >= log_frames_ || !ram_.test(pfn)) {
        throw Error(who() + ": frame " + std::to_string(pfn.value) + " is not guest RAM");
    }
}

void XenBackend::read_pages(std::span<const Pfn> frames, std::span<std::byte> out) {
    if (out.size() != frames.size() * kPageSize) {
        throw Error(who() + ": read_pages buffer of " + std::to_string(out.size()) + " bytes for " +
                    std::to_string(frames.size()) + " frames");
    }
    for (std::size_t i = 0; i < frames.size(); ++i) {
        check_ram(frames[i]);
        std::memcpy(out.data() + i * kPageSize, cache_.page(frames[i], MapAccess::read_only), kPageSize);
    }
}

void XenBackend::write_pages(std::span<const Pfn> frames, std::span<const std::byte> in) {
    if (in.size() != frames.size() * kPageSize) {
        throw Error(who() + ": write_pages buffer of " + std::to_string(in.size()) + " bytes for " +
                    std::to_string(frames.size()) + " frames");
    }
    for (std::size_t i = 0; i < frames.size(); ++i) {
        check_ram(frames[i]);
        if (has_unwritten_) unwritten_.clear(frames[i]);
        std::byte* page = cache_.page(frames[i], MapAccess::read_write);
        const auto copy = [&] { std::memcpy(page, in.data() + i * kPageSize, kPageSize); };
        // The console ring arrives with the sender's output in it (and its out_prod): that is
        // output the sender's stream already carries, so the reader starts again after it.
        if (console_ && has_console_ && frames[i] == console_frame_) console_->rebase_around(copy);
        else copy();
    }
}

}  // namespace colo::xen
