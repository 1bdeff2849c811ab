// The checkpoint transaction's tables (checkpoint_transaction.hpp) against the ones man
// colo-replicate(7) prints: every cell of the man page must be what the code does, and the man
// page must cover every record type in every phase in which a side reads messages.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "toolstack/protocol/record_types.hpp"
#include "toolstack/replication/checkpoint_transaction.hpp"

using namespace colo;
using namespace colo::transaction;

namespace {

using Rows = std::vector<std::vector<std::string>>;

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream in(line);
    for (std::string cell; std::getline(in, cell, '\t');) cells.push_back(cell);
    return cells;
}

// The tbl table that follows the comment line `.\" transaction-table NAME` in man 7: the header
// row and the data rows.
Rows man_table(const std::string& name) {
    std::ifstream page("man/colo-replicate.7");
    REQUIRE_MESSAGE(page, "man/colo-replicate.7 is read from the top of the source tree");
    std::string line;
    while (std::getline(page, line) && line != ".\\\" transaction-table " + name) {}
    const std::string missing = "no transaction-table " + name + " in man/colo-replicate.7";
    REQUIRE_MESSAGE(page, missing);
    REQUIRE(std::getline(page, line));
    REQUIRE(line == ".TS");
    REQUIRE(std::getline(page, line));  // the format line
    Rows rows;
    while (std::getline(page, line) && line != ".TE") rows.push_back(split_tabs(line));
    REQUIRE(line == ".TE");
    return rows;
}

protocol::RecordType type_named(const std::string& name) {
    for (const auto& info : protocol::kRecordTypes) {
        if (name == info.name) return info.type;
    }
    FAIL("man 7 names an unknown record type: " << name);
    return protocol::RecordType::heartbeat;
}

template <typename Phase, typename StepOf>
void check_table(const Rows& rows, const std::vector<Phase>& phases, StepOf step_of) {
    REQUIRE(rows.size() == protocol::kRecordTypes.size() + 1);
    REQUIRE(rows[0].size() == phases.size() + 1);
    for (std::size_t c = 0; c < phases.size(); ++c) CHECK(rows[0][c + 1] == to_string(phases[c]));
    std::map<std::string, int> seen;
    for (std::size_t r = 1; r < rows.size(); ++r) {
        const auto& row = rows[r];
        CAPTURE(row[0]);
        REQUIRE(row.size() == phases.size() + 1);
        ++seen[row[0]];
        const auto type = type_named(row[0]);
        for (std::size_t c = 0; c < phases.size(); ++c) {
            CAPTURE(to_string(phases[c]));
            CHECK(row[c + 1] == to_string(step_of(phases[c], type)));
        }
    }
    for (const auto& info : protocol::kRecordTypes) CHECK(seen[info.name] == 1);
}

}  // namespace

TEST_CASE("checkpoint transaction: the primary's table in man 7 is the code's") {
    check_table(man_table("primary"),
                std::vector<PrimaryPhase>{PrimaryPhase::syncing, PrimaryPhase::entering, PrimaryPhase::running,
                                          PrimaryPhase::checkpointing, PrimaryPhase::awaiting_ack},
                primary_step);
}

TEST_CASE("checkpoint transaction: the secondary's table in man 7 is the code's") {
    check_table(man_table("secondary"),
                std::vector<SecondaryPhase>{SecondaryPhase::migrating, SecondaryPhase::committed,
                                            SecondaryPhase::protecting, SecondaryPhase::checkpoint},
                secondary_step);
}

TEST_CASE("checkpoint transaction: a side that has ended reads no message as meaningful") {
    for (const auto& info : protocol::kRecordTypes) {
        CAPTURE(info.name);
        for (const auto phase : {PrimaryPhase::unprotected, PrimaryPhase::stopped}) {
            CHECK(primary_step(phase, info.type) == Step::refuse);
        }
        for (const auto phase : {SecondaryPhase::active, SecondaryPhase::stopped, SecondaryPhase::failed}) {
            CHECK(secondary_step(phase, info.type) == Step::refuse);
        }
    }
}
