// The virtqueue and the virtio-net device (kvm/devices/) over plain memory, driven through their
// registers as a driver would: chains, receive into posted buffers, the backlog while paused,
// hostile rings and descriptors, and the state round trip. The real guest is in the kvm tier.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "kvm/devices/virtio_net.hpp"
#include "kvm/devices/virtqueue.hpp"
#include "tests/unit/plain_device_memory.hpp"

using namespace colo::kvm;

namespace {

using device_test::PlainMemory;

constexpr std::uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kBuffers = 0x8000;

void descriptor(PlainMemory& m, std::uint16_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags,
                std::uint16_t next = 0) {
    m.put<std::uint64_t>(kDesc + 16 * i, addr);
    m.put<std::uint32_t>(kDesc + 16 * i + 8, len);
    m.put<std::uint16_t>(kDesc + 16 * i + 12, flags);
    m.put<std::uint16_t>(kDesc + 16 * i + 14, next);
}

void make_available(PlainMemory& m, std::uint16_t slot, std::uint16_t head, std::uint16_t idx) {
    m.put<std::uint16_t>(kAvail + 4 + 2 * slot, head);
    m.put<std::uint16_t>(kAvail + 2, idx);
}

QueueState queue(std::uint16_t size = 8) { return QueueState{size, true, kDesc, kAvail, kUsed, 0, 0}; }

}  // namespace

TEST_CASE("virtqueue: a chain is taken whole and handed back through the used ring") {
    PlainMemory m;
    QueueState q = queue();
    check_queue(m, q);
    descriptor(m, 0, kBuffers, 12, 1 | 2, 3);  // NEXT | WRITE
    descriptor(m, 3, kBuffers + 0x800, 1500, 2);
    make_available(m, 0, 0, 1);
    const auto chain = pop_chain(m, q);
    REQUIRE(chain);
    CHECK(chain->head == 0);
    REQUIRE(chain->segments.size() == 2);
    CHECK(chain->segments[1].gpa == kBuffers + 0x800);
    CHECK(chain->segments[1].device_writable);
    CHECK_FALSE(pop_chain(m, q));  // nothing more available
    push_used(m, q, chain->head, 100);
    CHECK(m.get<std::uint16_t>(kUsed + 2) == 1);
    CHECK(m.get<std::uint32_t>(kUsed + 4) == 0);
    CHECK(m.get<std::uint32_t>(kUsed + 8) == 100);
    CHECK(m.writes.size() == 3);  // entry id, entry length, index: all reported
    CHECK(wants_interrupt(m, q));
    m.put<std::uint16_t>(kAvail, 1);  // VIRTQ_AVAIL_F_NO_INTERRUPT
    CHECK_FALSE(wants_interrupt(m, q));
}

