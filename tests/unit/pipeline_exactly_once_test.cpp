// Released console output when the primary dies at any point of the checkpoint transaction, in
// both modes: the primary's released output followed by the survivor's must be the guest's
// console stream with nothing missing, and with nothing repeated except the one window the
// design admits (colo_primary.hpp, "Released output exactly once").
#include <doctest/doctest.h>

#include <optional>
#include <thread>
#include <string>

#include "tests/unit/pipeline_test_support.hpp"
#include "toolstack/protocol/record_types.hpp"

using namespace pipeline_test;

namespace {

constexpr std::uint64_t kLines = 14;  // the survivor runs the guest on to this line

// A guest that prints numbered lines. Its position is its vCPU state, so a checkpoint carries it
// to the SVM, which then continues from where the PVM was at the checkpoint's pause.
std::uint64_t position(const FakeBackend& guest) {
    const auto& state = guest.vcpu_state();
    return std::stoull(std::string(reinterpret_cast<const char*>(state.data()), state.size()));
}

void print_next(FakeBackend& guest) {
    const std::uint64_t n = position(guest);
    guest.guest_print("line " + std::to_string(n) + "\n");
    guest.set_vcpu_state(bytes_of(std::to_string(n + 1)));
}

std::string console_stream(std::uint64_t lines) {
    std::string out;
    for (std::uint64_t n = 0; n < lines; ++n) out += "line " + std::to_string(n) + "\n";
    return out;
}

enum class Death {
    after_delivering,  // right after its deliver-th message reached the secondary
    before_sending,    // when it tries to send one more: what it did locally since counts
};

// The primary's end of the link, with the primary's death built in. Once dead the link closes
// (the secondary still reads what was delivered, as TCP would) and the primary's further releases
// reach nobody (the primary's sink checks dead()).
class MortalLink final : public Channel {
public:
    explicit MortalLink(Channel& inner) : inner_(inner) {}

    void arm(std::uint64_t deliver, Death death) {
        deliver_ = deliver;
        death_ = death;
        sent_ = 0;
        if (deliver == 0 && death == Death::after_delivering) die();
    }
    [[nodiscard]] bool dead() const { return dead_; }
    [[nodiscard]] std::uint64_t sent() const { return sent_; }
    // before_sending: the message the primary was about to send when it died.
    [[nodiscard]] const std::optional<protocol::Message>& unsent() const { return unsent_; }

    void send(const protocol::Message& message) override {
        if (dead_) throw LinkDown("test: the primary is dead");
        if (deliver_ && sent_ == *deliver_ && death_ == Death::before_sending) {
            unsent_ = message;
            die();
            throw LinkDown("test: the primary is dead");
        }
        inner_.send(message);
        ++sent_;
        if (deliver_ && sent_ == *deliver_ && death_ == Death::after_delivering) die();
    }
    [[nodiscard]] std::optional<protocol::Message> receive(Clock::time_point deadline) override {
        if (dead_) throw LinkDown("test: the primary is dead");
        return inner_.receive(deadline);
    }
    void close() noexcept override { inner_.close(); }

private:
    void die() {
        dead_ = true;
        inner_.close();
    }

    Channel& inner_;
    std::optional<std::uint64_t> deliver_;
    Death death_ = Death::after_delivering;
    std::uint64_t sent_ = 0;
    bool dead_ = false;
    std::optional<protocol::Message> unsent_;
};

// The survivor's released output and where it started.
struct SurvivorOutput {
    std::optional<std::uint64_t> first;
    std::uint64_t next = 0;
    std::string text;
    std::vector<std::string> problems;
    OutputSink sink() {
        return [this](std::uint64_t offset, std::span<const std::byte> bytes) {
            if (!first) first = offset;
            else if (offset != next) problems.push_back("release at " + std::to_string(offset) + ", expected " + std::to_string(next));
            text.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            next = offset + bytes.size();
        };
    }
};

struct Run {
    ProtectionMode mode;
    FakeBackend pvm{"guest", kPages};
    FakeBackend svm{"guest", kPages};
    std::unique_ptr<MemoryChannel> primary_end, secondary_end;
    std::unique_ptr<MortalLink> link;
    Log log;
    Released primary_out;
    SurvivorOutput survivor_out;
    std::unique_ptr<Primary> primary;
    std::unique_ptr<Secondary> secondary;

