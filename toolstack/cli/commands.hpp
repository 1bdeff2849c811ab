// The handlers behind the command table. An empty std::function (nullptr here) marks a command
// that is planned but not built yet; the table then says so and exits 2.
#pragma once

#include <functional>
#include <memory>

#include "backends/backend.hpp"
#include "backends/guest_config.hpp"
#include "toolstack/cli/command_table.hpp"

namespace colo::cli {

using Handler = int (*)(const po::variables_map&, Io&);

// Guest lifecycle (KVM: our own VMM process per guest, reached through a control socket).
int run_create(const po::variables_map& vm, Io& io);
int run_check(const po::variables_map& vm, Io& io);
int run_list(const po::variables_map& vm, Io& io);
int run_console(const po::variables_map& vm, Io& io);
int run_destroy(const po::variables_map& vm, Io& io);
int run_pause(const po::variables_map& vm, Io& io);
int run_unpause(const po::variables_map& vm, Io& io);
int run_save(const po::variables_map& vm, Io& io);
int run_restore(const po::variables_map& vm, Io& io);

// Serves an already-made guest in this process (-F) or in a detached one: shared by create,
// restore and receive.
int run_guest(const GuestConfig& config, const po::variables_map& vm,
              const std::function<std::unique_ptr<Backend>()>& make_backend, Io& io);

// Replication.
int run_migrate(const po::variables_map& vm, Io& io);
int run_protect(const po::variables_map& vm, Io& io);
int run_receive(const po::variables_map& vm, Io& io);
int run_status(const po::variables_map& vm, Io& io);
int run_failover(const po::variables_map& vm, Io& io);
int run_handover(const po::variables_map& vm, Io& io);
int run_keygen(const po::variables_map& vm, Io& io);

}  // namespace colo::cli
