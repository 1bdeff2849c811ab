// Console output release: the primary's OutputGate (COLO comparison, Remus acknowledgement), the
// secondary's console, and the offsets that make released output join across a failover.
#include <doctest/doctest.h>

#include "tests/unit/pipeline_test_support.hpp"
#include "toolstack/replication/output_gate.hpp"
#include "toolstack/replication/secondary_console.hpp"

using namespace pipeline_test;

namespace {

void pvm(OutputGate& gate, const std::string& text) { gate.pvm_output(bytes_of(text)); }
bool svm(OutputGate& gate, std::uint64_t offset, const std::string& text) {
    return gate.svm_output(offset, bytes_of(text));
}

}  // namespace

TEST_CASE("pipeline output: unprotected output is released at once") {
    Released out;
    OutputGate gate(out.sink());
    pvm(gate, "boot\n");
    CHECK(out.get() == "boot\n");
    CHECK(gate.produced() == 5);
    CHECK(gate.released() == 5);
}

TEST_CASE("pipeline output: colo releases the longest prefix on which PVM and SVM agree") {
    Released out;
    OutputGate gate(out.sink());
    gate.set_mode(OutputGate::Mode::colo);
    pvm(gate, "hello ");
    CHECK(out.get().empty());
    CHECK(svm(gate, 0, "hel"));
    CHECK(out.get() == "hel");
    CHECK(svm(gate, 3, "lo world"));  // the SVM is ahead: its extra bytes wait for the PVM's
    CHECK(out.get() == "hello ");
    pvm(gate, "wor");
    CHECK(out.get() == "hello wor");
    CHECK(svm(gate, 5, " wo"));  // a resend of bytes already seen changes nothing
    CHECK(out.get() == "hello wor");
    CHECK_FALSE(gate.diverged());
    CHECK(out.problems.empty());
}

TEST_CASE("pipeline output: a colo divergence stops release until the checkpoint commits") {
    Released out;
    OutputGate gate(out.sink());
    gate.set_mode(OutputGate::Mode::colo);
    pvm(gate, "abc");
    CHECK_FALSE(svm(gate, 0, "abX"));
    CHECK(gate.diverged());
    CHECK(out.get() == "ab");
    pvm(gate, "def");
    CHECK(out.get() == "ab");  // nothing more while diverged
    gate.checkpoint_started();
    const std::uint64_t offset = gate.produced();
    pvm(gate, "ghi");  // after the checkpoint's pause: the next epoch
    CHECK(svm(gate, 3, "zzz"));  // old-epoch SVM bytes during the checkpoint are ignored
    gate.checkpoint_committed(offset);
    CHECK_FALSE(gate.diverged());
    CHECK(out.get() == "abcdef");
    CHECK(svm(gate, offset, "gh"));  // the SVM continues at the checkpoint's offset
    CHECK(out.get() == "abcdefgh");
    CHECK_THROWS_WITH_AS((void)svm(gate, 20, "x"), "output gate: secondary output at offset 20 leaves a gap (expected 8)",
                         Error);
}

TEST_CASE("pipeline output: remus releases output only once a checkpoint covering it is acknowledged") {
    Released out;
    OutputGate gate(out.sink());
    gate.set_mode(OutputGate::Mode::remus);
    pvm(gate, "one\n");
    CHECK(svm(gate, 0, "one\n"));  // remus ignores SVM output: the SVM does not run
    CHECK(out.get().empty());
    gate.checkpoint_started();
    const std::uint64_t offset = gate.produced();
    pvm(gate, "two\n");
    CHECK(out.get().empty());
    gate.checkpoint_committed(offset);
    CHECK(out.get() == "one\n");
    gate.set_mode(OutputGate::Mode::unprotected);  // the secondary is gone: nothing to wait for
    CHECK(out.get() == "one\ntwo\n");
    CHECK(out.problems.empty());
}

TEST_CASE("pipeline output: the secondary console forwards once and releases only what the primary did not") {
    SecondaryConsole console;
    console.rebase(100);
    console.svm_output(bytes_of("abcdef"));
    auto first = console.take_unforwarded();
    REQUIRE(first);
    CHECK(first->offset == 100);
    CHECK(first->bytes == bytes_of("abcdef"));
    CHECK_FALSE(console.take_unforwarded());
    console.svm_output(bytes_of("gh"));
    console.primary_released(103);
    auto second = console.take_unforwarded();
    REQUIRE(second);
    CHECK(second->offset == 106);
    Released out;
    out.next = 103;  // where the primary's release ended
    console.take_over(out.sink());
    CHECK(out.get() == "defgh");
    CHECK(out.next == 108);
    console.svm_output(bytes_of("ij"));
    CHECK(out.get() == "defghij");
    CHECK(out.problems.empty());
}

