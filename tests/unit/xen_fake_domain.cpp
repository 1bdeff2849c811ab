#include "tests/unit/xen_fake_domain.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "backends/error.hpp"
#include "xen/hvm_context.hpp"

namespace colo::xen {

FakeDomain::FakeDomain(DomainId id, std::uint64_t frames) : frames_(frames), dirty_(frames) {
    info.id = id;
    info.hvm = true;
    info.hap = true;
    info.pages = frames;
    info.vcpus = 1;
    memfd_ = check_syscall(::memfd_create("fake-xen-domain", MFD_CLOEXEC), "memfd_create");
    check_syscall(::ftruncate(memfd_, static_cast<off_t>(frames * kPageSize)), "ftruncate");
    void* ram = ::mmap(nullptr, frames * kPageSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
    if (ram == MAP_FAILED) throw SystemError("mmap", errno, "fake domain RAM");
    ram_ = static_cast<std::byte*>(ram);
}

FakeDomain::~FakeDomain() {
    journal->push_back("destroyed with " + std::to_string(live_.size()) + " mappings");
    for (const auto& [address, pages] : live_) ::munmap(address, pages * kPageSize);
    ::munmap(ram_, frames_ * kPageSize);
    ::close(memfd_);
}

void FakeDomain::make_hole(Pfn first, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) holes_.insert(first.value + i);
    info.pages -= count;
}

void FakeDomain::defer_frame(Pfn pfn, unsigned times) { deferred_[pfn.value] = times; }

void FakeDomain::fail_frame(Pfn pfn, int error_number) { failed_[pfn.value] = error_number; }

void FakeDomain::fail_next(const std::string& op, int error_number, unsigned times) {
    injected_[op] = Injected{error_number, times};
}

void FakeDomain::guest_write(Pfn pfn, std::byte fill) {
    std::memset(frame(pfn), static_cast<int>(fill), kPageSize);
    if (logdirty_on) dirty_.set(pfn);
}

std::byte* FakeDomain::frame(Pfn pfn) {
    if (pfn.value >= frames_ || holes_.count(pfn.value) != 0) {
        throw Error("fake domain: frame " + std::to_string(pfn.value) + " is not RAM");
    }
    return ram_ + pfn.value * kPageSize;
}

int FakeDomain::enter(const std::string& op, DomainId domain) {
    log.push_back(op);
    journal->push_back(op);
    if (auto it = injected_.find(op); it != injected_.end() && it->second.times > 0) {
        --it->second.times;
        return it->second.error_number;
    }
    if (op != "domain_by_name" && domain != info.id) return ESRCH;
    return 0;
}

int FakeDomain::frame_error(Pfn pfn) {
    if (pfn.value >= frames_ || holes_.count(pfn.value) != 0) return EINVAL;
    if (auto it = failed_.find(pfn.value); it != failed_.end()) return it->second;
    if (auto it = deferred_.find(pfn.value); it != deferred_.end() && it->second > 0) {
        --it->second;
        return ENOENT;
    }
    return 0;
}

int FakeDomain::do_domain_info(DomainId domain, DomainInfo& out) {
    if (const int e = enter("domain_info", domain)) return e;
    catch_up();
    out = info;
    return 0;
}

int FakeDomain::do_pause(DomainId domain) {
    std::this_thread::yield();  // a hypercall takes a while: another caller may run meanwhile
    std::lock_guard lock(pause_mutex_);
    if (const int e = enter("pause", domain)) return e;
    ++counters.pauses;
    counters.max_pause_depth = std::max(counters.max_pause_depth, ++counters.pause_depth);
    info.paused = true;
    return 0;
}

int FakeDomain::do_unpause(DomainId domain) {
    std::this_thread::yield();
    std::lock_guard lock(pause_mutex_);
    if (const int e = enter("unpause", domain)) return e;
    if (counters.pause_depth == 0) return EINVAL;  // Xen refuses to unpause a domain nobody paused
    ++counters.unpauses;
    info.paused = --counters.pause_depth > 0;
    return 0;
}

int FakeDomain::do_maximum_gpfn(DomainId domain, std::uint64_t& out) {
    if (const int e = enter("maximum_gpfn", domain)) return e;
    out = frames_ - 1;
    return 0;
}

int FakeDomain::do_logdirty_enable(DomainId domain) {
    if (const int e = enter("logdirty_enable", domain)) return e;
    if (logdirty_on) return EINVAL;  // Xen: paging_log_dirty_enable on a domain already logging
    ++counters.enables;
    logdirty_on = true;
    dirty_.clear_all();
    return 0;
}

int FakeDomain::do_logdirty_off(DomainId domain) {
    if (const int e = enter("logdirty_off", domain)) return e;
    ++counters.offs;
    logdirty_on = false;
    return 0;
}

int FakeDomain::do_logdirty_clean(DomainId domain, std::span<std::uint64_t> bitmap, std::uint64_t pages) {
    if (const int e = enter("logdirty_clean", domain)) return e;
    if (!logdirty_on) return EINVAL;
    ++counters.cleans;
    std::fill(bitmap.begin(), bitmap.end(), 0);
    for (const Pfn pfn : dirty_.frames()) {
        if (pfn.value < pages) bitmap[pfn.value / 64] |= std::uint64_t{1} << (pfn.value % 64);
    }
    dirty_.clear_all();
    return 0;
}

int FakeDomain::do_hvm_context_size(DomainId domain, std::uint32_t& out) {
    if (const int e = enter("hvm_context_size", domain)) return e;
    out = static_cast<std::uint32_t>(hvm_context.size() + 128);  // Xen answers an upper bound
    return 0;
}

int FakeDomain::do_hvm_get_context(DomainId domain, std::span<std::byte> buffer, std::uint32_t& used) {
    if (const int e = enter("hvm_get_context", domain)) return e;
    if (buffer.size() < hvm_context.size()) return ENOSPC;
    std::memcpy(buffer.data(), hvm_context.data(), hvm_context.size());
    used = static_cast<std::uint32_t>(hvm_context.size());
    return 0;
}

int FakeDomain::do_hvm_set_context(DomainId domain, std::span<const std::byte> context) {
    if (const int e = enter("hvm_set_context", domain)) return e;
    ++counters.set_contexts;
    hvm_context.assign(context.begin(), context.end());
    return 0;
}

int FakeDomain::do_hvm_param(DomainId domain, std::uint32_t index, std::uint64_t& out) {
    if (const int e = enter("hvm_param", domain)) return e;
    auto it = params.find(index);
    out = it == params.end() ? 0 : it->second;
    return 0;
}

int FakeDomain::do_hvm_param_set(DomainId domain, std::uint32_t index, std::uint64_t value) {
    if (const int e = enter("hvm_param_set", domain)) return e;
    ++counters.param_sets;
    params[index] = value;
    return 0;
}

void FakeDomain::make_cooperative(bool answers) {
    params[kHvmParamCallbackIrq] = 0x0200000000000000ull | 0xf3;  // a vector upcall, as Linux PVH sets
    const std::string control = "/local/domain/" + std::to_string(info.id) + "/control";
    xenstore[control + "/feature-suspend"] = "1";
    on_xenstore_write = [this, control, answers](const std::string& path, const std::string& value) {
        if (!answers || path != control + "/shutdown" || value != "suspend") return;
        xenstore[path] = "";
        info.shutdown = true;
        info.shutdown_reason = kShutdownSuspend;
    };
}

void FakeDomain::offer_suspend_channel(std::uint32_t port) {
    make_cooperative(false);
    xenstore.erase("/local/domain/" + std::to_string(info.id) + "/control/feature-suspend");
    xenstore["/local/domain/" + std::to_string(info.id) + "/device/suspend/event-channel"] = std::to_string(port);
}

void FakeDomain::take_requests_late(std::chrono::milliseconds delay) {
    make_cooperative(false);
    take_delay_ = delay;
    on_xenstore_write = [this](const std::string& path, const std::string& value) {
        // While suspended it runs no watch: the node waits for it to wake.
        catch_up();
        if (path != shutdown_node() || value != "suspend" || info.shutdown) return;
        xenstore[path] = "";
        take_request();
    };
}

std::string FakeDomain::shutdown_node() const { return "/local/domain/" + std::to_string(info.id) + "/control/shutdown"; }

void FakeDomain::catch_up() {
    if (!suspend_at_ || std::chrono::steady_clock::now() < *suspend_at_) return;
    suspend_at_.reset();
    info.shutdown = true;
    info.shutdown_reason = kShutdownSuspend;
}

void FakeDomain::take_request() {
    ++suspend_requests;
    if (!suspend_at_) suspend_at_ = std::chrono::steady_clock::now() + *take_delay_;
}

int FakeDomain::do_evtchn_bind(DomainId domain, std::uint32_t remote_port, std::uint32_t& local_port) {
    if (const int e = enter("evtchn_bind", domain)) return e;
    local_port = 100 + static_cast<std::uint32_t>(bound_ports.size());
    bound_ports[local_port] = remote_port;
    return 0;
}

int FakeDomain::do_evtchn_notify(std::uint32_t local_port) {
    if (const int e = enter("evtchn_notify", info.id)) return e;
    if (bound_ports.count(local_port) == 0) return EINVAL;
    ++notifications;
    if (take_delay_) {
        catch_up();
        if (info.shutdown) queued_ = true;  // pending on its port until it wakes
        else take_request();
        return 0;
    }
    info.shutdown = true;
    info.shutdown_reason = kShutdownSuspend;
    return 0;
}

int FakeDomain::do_resume_cancelled(DomainId domain) {
    if (const int e = enter("resume_cancelled", domain)) return e;
    catch_up();
    // libxc refuses a domain that is not in the suspended state.
    if (!info.shutdown || info.shutdown_reason != kShutdownSuspend) return EINVAL;
    info.shutdown = false;
    info.shutdown_reason = 0;
    ++counters.cancelled_resumes;
    // Awake, it acts on what was asked while it slept.
    const auto node = xenstore.find(shutdown_node());
    if (take_delay_ && (queued_ || (node != xenstore.end() && node->second == "suspend"))) {
        queued_ = false;
        xenstore[shutdown_node()] = "";
        take_request();
    }
    return 0;
}

int FakeDomain::do_xenstore_read(const std::string& path, std::string& out) {
    if (const int e = enter("xenstore_read", info.id)) return e;
    const auto it = xenstore.find(path);
    if (it == xenstore.end()) return ENOENT;
    out = it->second;
    return 0;
}

int FakeDomain::do_xenstore_write(const std::string& path, const std::string& value) {
    if (const int e = enter("xenstore_write", info.id)) return e;
    xenstore[path] = value;
    if (on_xenstore_write) on_xenstore_write(path, value);
    return 0;
}

int FakeDomain::do_map_foreign(DomainId domain, MapAccess access, std::span<const Pfn> frames,
                               std::span<int> errors, std::byte*& out) {
    if (const int e = enter("map_foreign", domain)) return e;
    ++counters.map_calls;
    map_accesses.push_back(access);
    const std::size_t bytes = frames.size() * kPageSize;
    void* reserved = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (reserved == MAP_FAILED) return errno;
    auto* base = static_cast<std::byte*>(reserved);
    const int prot = access == MapAccess::read_write ? PROT_READ | PROT_WRITE : PROT_READ;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        errors[i] = frame_error(frames[i]);
        if (errors[i] != 0) continue;
        void* page = ::mmap(base + i * kPageSize, kPageSize, prot, MAP_SHARED | MAP_FIXED, memfd_,
                            static_cast<off_t>(frames[i].value * kPageSize));
        if (page == MAP_FAILED) {
            const int e = errno;
            ::munmap(base, bytes);
            return e;
        }
        ++counters.mapped_frames;
    }
    live_[base] = frames.size();
    out = base;
    return 0;
}

