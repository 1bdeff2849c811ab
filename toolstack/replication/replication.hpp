// The replication pipeline's public API, for the CLI (`migrate`, `receive`, `protect`,
// `failover`, `status`). Everything here drives colo::Backend only; nothing is KVM- or
// Xen-specific. Configuration and statistics: replication_config.hpp, replication_stats.hpp.
//
// Setting up a link (the CLI's part, before any of the below):
//   sender:   connect; write the StreamHeader (protocol::write_header) with the guest's
//             memory regions; wait for the receiver's answer (protocol::read_header_answer: a
//             peer of another stream version is refused here); build a StreamChannel (reader = the TcpConnection, writer = its
//             duplicate(), interrupt = writer.shutdown_both()); send GuestConfigText
//             (format_guest_config) and ReplicationSetup (setup_for_protection/_migration).
//   receiver: accept; read_header; answer it (protocol::write_header_answer); build a StreamChannel with that header (frames are checked
//             against its regions); receive() GuestConfigText and ReplicationSetup
//             (secondary_config_for turns it into the SecondaryConfig); create the incoming guest
//             (BackendFactory::create_incoming: paused, same memory layout).
//
// migrate:   MigrationResult r = migrate(backend, channel, MigrateConfig{});
//            On return the destination runs the guest; destroy it here. On throw it runs here.
// receive:   Secondary secondary(svm, channel, SecondaryConfig{}, sink);
//            switch (secondary.run(stop)) { migrated / failed_over: the guest runs here, keep
//            the Secondary alive (its console sink releases output); stopped: destroy the SVM }.
//            It serves both a plain migration and protection: the sender decides (Goodbye or
//            EnterColo after MigrationCommit). SecondaryConfig::mode must match the primary's.
// protect:   Primary primary(pvm, channel, PrimaryConfig{}, sink); primary.run(stop);
//            run() returns when stopped (Goodbye sent) or when the secondary is lost (the PVM
//            runs on unprotected; keep the Primary alive: its gate now releases output at once).
// failover:  secondary.request_failover() from any thread: one takeover, however many ask.
// status:    primary.status() / secondary.status() from any thread.
//
// Released console output goes to the OutputSink with offsets that continue across a failover
// (output_sink.hpp). Messages are logged by name at LogLevel::debug; state changes an operator
// must see (protected, secondary lost, failover, stopped) at LogLevel::notice.
#pragma once

#include "toolstack/replication/channel.hpp"
#include "toolstack/replication/colo_primary.hpp"
#include "toolstack/replication/colo_secondary.hpp"
#include "toolstack/replication/migration.hpp"
#include "toolstack/replication/output_sink.hpp"
#include "toolstack/replication/replication_config.hpp"
#include "toolstack/replication/replication_setup.hpp"
#include "toolstack/replication/replication_stats.hpp"
#include "toolstack/replication/stream_channel.hpp"