TEST_CASE("pipeline output: a burst of SVM output is forwarded in bounded, consecutive pieces") {
    SecondaryConsole console;
    console.rebase(10);
    const std::string burst(2 * SecondaryConsole::kMaxForward + 123, 'x');
    console.svm_output(bytes_of(burst));
    std::uint64_t next = 10;
    std::size_t pieces = 0, total = 0;
    while (auto out = console.take_unforwarded()) {
        CHECK(out->offset == next);
        CHECK(out->bytes.size() <= SecondaryConsole::kMaxForward);
        next += out->bytes.size();
        total += out->bytes.size();
        ++pieces;
    }
    CHECK(pieces == 3);
    CHECK(total == burst.size());
}

TEST_CASE("pipeline output: colo output flows through primary and secondary and joins across a failover") {
    Pair pair(primary_config(ProtectionMode::colo), secondary_config(ProtectionMode::colo));
    pair.pvm.guest_print("boot\n");  // before protection: released at once
    pair.protect();
    CHECK(pair.primary_out.get() == "boot\n");
    CHECK(pair.secondary->status().primary_released == 5);

    pair.pvm.guest_print("seq=1\n");
    pair.svm.guest_print("seq=1\n");
    pair.settle();  // forwards the SVM's bytes
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary_out.get() == "boot\nseq=1\n");

    // A divergence forces a checkpoint; committing it releases the PVM's bytes.
    pair.pvm.guest_print("rand=4\n");
    pair.svm.guest_print("rand=9\n");
    pair.settle();
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary->gate().diverged());
    CHECK(pair.primary_out.get() == "boot\nseq=1\nrand=");
    REQUIRE(pair.checkpoint());
    CHECK(pair.primary->status().divergence_checkpoints == 1);
    CHECK(pair.primary_out.get() == "boot\nseq=1\nrand=4\n");

    // Both continue from the same state; the PVM releases what matches and then dies.
    pair.pvm.guest_print("seq=2\n");
    pair.svm.guest_print("seq=2\nseq=3\n");  // the SVM is ahead
    pair.settle();
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary_out.get() == "boot\nseq=1\nrand=4\nseq=2\n");
    pair.settle();  // learns how far the primary released
    pair.to_secondary->close();  // the primary's host is gone
    CHECK(pair.settle() == Secondary::Outcome::failed_over);
    pair.svm.guest_print("seq=4\n");

    const std::string joined = pair.primary_out.get() + pair.secondary_out.get();
    CHECK(joined == "boot\nseq=1\nrand=4\nseq=2\nseq=3\nseq=4\n");
    CHECK(pair.secondary_out.get() == "seq=3\nseq=4\n");
    CHECK(pair.secondary_out.problems.size() == 1);  // its first release starts where the primary's ended
    CHECK(pair.secondary_out.problems[0] == "release at " + std::to_string(pair.primary_out.next) + ", expected 0");
    CHECK(pair.primary_out.problems.empty());

    // The survivor gets a new secondary: as the new primary its console offsets carry on.
    CHECK(pair.secondary->console_offset() == joined.size());
    auto ends = MemoryChannel::make_pair();
    PrimaryConfig again = primary_config(ProtectionMode::colo);
    again.console_offset = pair.secondary->console_offset();
    again.log = pair.log.fn();
    Primary reprotect(pair.svm, *ends.first, again, pair.secondary_out.sink());
    pair.svm.guest_print("seq=5\n");
    CHECK(pair.secondary_out.get() == "seq=3\nseq=4\nseq=5\n");
    CHECK(pair.secondary_out.problems.size() == 1);  // still only the expected join above
}

TEST_CASE("pipeline output: remus output is held until the checkpoint is acknowledged and joins after failover") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus));
    pair.protect();
    pair.pvm.guest_print("a1\n");
    pair.primary->poll(Primary::Clock::now());
    CHECK(pair.primary_out.get().empty());
    REQUIRE(pair.checkpoint());
    CHECK(pair.primary_out.get() == "a1\n");
    pair.settle();  // ReleasedOutput{3}
    CHECK(pair.secondary->status().primary_released == 3);

    pair.pvm.guest_print("a2\n");  // produced after the last checkpoint: never released by the PVM
    pair.to_secondary->close();
    CHECK(pair.settle() == Secondary::Outcome::failed_over);
    // The SVM resumes from the last checkpoint and redoes what followed it.
    pair.svm.guest_print("a2\nb1\n");
    CHECK(pair.primary_out.get() + pair.secondary_out.get() == "a1\na2\nb1\n");
    CHECK(pair.secondary_out.problems.size() == 1);
    CHECK(pair.secondary_out.problems[0] == "release at 3, expected 0");
}