int FakeDomain::do_unmap_foreign(std::byte* address, std::size_t pages) noexcept {
    log.push_back("unmap_foreign");
    journal->push_back("unmap_foreign");
    auto it = live_.find(address);
    if (it == live_.end() || it->second != pages) return EINVAL;
    live_.erase(it);
    ++counters.unmaps;
    return ::munmap(address, pages * kPageSize) == 0 ? 0 : errno;
}

int FakeDomain::do_domain_by_name(const std::string& name, DomainId& out) {
    if (const int e = enter("domain_by_name", 0)) return e;
    auto it = names.find(name);
    if (it == names.end()) return ESRCH;
    out = it->second;
    return 0;
}

int FakeDomain::do_domain_config(DomainId domain, std::string& json, const char*& failed_call) {
    failed_call = "libxl_retrieve_domain_configuration";
    if (const int e = enter("domain_config", domain)) return e;
    failed_call = "libxl_domain_config_to_json";
    json = config_json;
    return 0;
}

int FakeDomain::do_create_domain(const std::string& json, const std::string& name, DomainId& out,
                                 const char*& failed_call) {
    // A config that does not start like JSON fails as libxl's parser would.
    failed_call = "libxl_domain_config_from_json";
    if (json.empty() || json.front() != '{') return EINVAL;
    failed_call = "libxl_domain_create_new";
    if (const int e = enter("create_domain", info.id)) return e;
    if (names.count(name) != 0) return EINVAL;  // libxl: "domain with name ... already exists"
    created_from = json;
    created_as = name;
    names[name] = info.id;
    info.paused = true;  // libxl_domain_create_new leaves it paused: one pause to undo
    counters.pause_depth = counters.max_pause_depth = 1;
    out = info.id;
    return 0;
}