TEST_CASE("virtqueue: what a hostile driver supplies is refused, never followed") {
    PlainMemory m;
    const auto error_of = [&](auto setup) {
        QueueState q = queue();
        setup(q);
        try {
            (void)pop_chain(m, q);
        } catch (const VirtqueueError& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    CHECK(error_of([&](QueueState&) {
              descriptor(m, 0, 0xffff0000, 64, 0);
              make_available(m, 0, 0, 1);
          }).rfind("descriptor buffer: outside RAM", 0) == 0);
    CHECK(error_of([&](QueueState&) {
              descriptor(m, 0, kBuffers, 64, 1, 1);
              descriptor(m, 1, kBuffers, 64, 1, 0);  // 0 -> 1 -> 0 -> ...
              make_available(m, 0, 0, 1);
          }) == "a descriptor chain is longer than its queue (a loop?)");
    CHECK(error_of([&](QueueState&) {
              descriptor(m, 0, kBuffers, 64, 1, 200);
              make_available(m, 0, 0, 1);
          }) == "descriptor 200 is outside the table");
    CHECK(error_of([&](QueueState&) { make_available(m, 0, 9, 1); }) == "descriptor 9 is outside the table");
    CHECK(error_of([&](QueueState&) {
              descriptor(m, 0, kBuffers, 64, 4);
              make_available(m, 0, 0, 1);
          }) == "an indirect descriptor, which was not offered");
    CHECK(error_of([&](QueueState&) { make_available(m, 0, 0, 9); }) ==
          "the driver made 9 buffers available in a queue of 8");
    CHECK_THROWS_WITH_AS(check_queue(m, queue(6)), "virtqueue size 6 is not a power of two up to 256", VirtqueueError);
    QueueState outside = queue();
    outside.device = 0xfff0;
    CHECK_THROWS_AS(check_queue(m, outside), VirtqueueError);
}

namespace {

// A driver bringing the NIC up through its registers, with `buffers` receive buffers posted.
struct Driver {
    PlainMemory m;
    unsigned interrupts = 0;
    VirtioNet nic{colo::VifConfig{{0x52, 0x54, 0, 1, 2, 3}, "", "", std::nullopt}, m, [this] { ++interrupts; }};
    static constexpr std::uint64_t kRxDesc = 0x1000, kRxAvail = 0x2000, kRxUsed = 0x3000;
    static constexpr std::uint64_t kTxDesc = 0x4000, kTxAvail = 0x5000, kTxUsed = 0x6000;

    void set_queue(std::uint32_t index, std::uint64_t desc, std::uint64_t avail, std::uint64_t used) {
        nic.write(0x030, 4, index);
        nic.write(0x038, 4, 8);
        nic.write(0x080, 4, desc);
        nic.write(0x090, 4, avail);
        nic.write(0x0a0, 4, used);
        nic.write(0x044, 4, 1);
    }
    explicit Driver(unsigned buffers) {
        CHECK(nic.read(0x000, 4) == 0x74726976);
        CHECK(nic.read(0x008, 4) == 1);
        nic.write(0x070, 4, 1 | 2);
        nic.write(0x024, 4, 1);
        nic.write(0x020, 4, 1);  // VERSION_1
        nic.write(0x070, 4, 1 | 2 | 8);
        set_queue(0, kRxDesc, kRxAvail, kRxUsed);
        set_queue(1, kTxDesc, kTxAvail, kTxUsed);
        for (std::uint16_t i = 0; i < buffers; ++i) {
            m.put<std::uint64_t>(kRxDesc + 16 * i, 0x8000 + 0x800 * i);
            m.put<std::uint32_t>(kRxDesc + 16 * i + 8, 0x800);
            m.put<std::uint16_t>(kRxDesc + 16 * i + 12, 2);
            m.put<std::uint16_t>(kRxAvail + 4 + 2 * i, i);
        }
        m.put<std::uint16_t>(kRxAvail + 2, static_cast<std::uint16_t>(buffers));
        nic.write(0x070, 4, 1 | 2 | 8 | 4);  // DRIVER_OK
    }
    [[nodiscard]] std::uint16_t received() const { return m.get<std::uint16_t>(kRxUsed + 2); }
};

}  // namespace

TEST_CASE("virtio-net device: frames go into posted buffers with their header, wait while paused or unposted") {
    Driver d(2);
    CHECK(d.nic.read(0x100, 1) == 0x52);  // the MAC, in config space
    CHECK(d.nic.read(0x105, 1) == 3);
    const std::vector<std::byte> frame(60, std::byte{0xab});
    d.nic.deliver_to_guest(frame);
    CHECK(d.received() == 0);  // paused (as a new VM is): nothing written
    CHECK(d.m.writes.empty());
    d.nic.set_paused(false);
    CHECK(d.received() == 1);
    CHECK(d.m.get<std::uint32_t>(Driver::kRxUsed + 8) == 12 + 60);
    CHECK(d.m.get<std::uint16_t>(0x8000 + 10) == 1);  // num_buffers
    CHECK(d.m.get<std::uint8_t>(0x8000 + 12) == 0xab);
    CHECK(d.interrupts == 1);
    d.nic.deliver_to_guest(frame);
    d.nic.deliver_to_guest(frame);  // only two buffers were posted: this one waits
    CHECK(d.received() == 2);
    // The waiting frame is state: a new device given the record has it, and places it once the
    // driver posts a buffer.
    d.nic.set_paused(true);
    const auto state = d.nic.save_state();
    Driver e(0);
    e.m.ram = d.m.ram;
    e.nic.restore_state(state);
    e.nic.set_paused(false);
    CHECK(e.received() == 2);  // the ring's position came with the state
    e.m.put<std::uint16_t>(Driver::kRxAvail + 4 + 2 * 2, 2);
    e.m.put<std::uint64_t>(Driver::kRxDesc + 32, 0x9000);
    e.m.put<std::uint32_t>(Driver::kRxDesc + 40, 0x800);
    e.m.put<std::uint16_t>(Driver::kRxDesc + 44, 2);
    e.m.put<std::uint16_t>(Driver::kRxAvail + 2, 3);
    e.nic.write(0x050, 4, 0);  // notify the receive queue
    CHECK(e.received() == 3);
}

TEST_CASE("virtio-net device: a broken receive ring sets DEVICE_NEEDS_RESET and is left alone") {
    Driver d(1);
    d.nic.set_paused(false);
    d.m.put<std::uint64_t>(Driver::kRxDesc, 0xfffff000);  // the posted buffer is outside RAM
    d.nic.deliver_to_guest(std::vector<std::byte>(60, std::byte{1}));
    CHECK((d.nic.device_status() & 64) != 0);
    CHECK(d.received() == 0);
    d.nic.write(0x070, 4, 0);  // reset
    CHECK(d.nic.device_status() == 0);
}

TEST_CASE("virtio-net device: transmitted frames lose their header and go to the sink") {
    Driver d(0);
    d.nic.set_paused(false);
    std::vector<std::vector<std::byte>> sent;
    d.nic.set_transmit_sink([&](std::span<const std::byte> f) { sent.emplace_back(f.begin(), f.end()); });
    d.m.put<std::uint64_t>(Driver::kTxDesc, 0xa000);
    d.m.put<std::uint32_t>(Driver::kTxDesc + 8, 12 + 42);
    d.m.put<std::uint8_t>(0xa000 + 12, 0x77);
    d.m.put<std::uint16_t>(Driver::kTxAvail + 4, 0);
    d.m.put<std::uint16_t>(Driver::kTxAvail + 2, 1);
    d.nic.write(0x050, 4, 1);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].size() == 42);
    CHECK(sent[0][0] == std::byte{0x77});
    CHECK(d.m.get<std::uint16_t>(Driver::kTxUsed + 2) == 1);
}

