#include "toolstack/cli/command_table.hpp"

#include <algorithm>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "backends/error.hpp"
#include "toolstack/backends_available.hpp"
#include "toolstack/cli/commands.hpp"
#include "toolstack/protocol/messages.hpp"
#include "toolstack/version.hpp"

namespace colo::cli {

namespace {

using Declare = std::function<void(po::options_description&, po::positional_options_description&)>;

// Shared option groups, so the same flag means the same thing on every command.
void positional(po::options_description& o, po::positional_options_description& p,
                const char* name, const char* what, int count = 1) {
    o.add_options()(name, po::value<std::string>(), what);
    p.add(name, count);
}

void compress_option(po::options_description& o, const char* when) {
    o.add_options()("compress", when);
}

void auto_converge_option(po::options_description& o) {
    o.add_options()("no-auto-converge", "do not throttle a guest whose pre-copy rounds do not shrink (the final pause then carries what is left after the last round)");
}

void replication_options(po::options_description& o) {
    o.add_options()
        ("remus", "Remus mode: periodic checkpoints, output released only after the checkpoint that produced it is acknowledged")
        ("interval,i", po::value<unsigned>()->default_value(100), "checkpoint interval in ms (Remus), or the maximum interval between checkpoints (COLO)")
        ("stream-period", po::value<unsigned>()->default_value(20), "ms between two streaming passes of dirty pages between checkpoints")
        ("stream-threshold", po::value<unsigned>()->default_value(64), "a streaming pass sends only when at least this many pages are dirty")
        ("heartbeat-timeout", po::value<unsigned>()->default_value(800), "ms of silence after which the peer counts as dead")
        ("no-cache-backup", "do not back up pages into the secondary's cache during the initial sync (entering COLO then copies all memory)")
        ("no-stream", "do not stream dirty pages between checkpoints")
        ("no-early-resume", "keep the primary paused until a checkpoint has been sent")
        ("no-realtime-pause", "run a checkpoint's pause at the threads' own priority, not real-time");
    auto_converge_option(o);
}

void link_security_options(po::options_description& o) {
    o.add_options()
        ("key", po::value<std::string>(), "authenticate and encrypt the replication link (TLS 1.3) with the pre-shared key in FILE, the same file on both hosts (`colo-replicate keygen FILE` writes one)")
        ("tls-cert", po::value<std::string>(), "x509 instead of a key: this host's certificate (PEM)")
        ("tls-key", po::value<std::string>(), "x509: this host's private key (PEM)")
        ("tls-ca", po::value<std::string>(), "x509: the CA a peer's certificate must be signed by (PEM)");
}

void witness_option(po::options_description& o) {
    o.add_options()("witness", po::value<std::string>(), "etcd://HOST:PORT[/PREFIX]: before a side goes live without its peer it must win the guest on this etcd (the same URL on protect and receive); without it a partition can leave two live copies");
}

void console_log_option(po::options_description& o) {
    o.add_options()("console-log", po::value<std::string>(), "write the guest's released console output to FILE, byte k of its console stream at position k");
}

void backend_option(po::options_description& o) {
    o.add_options()("backend", po::value<std::string>(), "hypervisor backend: kvm or xen (default: from the config, or detected)");
}

void force_option(po::options_description& o) {
    o.add_options()("force", "start the guest although it was a protected primary here that did not end cleanly (its secondary may be running it: check the peer first)");
}

void json_option(po::options_description& o) {
    o.add_options()("json", "machine-readable output");
}

std::vector<Command> make_table() {
    std::vector<Command> t;
    t.push_back({"create", "Create a guest from a config file", "[options] CONFIG",
                 "Boots the guest described by CONFIG (see colo-replicate.cfg(5)). Without -F the guest "
                 "runs in a background process reachable through a control socket.",
                 [](auto& o, auto& p) {
                     positional(o, p, "config", "guest config file");
                     o.add_options()("foreground,F", "stay in the foreground with the console on stdout")
                                    ("paused,p", "leave the guest paused after creating it");
                     force_option(o);
                     console_log_option(o);
                 },
                 run_create});
    t.push_back({"check", "Check a guest config file", "CONFIG",
                 "Reads CONFIG as create and receive would (colo-replicate.cfg(5)), protection keys included, and "
                 "prints what it declares; a bad file is one line and exit status 1. Nothing is started.",
                 [](auto& o, auto& p) { positional(o, p, "config", "guest config file"); }, run_check});
    t.push_back({"list", "List guests", "[options]", "Lists the guests this host runs.",
                 [](auto& o, auto&) { json_option(o); }, run_list});
    t.push_back({"console", "Attach to a guest's console", "NAME",
                 "Copies the guest's released console output to stdout until the guest ends or ^] is typed.",
                 [](auto& o, auto& p) { positional(o, p, "name", "guest name"); }, run_console});
    t.push_back({"destroy", "Terminate a guest immediately", "NAME", "Stops the guest and frees it.",
                 [](auto& o, auto& p) { positional(o, p, "name", "guest name"); }, run_destroy});
    t.push_back({"pause", "Pause a guest", "NAME", "Stops the guest's vCPUs; memory and devices stay.",
                 [](auto& o, auto& p) { positional(o, p, "name", "guest name"); }, run_pause});
    t.push_back({"unpause", "Unpause a paused guest", "NAME", "Lets the guest's vCPUs run again.",
                 [](auto& o, auto& p) { positional(o, p, "name", "guest name"); }, run_unpause});
    t.push_back({"save", "Save a guest's state and memory to a file", "[options] NAME FILE",
                 "Writes the guest to FILE in the replication stream format, then destroys it (unless -c).",
                 [](auto& o, auto& p) {
                     o.add_options()("name", po::value<std::string>(), "guest name")
                                    ("file", po::value<std::string>(), "save file")
                                    ("checkpoint,c", "leave the guest running after saving");
                     p.add("name", 1).add("file", 1);
                 },
                 run_save});
    t.push_back({"restore", "Restore a guest from a save file", "[options] FILE",
                 "Creates a guest from FILE, written by `save`, and lets it continue.",
                 [](auto& o, auto& p) {
                     positional(o, p, "file", "save file");
                     o.add_options()("foreground,F", "stay in the foreground with the console on stdout")
                                    ("paused,p", "leave the guest paused after restoring it");
                     force_option(o);
                     console_log_option(o);
                 },
                 run_restore});
    t.push_back({"migrate", "Live-migrate a guest to another host", "[options] NAME HOST[:PORT]",
                 "Pre-copy live migration to a `colo-replicate receive` on HOST.",
                 [](auto& o, auto& p) {
                     o.add_options()("name", po::value<std::string>(), "guest name")
                                    ("host", po::value<std::string>(), "destination HOST[:PORT]");
                     p.add("name", 1).add("host", 1);
                     auto_converge_option(o);
                     compress_option(o, "LZ4-compress the pages on the link (worth it when the link, not the CPU, is the limit)");
                     link_security_options(o);
                 },
                 run_migrate});
    t.push_back({"protect", "Protect a guest with COLO (or Remus) replication", "[options] NAME [HOST[:PORT]]",
                 "Replicates the guest to a `colo-replicate receive` on HOST and keeps the replica in step "
                 "with checkpoints. If this host fails, the replica takes over. What the command line leaves "
                 "out (HOST too) comes from the guest's config: peer, protection, checkpoint_interval, "
                 "heartbeat_timeout, link_key or tls_*, witness (colo-replicate.cfg(5)).",
                 [](auto& o, auto& p) {
                     o.add_options()("name", po::value<std::string>(), "guest name")
                                    ("host", po::value<std::string>(), "secondary HOST[:PORT]")
                                    ("colo", "COLO mode (the default; overrides protection = \"remus\" in the config)");
                     p.add("name", 1).add("host", 1);
                     replication_options(o);
                     compress_option(o, "LZ4-compress the pages of the initial synchronisation (checkpoints are not compressed: it would lengthen the pause)");
                     link_security_options(o);
                     witness_option(o);
                 },
                 run_protect, 1});
    t.push_back({"receive", "Receive a migrated or protected guest (the secondary)", "[options] [CONFIG]",
                 "Listens for one incoming migration or protection stream and runs the guest it carries. With "
                 "CONFIG it takes only that guest, and listen, link_key or tls_*, witness, takeover, "
                 "heartbeat_timeout and disk_dir come from it where the command line says nothing "
                 "(colo-replicate.cfg(5)).",
                 [](auto& o, auto& p) {
                     positional(o, p, "config", "the guest's config on this host");
                     o.add_options()("takeover", po::value<std::string>(), "auto: take over as soon as the primary is lost (the default); manual: hold the replica until `colo-replicate failover NAME` (a cluster manager decides)");
                     o.add_options()("listen,l", po::value<std::string>()->default_value("0.0.0.0:8471"), "listen on HOST[:PORT]")
                                    ("foreground,F", "stay in the foreground");
                     o.add_options()("heartbeat-timeout", po::value<unsigned>()->default_value(800), "ms of silence after which the primary counts as dead");
                     o.add_options()("disk-dir", po::value<std::string>(), "keep the copy of the guest's disk VDEV as DIR/NAME-VDEV.img (default: the primary's path)");
                     console_log_option(o);
                     backend_option(o);
                     link_security_options(o);
                     witness_option(o);
                     o.add_options()("insecure", "accept a sender in clear on an address other hosts can reach (anyone who reaches the port can then push a guest into this host and read its memory on the way)");
                 },
                 run_receive, 0});
    t.push_back({"keygen", "Write a new pre-shared key for the replication link", "FILE",
                 "Writes 32 random bytes to FILE (mode 0600; never over an existing file). Copy FILE to the "
                 "other host over a channel you trust and give it to protect, migrate and receive as --key.",
                 [](auto& o, auto& p) { positional(o, p, "file", "key file to create"); }, run_keygen});
    t.push_back({"status", "Show a guest's replication status", "[options] NAME",
                 "Mode, epoch, last checkpoint, pause statistics, bytes, pages sent while paused vs streamed. "
                 "--watch looks again every --interval: on a terminal it redraws the checkpoint rate, pause p50/p99, "
                 "link rate and output held and released; otherwise it prints one line of key=value words per look. "
                 "It ends on Ctrl-C, or with a last line when the guest goes away (exit 0 either way).",
                 [](auto& o, auto& p) {
                     positional(o, p, "name", "guest name");
                     json_option(o);
                     o.add_options()("watch", "look again every --interval until Ctrl-C or the guest goes away, with rates per second")
                                    ("interval", po::value<unsigned>()->default_value(1000), "ms between two looks of --watch (100 to 3600000)");
                 },
                 run_status});
    t.push_back({"failover", "Make the secondary take over now", "NAME",
                 "Forces the secondary of NAME to stop replicating and run as the primary (also the order a "
                 "secondary with --takeover manual waits for once its primary is lost).",
                 [](auto& o, auto& p) { positional(o, p, "name", "guest name"); }, run_failover});
    t.push_back({"handover", "Hand a protected guest over to its secondary", "NAME",
                 "On the primary: one last checkpoint with the guest paused, then this copy ends; the secondary "
                 "holds exactly that state and takes over (at once, or on `failover` with --takeover manual).",
                 [](auto& o, auto& p) { positional(o, p, "name", "guest name"); }, run_handover});
    return t;
}

po::options_description options_of(const Command& c, po::positional_options_description& pos) {
    po::options_description o(c.name + " options");
    c.declare(o, pos);
    o.add_options()("help,h", "show this help");
    return o;
}

}  // namespace

const std::vector<Command>& command_table() {
    static const std::vector<Command> table = make_table();
    return table;
}

const Command* find_command(const std::string& name) {
    for (const auto& c : command_table()) {
        if (c.name == name) return &c;
    }
    return nullptr;
}

void print_overview(std::ostream& out) {
    out << "Usage: colo-replicate [--help] [--version] COMMAND [ARGS]\n\n"
           "Keeps a virtual machine alive through the loss of its host (COLO/Remus replication).\n\n"
           "Commands:\n";
    for (const auto& c : command_table()) {
        out << "  " << std::left << std::setw(10) << c.name << c.summary
            << (c.run ? "" : " (not available yet)") << "\n";
    }
    out << "\n'colo-replicate help COMMAND' shows a command's options; see colo-replicate(1).\n";
}

void print_command_help(const Command& c, std::ostream& out) {
    po::positional_options_description pos;
    out << "Usage: colo-replicate " << c.name << " " << c.usage << "\n\n" << c.summary << ".\n";
    if (!c.detail.empty()) out << c.detail << "\n";
    if (!c.run) out << "This command is not available yet in this build.\n";
    out << "\n" << options_of(c, pos);
}

int dispatch(const std::vector<std::string>& args, Io& io) {
    if (args.empty()) {
        print_overview(io.err);
        return kExitUsage;
    }
    const std::string& first = args[0];
    if (first == "--help" || first == "-h") {
        print_overview(io.out);
        return kExitOk;
    }
    if (first == "--version" || first == "-V") {
        io.out << "colo-replicate " << kVersion << " (stream format " << protocol::kStreamVersion << ")\n";
        for (const auto& b : backends_available().all()) {
            io.out << "  backend " << b.name << ": " << b.summary << "\n";
        }
        return kExitOk;
    }
    if (first == "help") {
        if (args.size() == 1) {
            print_overview(io.out);
            return kExitOk;
        }
        const Command* c = find_command(args[1]);
        if (c == nullptr) {
            io.err << "colo-replicate: no such command '" << args[1] << "' (see colo-replicate --help)\n";
            return kExitUsage;
        }
        print_command_help(*c, io.out);
        return kExitOk;
    }
    if (!first.empty() && first[0] == '-') {
        io.err << "colo-replicate: unknown option '" << first << "' (see colo-replicate --help)\n";
        return kExitUsage;
    }
    const Command* c = find_command(first);
    if (c == nullptr) {
        io.err << "colo-replicate: no such command '" << first << "' (see colo-replicate --help)\n";
        return kExitUsage;
    }

    po::positional_options_description pos;
    const auto options = options_of(*c, pos);
    po::variables_map vm;
    try {
        const std::vector<std::string> rest(args.begin() + 1, args.end());
        po::store(po::command_line_parser(rest).options(options).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        io.err << "colo-replicate " << c->name << ": " << e.what() << " (usage: colo-replicate " << c->name
               << " " << c->usage << ")\n";
        return kExitUsage;
    }
    if (vm.count("help") != 0) {
        print_command_help(*c, io.out);
        return kExitOk;
    }
    // Every positional argument the usage names is required, but for the optional ones at the end.
    const unsigned required = std::min<unsigned>(pos.max_total_count(), c->required_positionals);
    for (unsigned i = 0; i < required && pos.max_total_count() < 100; ++i) {
        const std::string& name = pos.name_for_position(i);
        if (vm.count(name) == 0) {
            io.err << "colo-replicate " << c->name << ": missing " << name << " (usage: colo-replicate "
                   << c->name << " " << c->usage << ")\n";
            return kExitUsage;
        }
    }
    if (!c->run) {
        io.err << "colo-replicate: '" << c->name << "' is not available yet in this build\n";
        return kExitUsage;
    }
    try {
        return c->run(vm, io);
    } catch (const Error& e) {
        io.err << "colo-replicate " << c->name << ": " << e.what() << "\n";
        return kExitFailure;
    }
}

}  // namespace colo::cli