int FakeDomain::do_rename_domain(DomainId domain, const std::string& from, const std::string& to) {
    if (const int e = enter("rename_domain", domain)) return e;
    auto it = names.find(from);
    if (it == names.end() || it->second != domain || names.count(to) != 0) return EINVAL;
    names.erase(it);
    names[to] = domain;
    return 0;
}

int FakeDomain::do_destroy_domain(DomainId domain) {
    if (const int e = enter("destroy_domain", domain)) return e;
    destroyed = true;
    std::erase_if(names, [&](const auto& entry) { return entry.second == domain; });
    return 0;
}

std::vector<std::byte> make_hvm_context(std::uint8_t seed) {
    std::vector<std::byte> blob;
    auto put = [&](const auto& value) {
        const auto* p = reinterpret_cast<const std::byte*>(&value);
        blob.insert(blob.end(), p, p + sizeof value);
    };
    auto descriptor = [&](std::uint16_t typecode, std::uint32_t length) {
        put(typecode);
        put(std::uint16_t{0});
        put(length);
    };
    descriptor(kHvmSaveCodeHeader, kHvmSaveHeaderSize);
    put(kHvmSaveMagic);
    put(std::uint32_t{1});      // version
    put(std::uint64_t{0});      // changeset
    put(std::uint32_t{0x806ec});  // cpuid
    put(std::uint32_t{0});      // gtsc_khz
    descriptor(2, 64);          // a "CPU" record
    for (int i = 0; i < 64; ++i) blob.push_back(static_cast<std::byte>(seed + i));
    descriptor(kHvmSaveCodeEnd, 0);
    return blob;
}

}  // namespace colo::xen