    explicit Run(ProtectionMode m) : mode(m) {
        auto ends = MemoryChannel::make_pair();
        primary_end = std::move(ends.first);
        secondary_end = std::move(ends.second);
        link = std::make_unique<MortalLink>(*primary_end);
        fill(pvm);
        pvm.set_vcpu_state(bytes_of("0"));
        svm.pause();
        PrimaryConfig pc = primary_config(mode);
        SecondaryConfig sc = secondary_config(mode);
        // No heartbeat falls due during a run: the primary's messages are the same every time.
        pc.link.heartbeat_period = sc.link.heartbeat_period = Millis{10000};
        pc.log = sc.log = log.fn();
        OutputSink primary_sink = [this, inner = primary_out.sink()](std::uint64_t offset, std::span<const std::byte> bytes) {
            if (!link->dead()) inner(offset, bytes);
        };
        primary = std::make_unique<Primary>(pvm, *link, pc, primary_sink);
        secondary = std::make_unique<Secondary>(svm, *secondary_end, sc, survivor_out.sink());
    }

    [[nodiscard]] bool primary_protecting() const { return !link->dead() && primary->role() == Role::protecting; }
    void settle() { (void)secondary->process(Secondary::Clock::now()); }

    // The guest runs a little on the primary: lines and dirty pages. A COLO SVM runs to the same
    // point (it re-runs lines a checkpoint took it back over).
    void run_guests(unsigned round) {
        if (link->dead()) return;
        for (int i = 0; i < 2; ++i) print_next(pvm);
        pvm.guest_write(Pfn{round}, pattern(round, 3));
        if (mode == ProtectionMode::colo && !svm.paused()) {
            while (position(svm) < position(pvm)) print_next(svm);
        }
    }

    // Three checkpoints, with output before each and during its early resume.
    void scenario() {
        for (unsigned round = 1; round <= 3; ++round) {
            run_guests(round);
            settle();  // colo: the SVM's lines go to the primary
            if (!primary_protecting()) return;
            primary->poll(Primary::Clock::now());  // colo: matching lines released and reported
            settle();
            if (!primary_protecting()) return;
            primary->send_checkpoint();
            if (!link->dead()) print_next(pvm);  // after the pause: the next epoch's first line
            settle();
            if (!primary_protecting()) return;
            (void)primary->await_checkpoint();
            settle();
        }
    }
};

// Runs the scenario with the primary dying after `deliver` messages; false when it outlived them.
bool check_death(ProtectionMode mode, std::uint64_t deliver, Death death) {
    Run run(mode);
    run.primary->send_initial_sync();
    run.settle();
    REQUIRE(run.primary->await_colo_entry());
    run.link->arm(deliver, death);
    run.scenario();
    if (!run.link->dead()) return false;

    REQUIRE(run.secondary->process(Secondary::Clock::now()) == Secondary::Outcome::failed_over);
    while (position(run.svm) < kLines) print_next(run.svm);  // the survivor runs on

    const std::string stream = console_stream(kLines);
    const std::string& primary_text = run.primary_out.text;
    const std::uint64_t primary_end = primary_text.size();
    CHECK(run.primary_out.problems.empty());
    CHECK(primary_text == stream.substr(0, primary_end));  // the primary released a prefix

    REQUIRE(run.survivor_out.first);
    const std::uint64_t survivor_start = *run.survivor_out.first;
    CHECK(run.survivor_out.problems.empty());
    CHECK(run.survivor_out.text == stream.substr(survivor_start));  // the survivor released the rest
    CHECK(survivor_start <= primary_end);  // nothing missing
    // Nothing repeated, except bytes released just before the primary died trying to report them.
    const auto* report = run.link->unsent() ? std::get_if<protocol::ReleasedOutput>(&*run.link->unsent()) : nullptr;
    if (report != nullptr) {
        CHECK(report->offset == primary_end);
    } else {
        CHECK(survivor_start == primary_end);
    }
    return true;
}

}  // namespace

