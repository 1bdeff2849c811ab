// The checkpoint transaction as code: the phases each side goes through and, in one table per
// side, what every message means in every phase. The sides (colo_primary.cpp, colo_secondary.cpp)
// dispatch on these tables and on nothing else, and man colo-replicate(7) prints the same tables;
// a unit test reads the man page and checks it against them, so the prose cannot drift.
//
// Primary phases (messages from the secondary):
//   syncing        initial pre-copy, the PVM runs; nothing is held yet
//   entering       the final pause is over, EnterColo sent: waiting for CheckpointLoaded{0}
//   running        protected, between checkpoints: streaming, comparing, releasing
//   checkpointing  checkpoint N is being captured and sent
//   awaiting-ack   checkpoint N is sent: waiting for CheckpointLoaded{N}
//   then one of    unprotected (the secondary is lost or this side failed: the PVM runs alone),
//                  stopped (protection ended on purpose); no message is read any more
// Secondary phases (messages from the primary):
//   migrating      receiving the initial pre-copy into SVM memory (and the RAM cache)
//   committed      MigrationCommit applied: waiting for EnterColo (protect) or Goodbye (migrate)
//   protecting     between checkpoints: pages go to the RAM cache only
//   checkpoint     between CheckpointBegin and CheckpointEnd: everything is staged
//   then one of    active (took over, or migrated), stopped (the primary lives), failed
#pragma once

#include <cstdint>

#include "toolstack/protocol/record_types.hpp"

namespace colo::transaction {

enum class PrimaryPhase : std::uint8_t { syncing, entering, running, checkpointing, awaiting_ack, unprotected, stopped };
enum class SecondaryPhase : std::uint8_t { migrating, committed, protecting, checkpoint, active, stopped, failed };

// What a message means. Every step not listed in a phase's row is `refuse`: a protocol error
// that ends the stream (Failure to the peer, which lives on; this side stops).
enum class Step : std::uint8_t {
    refuse,
    alive,             // heartbeat: the peer is alive, nothing else
    device,            // a checkpoint device's record outside a checkpoint (the device decides)
    // primary
    acknowledge,       // CheckpointLoaded for the checkpoint in flight: it commits
    lose_secondary,    // Failure or Goodbye from the secondary: the PVM runs on unprotected
    // secondary
    memory,            // initial pre-copy pages: into SVM memory (and the RAM cache)
    migration_state,   // vCPU/device state of the pre-copy, kept until MigrationCommit
    commit_migration,  // counts checked, state restored: the SVM is a paused copy of the PVM
    enter_colo,        // start the SVM's dirty log; colo: resume it; acknowledge epoch 0
    migrated,          // Goodbye after MigrationCommit: the guest runs here now
    abandon,           // the sender ended or failed before the guest was complete here
    cache,             // pages into the RAM cache only (streamed, or part of the checkpoint)
    begin,             // CheckpointBegin{N+1}: staging starts
    stage_state,       // vCPU/device state of the checkpoint, staged
    stage_device,      // a checkpoint device's record inside the checkpoint, staged
    apply,             // CheckpointEnd: verify the counts and every device, then apply, acknowledge
    stop,              // Goodbye or Failure from the primary: it lives, so no takeover
};

[[nodiscard]] Step primary_step(PrimaryPhase phase, protocol::RecordType type) noexcept;
[[nodiscard]] Step secondary_step(SecondaryPhase phase, protocol::RecordType type) noexcept;

// Names as in man colo-replicate(7) and in logs ("awaiting-ack", "stage-device").
[[nodiscard]] const char* to_string(PrimaryPhase phase) noexcept;
[[nodiscard]] const char* to_string(SecondaryPhase phase) noexcept;
[[nodiscard]] const char* to_string(Step step) noexcept;

}  // namespace colo::transaction
