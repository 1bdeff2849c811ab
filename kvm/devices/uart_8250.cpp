#include "kvm/devices/uart_8250.hpp"

#include <string>
#include <utility>

#include "backends/error.hpp"

namespace colo::kvm {

namespace {

// Register offsets.
constexpr std::uint16_t kData = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;

constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr std::uint8_t kIerRx = 0x01, kIerThre = 0x02, kIerLine = 0x04, kIerModem = 0x08;
constexpr std::uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr std::uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr std::uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08;
// A terminal that is connected and ready: CTS, DSR and DCD asserted.
constexpr std::uint8_t kConnected = kMsrCts | kMsrDsr | kMsrDcd;

constexpr std::size_t kStateFixedBytes = 11;

}  // namespace

Uart8250::Uart8250(Sink sink, IrqLine irq) : sink_(std::move(sink)), irq_(std::move(irq)) { r_.msr = kConnected; }

void Uart8250::set_sink(Sink sink) {
    std::lock_guard lock(mutex_);
    sink_ = std::move(sink);
}

std::uint8_t Uart8250::iir() const {
    std::uint8_t id = 0x01;  // nothing pending
    if ((r_.ier & kIerLine) && r_.overrun) {
        id = 0x06;
    } else if ((r_.ier & kIerRx) && !r_.rx.empty()) {
        id = 0x04;
    } else if ((r_.ier & kIerThre) && r_.thre_pending) {
        id = 0x02;
    } else if ((r_.ier & kIerModem) && (r_.msr & 0x0f)) {
        id = 0x00;
    }
    return static_cast<std::uint8_t>(id | (fifo_enabled() ? 0xc0 : 0));
}

std::uint8_t Uart8250::lsr() const {
    std::uint8_t value = kLsrThre | kLsrTemt;  // transmit is instantaneous
    if (!r_.rx.empty()) value |= kLsrDr;
    if (r_.overrun) value |= kLsrOe;
    return value;
}

void Uart8250::push_rx(std::uint8_t byte) {
    const std::size_t capacity = fifo_enabled() ? kFifoBytes : 1;
    if (r_.rx.size() >= capacity) {
        r_.overrun = true;
        return;
    }
    r_.rx.push_back(byte);
}

void Uart8250::set_modem_inputs(std::uint8_t status) {
    const std::uint8_t old = r_.msr;
    std::uint8_t deltas = old & 0x0f;
    if ((old ^ status) & kMsrCts) deltas |= kMsrDcts;
    if ((old ^ status) & kMsrDsr) deltas |= kMsrDdsr;
    if ((old & kMsrRi) && !(status & kMsrRi)) deltas |= kMsrTeri;
    if ((old ^ status) & kMsrDcd) deltas |= kMsrDdcd;
    r_.msr = static_cast<std::uint8_t>((status & 0xf0) | deltas);
}

void Uart8250::update_irq() {
    const bool level = (iir() & 0x01) == 0 && (r_.mcr & kMcrOut2);
    if (level == irq_level_) return;
    irq_level_ = level;
    if (irq_) irq_(level);
}

std::uint32_t Uart8250::read(std::uint16_t offset, unsigned /*width*/) {
    std::lock_guard lock(mutex_);
    std::uint8_t value = 0xff;
    const bool dlab = r_.lcr & kLcrDlab;
    switch (offset) {
        case kData:
            if (dlab) {
                value = r_.dll;
            } else if (!r_.rx.empty()) {
                value = r_.rx.front();
                r_.rx.pop_front();
            } else {
                value = 0;
            }
            break;
        case kIer: value = dlab ? r_.dlm : r_.ier; break;
        case kIirFcr:
            value = iir();
            // Reading IIR acknowledges a THR-empty interrupt it reports.
            if ((value & 0x0f) == 0x02) r_.thre_pending = false;
            break;
        case kLcr: value = r_.lcr; break;
        case kMcr: value = r_.mcr; break;
        case kLsr:
            value = lsr();
            r_.overrun = false;  // reading LSR clears the error bits
            break;
        case kMsr:
            value = r_.msr;
            r_.msr &= 0xf0;  // reading MSR clears the deltas
            break;
        case kScr: value = r_.scr; break;
        default: break;
    }
    update_irq();
    return value;
}

void Uart8250::write(std::uint16_t offset, unsigned /*width*/, std::uint32_t raw) {
    std::lock_guard lock(mutex_);
    const auto value = static_cast<std::uint8_t>(raw);
    const bool dlab = r_.lcr & kLcrDlab;
    switch (offset) {
        case kData:
            if (dlab) {
                r_.dll = value;
            } else {
                if (r_.mcr & kMcrLoop) {
                    push_rx(value);
                } else if (sink_) {
                    const std::byte byte{value};
                    sink_(std::span(&byte, 1));
                }
                r_.thre_pending = true;  // sent at once: THR is empty again
            }
            break;
        case kIer:
            if (dlab) {
                r_.dlm = value;
            } else {
                const std::uint8_t old = r_.ier;
                r_.ier = value & 0x0f;
                // Enabling the THR-empty interrupt while THR is empty raises it at once (the
                // 8250 driver relies on this to start transmitting).
                if (!(old & kIerThre) && (r_.ier & kIerThre)) r_.thre_pending = true;
            }
            break;
        case kIirFcr: {
            const bool was_enabled = fifo_enabled();
            r_.fcr = value & 0xc9;  // enable, DMA mode, trigger level
            if (was_enabled != fifo_enabled() || (value & 0x02)) r_.rx.clear();
            break;
        }
        case kLcr: r_.lcr = value; break;
        case kMcr: {
            r_.mcr = value & 0x1f;
            if (r_.mcr & kMcrLoop) {
                std::uint8_t status = 0;
                if (r_.mcr & kMcrRts) status |= kMsrCts;
                if (r_.mcr & kMcrDtr) status |= kMsrDsr;
                if (r_.mcr & kMcrOut1) status |= kMsrRi;
                if (r_.mcr & kMcrOut2) status |= kMsrDcd;
                set_modem_inputs(status);
            } else {
                set_modem_inputs(kConnected);
            }
            break;
        }
        case kScr: r_.scr = value; break;
        default: break;  // LSR and MSR are read-only
    }
    update_irq();
}

void Uart8250::receive(std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    for (const std::byte b : bytes) push_rx(static_cast<std::uint8_t>(b));
    update_irq();
}

bool Uart8250::irq_level() const {
    std::lock_guard lock(mutex_);
    return irq_level_;
}

std::vector<std::byte> Uart8250::save_state() const {
    std::lock_guard lock(mutex_);
    std::vector<std::byte> out;
    for (const std::uint8_t v : {r_.ier, r_.lcr, r_.mcr, r_.scr, r_.dll, r_.dlm, r_.fcr, r_.msr,
                                 static_cast<std::uint8_t>(r_.overrun), static_cast<std::uint8_t>(r_.thre_pending),
                                 static_cast<std::uint8_t>(r_.rx.size())}) {
        out.push_back(std::byte{v});
    }
    for (const std::uint8_t b : r_.rx) out.push_back(std::byte{b});
    return out;
}

void Uart8250::restore_state(std::span<const std::byte> state) {
    const auto at = [&](std::size_t i) { return static_cast<std::uint8_t>(state[i]); };
    if (state.size() < kStateFixedBytes) {
        throw Error("UART state is " + std::to_string(state.size()) + " bytes, expected at least " +
                    std::to_string(kStateFixedBytes));
    }
    const std::size_t rx_count = at(10);
    if (rx_count > kFifoBytes || state.size() != kStateFixedBytes + rx_count) {
        throw Error("UART state: receive FIFO of " + std::to_string(rx_count) + " bytes in a " +
                    std::to_string(state.size()) + "-byte record");
    }
    if (at(8) > 1 || at(9) > 1) throw Error("UART state: bad flag byte");
    Registers r;
    r.ier = at(0) & 0x0f;
    r.lcr = at(1);
    r.mcr = at(2) & 0x1f;
    r.scr = at(3);
    r.dll = at(4);
    r.dlm = at(5);
    r.fcr = at(6) & 0xc9;
    r.msr = at(7);
    r.overrun = at(8) != 0;
    r.thre_pending = at(9) != 0;
    for (std::size_t i = 0; i < rx_count; ++i) r.rx.push_back(at(kStateFixedBytes + i));
    std::lock_guard lock(mutex_);
    r_ = std::move(r);
    update_irq();
}

}  // namespace colo::kvm
