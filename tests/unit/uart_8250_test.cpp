// The 16550A UART driven through its registers with no VM (STYLE §8).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "backends/error.hpp"
#include "kvm/devices/uart_8250.hpp"

using colo::kvm::Uart8250;

namespace {

struct Harness {
    std::string out;
    std::vector<bool> irq_changes;
    Uart8250 uart{[this](std::span<const std::byte> b) {
                      for (auto c : b) out.push_back(static_cast<char>(c));
                  },
                  [this](bool level) { irq_changes.push_back(level); }};

    void put(std::uint16_t offset, std::uint8_t v) { uart.write(offset, 1, v); }
    std::uint8_t get(std::uint16_t offset) { return static_cast<std::uint8_t>(uart.read(offset, 1)); }
    void type(const std::string& s) { uart.receive(std::as_bytes(std::span(s.data(), s.size()))); }
};

constexpr std::uint16_t THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

}  // namespace

TEST_CASE("uart 8250: THR bytes go to the sink; LSR always says transmitter empty") {
    Harness h;
    for (char c : std::string("seq=1\n")) h.put(THR, static_cast<std::uint8_t>(c));
    CHECK(h.out == "seq=1\n");
    CHECK((h.get(LSR) & 0x60) == 0x60);
    CHECK((h.get(LSR) & 0x01) == 0);  // nothing received
    CHECK(h.irq_changes.empty());     // no interrupts enabled
}

TEST_CASE("uart 8250: divisor latch shares offsets 0 and 1 when DLAB is set") {
    Harness h;
    h.put(LCR, 0x83);  // DLAB, 8N1
    h.put(0, 0x01);    // DLL: 115200 baud
    h.put(1, 0x00);    // DLM
    CHECK(h.get(0) == 0x01);
    CHECK(h.get(1) == 0x00);
    CHECK(h.out.empty());  // the DLL write was not a THR write
    h.put(LCR, 0x03);
    h.put(IER, 0x05);
    CHECK(h.get(IER) == 0x05);
    h.put(LCR, 0x83);
    CHECK(h.get(1) == 0x00);  // DLM kept apart from IER
    CHECK(h.get(LCR) == 0x83);
}

TEST_CASE("uart 8250: scratch register and modem control read back") {
    Harness h;
    h.put(SCR, 0xa5);
    CHECK(h.get(SCR) == 0xa5);
    h.put(MCR, 0xff);
    CHECK(h.get(MCR) == 0x1f);  // only five bits exist
}

TEST_CASE("uart 8250: received bytes, FIFO depth, overrun") {
    Harness h;
    h.type("ab");
    // FIFOs off: a one-byte holding register; the second byte overruns.
    CHECK((h.get(LSR) & 0x03) == 0x03);
    CHECK((h.get(LSR) & 0x02) == 0);  // reading LSR cleared OE
    CHECK(h.get(THR) == 'a');
    CHECK((h.get(LSR) & 0x01) == 0);

    h.put(FCR, 0x07);  // enable and clear FIFOs
    CHECK((h.get(IIR) & 0xc0) == 0xc0);
    h.type(std::string(20, 'x'));
    int received = 0;
    while (h.get(LSR) & 0x01) {
        CHECK(h.get(THR) == 'x');
        ++received;
    }
    CHECK(received == 16);
}

TEST_CASE("uart 8250: interrupt identification, priorities and OUT2 gating") {
    Harness h;
    CHECK((h.get(IIR) & 0x0f) == 0x01);  // none pending
    h.put(IER, 0x02);                    // THR empty interrupt: raised at once
    CHECK((h.get(IIR) & 0x0f) == 0x02);  // ...and acknowledged by this read
    CHECK((h.get(IIR) & 0x0f) == 0x01);
    CHECK(h.irq_changes.empty());  // OUT2 low: the line stays low

    h.put(MCR, 0x08);  // OUT2: the line follows pending interrupts now
    h.put(THR, 'z');
    REQUIRE(h.irq_changes.size() == 1);
    CHECK(h.irq_changes.back() == true);
    CHECK(h.uart.irq_level());
    CHECK((h.get(IIR) & 0x0f) == 0x02);
    CHECK(h.irq_changes.back() == false);

    h.put(IER, 0x07);  // rx + thre + line status
    h.type("q");
    CHECK((h.get(IIR) & 0x0f) == 0x04);  // received data outranks THR empty
    h.type("r");                          // overrun (FIFO off)
    CHECK((h.get(IIR) & 0x0f) == 0x06);  // line status outranks received data
    (void)h.get(LSR);
    CHECK((h.get(IIR) & 0x0f) == 0x04);
    CHECK(h.get(THR) == 'q');
    CHECK((h.get(IIR) & 0x0f) == 0x01);  // THR-empty from 'z' was acknowledged above
    CHECK(h.uart.irq_level() == false);
}

TEST_CASE("uart 8250: loopback feeds THR into RBR and MCR into MSR") {
    Harness h;
    h.put(MCR, 0x10 | 0x02 | 0x01);  // loop, RTS, DTR
    CHECK((h.get(MSR) & 0xf0) == 0x30);  // CTS, DSR
    h.put(THR, 'L');
    CHECK(h.out.empty());
    CHECK(h.get(THR) == 'L');
    h.put(MCR, 0x00);                       // leave loopback: a connected terminal again
    CHECK((h.get(MSR) & 0xf0) == 0xb0);
    CHECK((h.get(MSR) & 0x0f) == 0);        // deltas cleared by the previous read
}

TEST_CASE("uart 8250: save and restore carry registers and FIFO; bad state is refused") {
    Harness a;
    a.put(LCR, 0x83);
    a.put(0, 0x0c);
    a.put(LCR, 0x03);
    a.put(FCR, 0x01);
    a.put(IER, 0x01);
    a.put(MCR, 0x0b);
    a.put(SCR, 0x42);
    a.type("hi");
    const auto state = a.uart.save_state();

    Harness b;
    b.uart.restore_state(state);
    CHECK(b.uart.save_state() == state);
    CHECK(b.get(SCR) == 0x42);
    CHECK(b.uart.irq_level());  // data pending, rx interrupt enabled, OUT2 set
    REQUIRE(b.irq_changes.size() == 1);
    CHECK(b.get(THR) == 'h');
    CHECK(b.get(THR) == 'i');

    Harness c;
    const auto before = c.uart.save_state();
    auto short_state = state;
    short_state.pop_back();
    CHECK_THROWS_WITH_AS(c.uart.restore_state(short_state), "UART state: receive FIFO of 2 bytes in a 12-byte record",
                         colo::Error);
    CHECK_THROWS_AS(c.uart.restore_state(std::span(state.data(), 3)), colo::Error);
    auto bad_flag = state;
    bad_flag[8] = std::byte{7};
    CHECK_THROWS_AS(c.uart.restore_state(bad_flag), colo::Error);
    CHECK(c.uart.save_state() == before);  // unchanged by the refused restores
}