TEST_CASE("pipeline exactly once: the primary dies at every message of three checkpoints; joined output is whole") {
    for (const auto mode : {ProtectionMode::remus, ProtectionMode::colo}) {
        CAPTURE(to_string(mode));
        // How many messages the primary sends when nothing goes wrong.
        Run whole(mode);
        whole.primary->send_initial_sync();
        whole.settle();
        REQUIRE(whole.primary->await_colo_entry());
        whole.link->arm(UINT64_MAX, Death::after_delivering);
        whole.scenario();
        const std::uint64_t messages = whole.link->sent();
        CHECK(whole.secondary->status().checkpoints_applied == 3);
        // Nine lines printed; the ninth came after the last checkpoint's pause and is still held.
        CHECK(whole.primary_out.text == console_stream(8));
        REQUIRE(messages >= 3 * 5);  // begin, batch, state, output, end per checkpoint at least
        MESSAGE(std::string(to_string(mode)) << ": the primary dies at each of " << messages << " messages, two ways");

        for (const auto death : {Death::after_delivering, Death::before_sending}) {
            for (std::uint64_t deliver = 0; deliver < messages; ++deliver) {
                CAPTURE(deliver);
                CAPTURE(death == Death::after_delivering ? "after delivering" : "before sending");
                CHECK(check_death(mode, deliver, death));
            }
        }
    }
}

TEST_CASE("pipeline exactly once: remus output the primary held at its death is released by the survivor") {
    // The gap this design closes: the secondary applied checkpoint 1, the primary died before it
    // released the checkpoint's output. The SVM resumes after those lines and never prints them.
    Run run(ProtectionMode::remus);
    run.primary->send_initial_sync();
    run.settle();
    REQUIRE(run.primary->await_colo_entry());
    print_next(run.pvm);
    print_next(run.pvm);
    run.primary->send_checkpoint();
    run.settle();  // applied; checkpoint-loaded is on its way back
    run.link->arm(0, Death::after_delivering);  // the primary dies before it hears of it
    CHECK_FALSE(run.primary->await_checkpoint());
    REQUIRE(run.secondary->process(Secondary::Clock::now()) == Secondary::Outcome::failed_over);
    CHECK(run.primary_out.text.empty());
    CHECK(run.survivor_out.text == "line 0\nline 1\n");  // the PVM's lines, carried by the checkpoint
    CHECK(*run.survivor_out.first == 0);
    print_next(run.svm);
    CHECK(run.survivor_out.text == "line 0\nline 1\nline 2\n");
}

TEST_CASE("pipeline exactly once: a checkpoint's held output is checked before the SVM is touched") {
    struct Case {
        const char* what;
        std::function<void(protocol::Message&)> alter;
        std::string error;
    };
    // Messages of the checkpoint: 0 begin, 1 batch, 2 state, 3 output, 4 end.
    const std::vector<Case> cases = {
        {"output missing", [](protocol::Message& m) { m = protocol::Heartbeat{1, 1}; },
         "secondary: checkpoint-end for epoch 1 claims 1 pages, 1 state and 1 device records; epoch 1 brought 1, "
         "1 and 0"},
        {"output short", [](protocol::Message& m) { std::get<protocol::CheckpointOutput>(m).bytes.pop_back(); },
         "secondary: checkpoint-output ends at console offset 13, its pieces say 14"},
        {"output before the released offset",
         [](protocol::Message& m) { std::get<protocol::CheckpointOutput>(m).offset = 2; },
         "secondary: checkpoint-output starts at console offset 2, before 5 which the primary reported released"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus));
        pair.pvm.guest_print("boot\n");  // released before protection
        pair.protect();
        pair.pvm.guest_print("held one\n");
        pair.pvm.guest_write(Pfn{1}, std::byte{9});
        pair.to_secondary->alter_message(3, c.alter);
        pair.primary->send_checkpoint();
        CHECK_THROWS_WITH_AS(pair.settle(), c.error.c_str(), Error);
        CHECK(pair.secondary->role() == Role::stopped);
        CHECK(pair.svm.vcpu_state() == bytes_of("vcpu@sync"));
    }
    // A piece that does not continue the one before it.
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus));
    pair.protect();
    pair.to_secondary->send(protocol::CheckpointBegin{1});
    pair.to_secondary->send(protocol::CheckpointOutput{0, bytes_of("ab"), 5});
    pair.to_secondary->send(protocol::CheckpointOutput{3, bytes_of("cd"), 5});
    CHECK_THROWS_WITH_AS(pair.settle(),
                         "secondary: checkpoint-output at console offset 3 does not continue the previous piece "
                         "(expected 2)",
                         Error);
}

