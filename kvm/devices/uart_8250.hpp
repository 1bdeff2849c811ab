// A 16550A-compatible UART (COM1 at 0x3f8, IRQ 4), enough for Linux's 8250 driver and for the
// built-in guest, which writes THR without polling LSR.
//
// Registers by offset (DLAB = LCR bit 7):
//   0  RBR (read) / THR (write); DLL when DLAB      4  MCR (DTR, RTS, OUT1, OUT2, LOOP)
//   1  IER; DLM when DLAB                           5  LSR (DR, OE, THRE, TEMT)
//   2  IIR (read) / FCR (write)                     6  MSR (CTS, DSR, RI, DCD + deltas)
//   3  LCR                                          7  SCR
// Transmit is instantaneous: a THR write goes to the sink at once (or, in loopback, into the
// receive FIFO), so THRE and TEMT are always set and no byte is ever held in the device: a
// checkpoint can never lose console output that sits in the UART. Receive has a 16-byte FIFO
// (1 byte with FIFOs off); the "data available" interrupt is raised as soon as one byte is
// there (we have no character timer, so trigger levels are accepted but not used).
// Interrupts: IIR reports the highest-priority pending source (line status, received data,
// THR empty, modem status). The IRQ line is (pending source && MCR.OUT2), as PC boards gate
// it; every change of that level goes to the irq callback (the VMM turns it into KVM_IRQ_LINE).
//
// Threading: every method takes the UART's own mutex, so the vCPU thread (read/write) and a
// console-input thread (receive) may call concurrently. The sink and irq callbacks are called
// with that mutex held: they must not call back into the UART.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "kvm/devices/port_io_device.hpp"

namespace colo::kvm {

class Uart8250 final : public PortIoDevice {
public:
    using Sink = std::function<void(std::span<const std::byte>)>;
    using IrqLine = std::function<void(bool level)>;

    static constexpr std::uint16_t kCom1Base = 0x3f8;
    static constexpr std::uint16_t kPorts = 8;
    static constexpr std::uint32_t kCom1Irq = 4;
    static constexpr std::size_t kFifoBytes = 16;
    static constexpr std::uint32_t kStateVersion = 1;

    Uart8250(Sink sink, IrqLine irq);

    [[nodiscard]] std::uint32_t read(std::uint16_t offset, unsigned width) override;
    void write(std::uint16_t offset, unsigned width, std::uint32_t value) override;

    // Bytes from the host for the guest (console input). Bytes beyond a full FIFO are dropped
    // and set the overrun error, as on the real part.
    void receive(std::span<const std::byte> bytes);

    // Replaces the sink (the backend's console sink changes).
    void set_sink(Sink sink);

    // Register and FIFO state, kStateVersion format. restore_state throws colo::Error for a
    // blob that is not exactly a valid one, and then leaves the UART unchanged.
    [[nodiscard]] std::vector<std::byte> save_state() const;
    void restore_state(std::span<const std::byte> state);

    // The IRQ line's current level (for tests and for re-asserting after a restore).
    [[nodiscard]] bool irq_level() const;

private:
    struct Registers {
        std::uint8_t ier = 0, lcr = 0, mcr = 0, scr = 0, dll = 0x0c, dlm = 0, fcr = 0;
        std::uint8_t msr = 0;
        bool overrun = false;
        bool thre_pending = false;  // the THR-empty interrupt, until IIR reports it or THR is written
        std::deque<std::uint8_t> rx;
    };

    [[nodiscard]] std::uint8_t iir() const;
    [[nodiscard]] std::uint8_t lsr() const;
    [[nodiscard]] bool fifo_enabled() const { return (r_.fcr & 0x01) != 0; }
    void push_rx(std::uint8_t byte);
    void set_modem_inputs(std::uint8_t new_status);
    void update_irq();

    mutable std::mutex mutex_;
    Registers r_;
    Sink sink_;
    IrqLine irq_;
    bool irq_level_ = false;
};

}  // namespace colo::kvm
