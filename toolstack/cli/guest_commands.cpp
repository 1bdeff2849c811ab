// create, list, console, destroy, pause, unpause: the guest lifecycle, xl style. A guest lives in
// the process that created it (our own VMM for KVM); the other commands reach it through its
// control socket (toolstack/control/).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <thread>

#include "backends/disk_replica_marker.hpp"
#include "backends/error.hpp"
#include "toolstack/backends_available.hpp"
#include "toolstack/cli/commands.hpp"
#include "toolstack/control/control_socket.hpp"
#include "toolstack/control/daemon.hpp"
#include "toolstack/control/guest_service.hpp"
#include "toolstack/control/primary_marker.hpp"
#include "toolstack/control/run_dir.hpp"
#include "toolstack/guest_image.hpp"
#include "toolstack/primary_side.hpp"
#include "toolstack/transport/file_stream.hpp"

namespace colo::cli {

namespace {

control::GuestService* g_service = nullptr;
void stop_service() {
    if (g_service != nullptr) g_service->request_stop();
}

std::string name_arg(const po::variables_map& vm) { return vm["name"].as<std::string>(); }


// Brings a freshly made backend up as a served guest, in this process.
void serve_guest(std::unique_ptr<Backend> backend, const GuestConfig& config, const po::variables_map& vm,
                 bool foreground, const std::function<void()>& ready) {
    control::GuestService service(std::move(backend), config);
    if (vm.count("console-log") != 0) {
        service.console().open_log(vm["console-log"].as<std::string>());
        service.console().start_at_log_end();
    }
    service.console().copy_to_stdout(foreground);
    service.release_console_directly();
    // Its console stream started here (at the log's end); protection goes on from where it stands.
    PrimarySide replication(service, PrimarySide::Arrival{{}, [&service] { return service.console().next_offset(); }});
    service.bind();
    g_service = &service;
    control::on_termination_signal(stop_service);
    if (vm.count("paused") == 0) service.backend().resume();
    ready();
    service.serve();
    g_service = nullptr;
}

// A guest runs on its disks only when they are disks: present, and not a secondary's replica
// that was never taken over (backends/disk_replica_marker.hpp).
void check_disks_usable(const GuestConfig& config) {
    for (const DiskConfig& disk : config.disks) {
        if (!std::filesystem::exists(disk.target)) {
            throw Error("disk image " + disk.target.string() + " (" + disk.vdev + ") does not exist");
        }
        DiskReplicaMarker::refuse_if_marked(disk.target);
    }
}

// A guest whose last protected primary here did not end knowing its secondary holds nothing that
// could run (primary_marker.hpp) is not started again unless the operator says so.
void refuse_if_maybe_running_elsewhere(const std::string& name, const po::variables_map& vm) {
    const auto marker = control::read_primary_marker(name);
    if (!marker) return;
    if (vm.count("force") != 0) {
        control::clear_primary_marker(name);
        return;
    }
    throw Error(name + " was a protected primary here and did not end cleanly (" + *marker +
                "): its secondary may run it now, and starting it here would be a second live copy; check the peer, then "
                "start it with --force (" + control::primary_marker_path(name).string() + ")");
}

}  // namespace

int run_guest(const GuestConfig& config, const po::variables_map& vm,
              const std::function<std::unique_ptr<Backend>()>& make_backend, Io& io) {
    const bool foreground = vm.count("foreground") != 0;
    if (foreground) {
        serve_guest(make_backend(), config, vm, true, [] {});
        return kExitOk;
    }
    const int pid = control::run_detached(control::guest_log_path(config.name), [&](const auto& ready) {
        serve_guest(make_backend(), config, vm, false, ready);
    });
    io.out << "Guest " << config.name << " started (pid " << pid << "); log: "
           << control::guest_log_path(config.name).string() << "\n";
    return kExitOk;
}

int run_create(const po::variables_map& vm, Io& io) {
    const auto config = load_guest_config(vm["config"].as<std::string>());
    const auto& factory = backends_available().find(config.backend);
    // Refuse a duplicate name before anything starts.
    if (control::connect_guest_if_running(config.name)) {
        throw Error("a guest named '" + config.name + "' already runs");
    }
    refuse_if_maybe_running_elsewhere(config.name, vm);
    check_disks_usable(config);
    return run_guest(config, vm, [&] { return factory.create(config); }, io);
}

int run_check(const po::variables_map& vm, Io& io) {
    const std::string file = vm["config"].as<std::string>();
    const GuestConfig config = load_guest_config(file);
    (void)backends_available().find(config.backend);  // a backend this build lacks is an error here too
    io.out << file << ": guest " << config.name << " (" << config.backend << ", "
           << (config.guest == GuestKind::builtin ? "built-in guest" : "linux") << ", " << config.memory_mib << " MiB, "
           << config.vcpus << " vCPU" << (config.vcpus == 1 ? "" : "s") << ", " << config.vifs.size() << " NIC"
           << (config.vifs.size() == 1 ? "" : "s") << ", " << config.disks.size() << " disk"
           << (config.disks.size() == 1 ? "" : "s") << ")";
    const ProtectionConfig& p = config.protection;
    if (p.declared()) {
        io.out << "; protection: " << (p.mode.empty() ? "colo" : p.mode);
        if (!p.peer.empty()) io.out << " to " << p.peer;
        if (!p.listen.empty()) io.out << ", receives on " << p.listen;
        io.out << ", link " << (!p.link_key.empty() ? "key " + p.link_key.string() : !p.tls_cert.empty() ? std::string("x509") : std::string("in clear"));
        io.out << ", witness " << (p.witness.empty() ? std::string("none") : p.witness);
        io.out << ", takeover " << (p.takeover.empty() ? "auto" : p.takeover);
    } else {
        io.out << "; no protection declared";
    }
    io.out << "\n";
    return kExitOk;
}

int run_save(const po::variables_map& vm, Io& io) {
    const auto name = name_arg(vm);
    const auto file = std::filesystem::absolute(vm["file"].as<std::string>());
    const auto reply = control::request(name, "save " + file.string() + (vm.count("checkpoint") ? " keep" : ""));
    io.out << "Saved " << name << " to " << file.string() << (reply.empty() ? "" : " (" + reply[0] + ")") << "\n";
    if (vm.count("checkpoint") == 0) {
        for (int i = 0; i < 100 && control::connect_guest_if_running(name); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    return kExitOk;
}

int run_restore(const po::variables_map& vm, Io& io) {
    const std::string file = vm["file"].as<std::string>();
    GuestConfig config;
    {
        FileSource source(file);
        config = GuestImageReader(source).config();
    }
    const auto& factory = backends_available().find(config.backend);
    if (control::connect_guest_if_running(config.name)) {
        throw Error("a guest named '" + config.name + "' already runs");
    }
    // The hypervisor's own guests too (Xen: a domain made with xl holds the name).
    if (factory.name_taken) {
        if (const std::string why = factory.name_taken(config.name); !why.empty()) throw Error(why);
    }
    refuse_if_maybe_running_elsewhere(config.name, vm);
    check_disks_usable(config);
    return run_guest(config, vm, [&] {
        FileSource source(file);
        GuestImageReader reader(source);
        auto backend = factory.create_incoming(reader.config());
        (void)reader.load_into(*backend);
        // An incoming guest's NICs have no TAP yet (a secondary's must not answer for the guest);
        // a restored guest is the one that runs.
        for (GuestNic* nic : backend->nics()) nic->attach_host();
        // It is the guest now, as after a migration (Xen: NAME--incoming renamed to NAME).
        if (const std::string note = backend->commit_incoming(); !note.empty()) {
            std::cerr << "colo-replicate[" << config.name << "]: " << note << std::endl;
        }
        return backend;
    }, io);
}

int run_list(const po::variables_map& vm, Io& io) {
    const bool json = vm.count("json") != 0;
    if (json) io.out << "[";
    else io.out << std::left << std::setw(20) << "Name" << std::setw(9) << "State" << std::setw(10) << "Mem(MiB)"
                << std::setw(7) << "VCPUs" << std::setw(9) << "Backend" << "Mode\n";
    bool first = true;
    for (const auto& name : control::running_guests()) {
        std::vector<std::string> info;
        try {
            info = control::request(name, "info", std::chrono::seconds(5));
        } catch (const Error&) {
            continue;  // it ended while we asked
        }
        if (info.size() != 1) continue;
        std::istringstream fields(info[0]);
        std::string n, state, mem, vcpus, backend, mode;
        fields >> n >> state >> mem >> vcpus >> backend;
        std::getline(fields >> std::ws, mode);
        if (json) {
            io.out << (first ? "" : ",") << "\n  {\"name\": \"" << n << "\", \"state\": \"" << state
                   << "\", \"memory_mib\": " << mem << ", \"vcpus\": " << vcpus << ", \"backend\": \""
                   << backend << "\", \"mode\": \"" << mode << "\"}";
        } else {
            io.out << std::left << std::setw(20) << n << std::setw(9) << state << std::setw(10) << mem
                   << std::setw(7) << vcpus << std::setw(9) << backend << mode << "\n";
        }
        first = false;
    }
    if (json) io.out << (first ? "]\n" : "\n]\n");
    return kExitOk;
}

int run_console(const po::variables_map& vm, Io& io) {
    control::request_stream(name_arg(vm), "console", [&](std::span<const char> bytes) {
        io.out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        io.out.flush();
    });
    return kExitOk;
}

int run_destroy(const po::variables_map& vm, Io&) {
    const auto name = name_arg(vm);
    try {
        (void)control::request(name, "destroy");
    } catch (const SystemError&) {
        // The process went away while we asked (it was ending already, e.g. a secondary whose
        // primary just stopped protection): what was asked for is done once the name is free.
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (control::connect_guest_if_running(name)) throw;
    }
    // Return only once the guest's process has let go of its name.
    for (int i = 0; i < 100 && control::connect_guest_if_running(name); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return kExitOk;
}

int run_pause(const po::variables_map& vm, Io&) {
    (void)control::request(name_arg(vm), "pause");
    return kExitOk;
}

int run_unpause(const po::variables_map& vm, Io&) {
    (void)control::request(name_arg(vm), "unpause");
    return kExitOk;
}

}  // namespace colo::cli