TEST_CASE("pipeline exactly once: more held output than one record takes is sent in consecutive pieces") {
    Pair pair(primary_config(ProtectionMode::remus), secondary_config(ProtectionMode::remus));
    pair.protect();
    const std::string big(2 * protocol::kMaxCheckpointOutputBytes + 10, 'z');
    pair.pvm.guest_print(big);
    const std::uint64_t before = pair.to_secondary->sent();
    pair.primary->send_checkpoint();
    CHECK(pair.to_secondary->sent() - before == 1 + 1 + 3 + 1);  // begin, state, 3 pieces, end (no dirty page)
    pair.settle();
    pair.to_secondary->close();  // the primary dies before it releases anything
    CHECK(pair.settle() == Secondary::Outcome::failed_over);
    CHECK(pair.secondary_out.get() == big);
    CHECK(pair.secondary_out.problems.empty());
}

TEST_CASE("pipeline exactly once: a survivor whose own send finds the link down still reads the last released-output") {
    SecondaryConfig sc = secondary_config(ProtectionMode::colo);
    sc.link.heartbeat_period = Millis{1};  // its next heartbeat hits the dead link before it reads
    Pair pair(primary_config(ProtectionMode::colo), sc);
    pair.protect();
    pair.pvm.guest_print("same\n");
    pair.svm.guest_print("same\n");
    pair.settle();                                // forwards the SVM's line
    pair.primary->poll(Primary::Clock::now());    // matched: released and reported
    REQUIRE(pair.primary_out.get() == "same\n");
    pair.to_secondary->close();                   // the primary dies; its report is still on the wire
    std::this_thread::sleep_for(Millis{5});
    pair.secondary_out.next = pair.primary_out.next;
    CHECK(pair.settle() == Secondary::Outcome::failed_over);
    pair.svm.guest_print("next\n");
    CHECK(pair.secondary_out.get() == "next\n");  // "same\n" is not released a second time
    CHECK(pair.secondary_out.problems.empty());
}

TEST_CASE("pipeline exactly once: colo output that matches on the console thread waits for the pipeline to release it") {
    // The SVM printed first; the PVM's matching line arrives on the console thread just before a
    // checkpoint. Released there, it would reach the log before any report could follow: the
    // primary dying after checkpoint-begin would have it repeated by the survivor.
    Run run(ProtectionMode::colo);
    run.primary->send_initial_sync();
    run.settle();
    REQUIRE(run.primary->await_colo_entry());
    print_next(run.svm);
    run.settle();
    run.primary->poll(Primary::Clock::now());  // the SVM's line waits for the PVM's
    print_next(run.pvm);
    CHECK(run.primary_out.text.empty());       // held until the pipeline thread matches it
    run.link->arm(1, Death::after_delivering);  // dies once checkpoint-begin is out
    run.primary->send_checkpoint();
    REQUIRE(run.secondary->process(Secondary::Clock::now()) == Secondary::Outcome::failed_over);
    CHECK(run.primary_out.text.empty());
    CHECK(run.survivor_out.text == "line 0\n");
    CHECK(*run.survivor_out.first == 0);
}