namespace {

// One transmit chain of a single descriptor at table slot `slot`: header + `frame_bytes`.
void post_transmit(Driver& d, std::uint16_t slot, std::uint32_t frame_bytes, std::uint8_t first) {
    const std::uint64_t buffer = 0xa000 + 0x800 * slot;
    d.m.put<std::uint64_t>(Driver::kTxDesc + 16 * slot, buffer);
    d.m.put<std::uint32_t>(Driver::kTxDesc + 16 * slot + 8, 12 + frame_bytes);
    d.m.put<std::uint16_t>(Driver::kTxDesc + 16 * slot + 12, 0);
    d.m.put<std::uint8_t>(buffer + 12, first);
    d.m.put<std::uint16_t>(Driver::kTxAvail + 4 + 2 * slot, slot);
    d.m.put<std::uint16_t>(Driver::kTxAvail + 2, static_cast<std::uint16_t>(slot + 1));
    d.nic.write(0x050, 4, 1);
}

}  // namespace

TEST_CASE("virtio-net device: a frame too long to carry is dropped, the queue goes on") {
    Driver d(0);
    d.nic.set_paused(false);
    std::vector<std::vector<std::byte>> sent;
    d.nic.set_transmit_sink([&](std::span<const std::byte> f) { sent.emplace_back(f.begin(), f.end()); });
    post_transmit(d, 0, 1518, 0x11);  // a VLAN-tagged full frame: 4 bytes over
    CHECK(sent.empty());
    CHECK((d.nic.device_status() & 64) == 0);
    CHECK(d.m.get<std::uint16_t>(Driver::kTxUsed + 2) == 1);  // handed back all the same
    post_transmit(d, 1, 1514, 0x22);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].size() == 1514);
    CHECK(sent[0][0] == std::byte{0x22});
}

TEST_CASE("virtio-net device: only a reset clears DEVICE_NEEDS_RESET") {
    Driver d(1);
    d.nic.set_paused(false);
    d.m.put<std::uint64_t>(Driver::kRxDesc, 0xfffff000);  // the posted buffer is outside RAM
    d.nic.deliver_to_guest(std::vector<std::byte>(60, std::byte{1}));
    REQUIRE((d.nic.device_status() & 64) != 0);
    d.nic.write(0x070, 4, 1 | 2 | 8 | 4);  // the driver writes its own bits back
    CHECK((d.nic.device_status() & 64) != 0);
    // The broken queue stays unused: nothing more is read from it or written.
    d.m.writes.clear();
    d.m.put<std::uint64_t>(Driver::kRxDesc, 0x8000);
    d.nic.write(0x050, 4, 0);
    CHECK(d.received() == 0);
    CHECK(d.m.writes.empty());
    d.nic.write(0x070, 4, 0);
    CHECK(d.nic.device_status() == 0);
}

TEST_CASE("virtio-net device: a ready queue keeps the size and rings that were checked") {
    Driver d(0);
    d.nic.set_paused(false);
    std::vector<std::vector<std::byte>> sent;
    d.nic.set_transmit_sink([&](std::span<const std::byte> f) { sent.emplace_back(f.begin(), f.end()); });
    d.nic.write(0x030, 4, 1);
    d.nic.write(0x038, 4, 3);           // not a power of two
    d.nic.write(0x080, 4, 0xf001);      // misaligned, and past the checked table
    d.nic.write(0x0a0, 4, 0xfffe);      // misaligned, and its ring would run out of RAM
    post_transmit(d, 0, 42, 0x33);
    REQUIRE(sent.size() == 1);          // the queue as it was made ready
    CHECK(sent[0][0] == std::byte{0x33});
    CHECK(d.m.get<std::uint16_t>(Driver::kTxUsed + 2) == 1);
    CHECK((d.nic.device_status() & 64) == 0);
}
