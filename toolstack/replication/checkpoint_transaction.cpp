#include "toolstack/replication/checkpoint_transaction.hpp"

namespace colo::transaction {

using protocol::RecordType;

Step primary_step(PrimaryPhase phase, RecordType type) noexcept {
    const bool live = phase == PrimaryPhase::syncing || phase == PrimaryPhase::entering ||
                      phase == PrimaryPhase::running || phase == PrimaryPhase::checkpointing ||
                      phase == PrimaryPhase::awaiting_ack;
    if (!live) return Step::refuse;
    switch (type) {
        case RecordType::heartbeat:
        case RecordType::secondary_report: return Step::alive;  // a report is kept for status
        case RecordType::secondary_output:
        case RecordType::net_egress:
        case RecordType::disk_hashes: return Step::device;
        case RecordType::checkpoint_loaded:
            return phase == PrimaryPhase::entering || phase == PrimaryPhase::awaiting_ack ? Step::acknowledge
                                                                                          : Step::refuse;
        case RecordType::failure:
        case RecordType::goodbye: return Step::lose_secondary;
        default: return Step::refuse;
    }
}

Step secondary_step(SecondaryPhase phase, RecordType type) noexcept {
    switch (phase) {
        case SecondaryPhase::migrating:
            switch (type) {
                case RecordType::heartbeat: return Step::alive;
                case RecordType::released_output:
                case RecordType::disk_sync_begin:
                case RecordType::disk_write: return Step::device;
                case RecordType::page_batch: return Step::memory;
                case RecordType::device_state: return Step::migration_state;
                case RecordType::migration_commit: return Step::commit_migration;
                case RecordType::goodbye:
                case RecordType::failure: return Step::abandon;
                default: return Step::refuse;
            }
        case SecondaryPhase::committed:
            switch (type) {
                case RecordType::heartbeat: return Step::alive;
                case RecordType::released_output:
                case RecordType::net_ingress:
                case RecordType::net_released:
                case RecordType::disk_write: return Step::device;
                case RecordType::enter_colo: return Step::enter_colo;
                case RecordType::goodbye: return Step::migrated;
                case RecordType::failure: return Step::abandon;
                default: return Step::refuse;
            }
        case SecondaryPhase::protecting:
            switch (type) {
                case RecordType::heartbeat: return Step::alive;
                case RecordType::released_output:
                case RecordType::net_ingress:
                case RecordType::net_released:
                case RecordType::disk_write: return Step::device;
                case RecordType::page_batch: return Step::cache;
                case RecordType::checkpoint_begin: return Step::begin;
                case RecordType::goodbye:
                case RecordType::failure: return Step::stop;
                default: return Step::refuse;
            }
        case SecondaryPhase::checkpoint:
            switch (type) {
                case RecordType::heartbeat: return Step::alive;
                case RecordType::released_output:
                case RecordType::net_ingress:
                case RecordType::net_released:
                case RecordType::disk_write: return Step::device;
                case RecordType::page_batch: return Step::cache;
                case RecordType::device_state: return Step::stage_state;
                case RecordType::checkpoint_output:
                case RecordType::net_checkpoint:
                case RecordType::disk_checkpoint: return Step::stage_device;
                case RecordType::checkpoint_end: return Step::apply;
                case RecordType::goodbye:
                case RecordType::failure: return Step::stop;
                default: return Step::refuse;
            }
        case SecondaryPhase::active:
        case SecondaryPhase::stopped:
        case SecondaryPhase::failed: return Step::refuse;
    }
    return Step::refuse;
}

const char* to_string(PrimaryPhase phase) noexcept {
    switch (phase) {
        case PrimaryPhase::syncing: return "syncing";
        case PrimaryPhase::entering: return "entering";
        case PrimaryPhase::running: return "running";
        case PrimaryPhase::checkpointing: return "checkpointing";
        case PrimaryPhase::awaiting_ack: return "awaiting-ack";
        case PrimaryPhase::unprotected: return "unprotected";
        case PrimaryPhase::stopped: return "stopped";
    }
    return "?";
}

const char* to_string(SecondaryPhase phase) noexcept {
    switch (phase) {
        case SecondaryPhase::migrating: return "migrating";
        case SecondaryPhase::committed: return "committed";
        case SecondaryPhase::protecting: return "protecting";
        case SecondaryPhase::checkpoint: return "checkpoint";
        case SecondaryPhase::active: return "active";
        case SecondaryPhase::stopped: return "stopped";
        case SecondaryPhase::failed: return "failed";
    }
    return "?";
}

const char* to_string(Step step) noexcept {
    switch (step) {
        case Step::refuse: return "refuse";
        case Step::alive: return "alive";
        case Step::device: return "device";
        case Step::acknowledge: return "acknowledge";
        case Step::lose_secondary: return "lose-secondary";
        case Step::memory: return "memory";
        case Step::migration_state: return "migration-state";
        case Step::commit_migration: return "commit-migration";
        case Step::enter_colo: return "enter-colo";
        case Step::migrated: return "migrated";
        case Step::abandon: return "abandon";
        case Step::cache: return "cache";
        case Step::begin: return "begin";
        case Step::stage_state: return "stage-state";
        case Step::stage_device: return "stage-device";
        case Step::apply: return "apply";
        case Step::stop: return "stop";
    }
    return "?";
}

}  // namespace colo::transaction
