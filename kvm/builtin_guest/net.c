/* The built-in guest's network service: a virtio-net driver (virtio 1.x over virtio-mmio
 * version 2, split virtqueues: queue 0 receive, queue 1 transmit) and a tiny IPv4 host that
 *   - answers ARP requests for its address,
 *   - answers ICMP echo requests,
 *   - answers UDP datagrams to port 7777: payload "req=17" gets "req=17 count=N\n" back, N the
 *     number of requests served since boot (1, 2, ...), so a lost or repeated reply is visible.
 * A reply depends only on the guest's memory and the frame it answers (no clock, no TSC):
 * under COLO a PVM and an SVM given the same frames transmit the same bytes. Nothing goes to
 * the console per frame, so console output stays independent of when frames arrive.
 *
 * Everything runs in ring 3 (the VMM maps the register page and the IOAPIC user-accessible);
 * ring 0 only halts until an interrupt and sends the LAPIC its EOI (entry.S). The NIC's
 * interrupt is edge-triggered through the IOAPIC: the driver acknowledges the device's
 * interrupt status before it reads the rings, so a frame that arrives later raises a new edge.
 * The transmit queue asks for no interrupts; its slots are reclaimed when needed.
 *
 * Memory (params.h, COLO_BUILTIN_NET_*): ring pages and one fixed buffer per descriptor, in
 * the network area the VMM reserved; descriptor i always points at buffer i. */
#include "kvm/builtin_guest/net.h"

#include <stddef.h>

#include "kvm/builtin_guest/decimal.h"
#include "kvm/builtin_guest/image_header.h"
#include "kvm/builtin_guest/virtio_mmio.h"

#define MMIO_CONFIG_MAC MMIO_CONFIG /* virtio_net_config: mac[6] first */
#define VIRTIO_ID_NET 1u
#define FEATURE_NET_MAC (1u << 5) /* word 0 */
#define INTERRUPT_USED_BUFFER 1u
#define INTERRUPT_CONFIG_CHANGE 2u
#define USED_F_NO_NOTIFY 1u
#define NET_HDR_BYTES 12u /* virtio_net_hdr with num_buffers: always, under VERSION_1 */

#define RX_QUEUE 0u
#define TX_QUEUE 1u
#define RING_PAGE 0x1000u

struct queue {
    struct virtq_desc* desc;
    struct virtq_avail* avail;
    volatile struct virtq_used* used;
    uint8_t* buffers;
    uint16_t size;      /* a power of two */
    uint16_t avail_idx; /* next free slot of the avail ring (what the device will see) */
    uint16_t last_used; /* receive: used entries handled; transmit: slots known reclaimed */
};

static volatile uint8_t* regs;
static struct queue rx, tx;
static int up;
static int tx_pending;
static uint8_t my_mac[6];
static uint8_t my_ip[4];
static uint64_t requests_served;

#if __STDC_HOSTED__
#include <string.h> /* built for the host by tests/unit/builtin_guest_net_test.cpp */
#else
/* The compiler emits calls to these for struct copies and loops even when freestanding. */
void* memcpy(void* restrict to, const void* restrict from, size_t n);
void* memset(void* to, int value, size_t n);

void* memcpy(void* restrict to, const void* restrict from, size_t n) {
    uint8_t* t = to;
    const uint8_t* f = from;
    while (n--) *t++ = *f++;
    return to;
}

void* memset(void* to, int value, size_t n) {
    uint8_t* t = to;
    while (n--) *t++ = (uint8_t)value;
    return to;
}
#endif

static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

static inline uint32_t reg_read(uint32_t offset) { return vmmio_read(regs, offset); }
static inline void reg_write(uint32_t offset, uint32_t value) { vmmio_write(regs, offset, value); }
static void reg_write64(uint32_t offset, uint64_t value) { vmmio_write64(regs, offset, value); }

static void ioapic_write(uint64_t ioapic, uint32_t index, uint32_t value) {
    *(volatile uint32_t*)(uintptr_t)ioapic = index;               /* IOREGSEL */
    *(volatile uint32_t*)(uintptr_t)(ioapic + 0x10) = value;      /* IOWIN */
}

static uint16_t get16(const uint8_t* p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t* p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static int same(const uint8_t* a, const uint8_t* b, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* The Internet checksum (RFC 1071): ones'-complement sum of big-endian 16-bit words. */
static uint32_t sum16(const uint8_t* p, uint32_t n, uint32_t acc) {
    for (uint32_t i = 0; i + 1 < n; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) acc += (uint32_t)p[n - 1] << 8;
    return acc;
}
static uint16_t fold(uint32_t acc) {
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static const char* queue_setup(struct queue* q, uint32_t index, uint64_t rings, uint64_t buffers, uint16_t flags) {
    reg_write(MMIO_QUEUE_SEL, index);
    const uint32_t max = reg_read(MMIO_QUEUE_NUM_MAX);
    if (max == 0) return "queue missing";
    uint32_t size = COLO_BUILTIN_NET_QUEUE_SIZE;
    while (size > max) size >>= 1;
    q->desc = (struct virtq_desc*)(uintptr_t)rings;
    q->avail = (struct virtq_avail*)(uintptr_t)(rings + RING_PAGE);
    q->used = (volatile struct virtq_used*)(uintptr_t)(rings + 2 * RING_PAGE);
    q->buffers = (uint8_t*)(uintptr_t)buffers;
    q->size = (uint16_t)size;
    q->avail_idx = 0;
    q->last_used = 0;
    memset((void*)(uintptr_t)rings, 0, 3 * RING_PAGE);
    for (uint32_t i = 0; i < size; ++i) {
        q->desc[i].addr = buffers + (uint64_t)i * COLO_BUILTIN_NET_BUFFER_BYTES;
        q->desc[i].len = COLO_BUILTIN_NET_BUFFER_BYTES;
        q->desc[i].flags = flags;
        q->desc[i].next = 0;
    }
    reg_write(MMIO_QUEUE_NUM, size);
    reg_write64(MMIO_QUEUE_DESC, rings);
    reg_write64(MMIO_QUEUE_DRIVER, rings + RING_PAGE);
    reg_write64(MMIO_QUEUE_DEVICE, rings + 2 * RING_PAGE);
    reg_write(MMIO_QUEUE_READY, 1);
    return 0;
}

/* Device initialisation as virtio 1.x 3.1.1 orders it. */
const char* net_start(const struct colo_builtin_params* params, int use_interrupt) {
    regs = (volatile uint8_t*)(uintptr_t)params->nic_mmio_gpa;
    uint32_t offered_low = 0;
    const char* refused = vmmio_negotiate(regs, VIRTIO_ID_NET, "device is not a NIC", FEATURE_NET_MAC, &offered_low);
    if (refused) return refused;
    uint32_t status = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;

    requests_served = 0;
    tx_pending = 0;
    /* Both queues idle, as a reset leaves them (checked before either is set up). */
    for (uint32_t q = RX_QUEUE; q <= TX_QUEUE; ++q) {
        reg_write(MMIO_QUEUE_SEL, q);
        if (reg_read(MMIO_QUEUE_READY) != 0) {
            reg_write(MMIO_STATUS, STATUS_FAILED);
            return "queue already live after reset";
        }
    }
    const uint64_t area = params->net_area_gpa;
    const char* failed = queue_setup(&rx, RX_QUEUE, area + COLO_BUILTIN_NET_RX_RINGS, area + COLO_BUILTIN_NET_RX_BUFFERS,
                                     DESC_F_WRITE);
    if (!failed) {
        failed = queue_setup(&tx, TX_QUEUE, area + COLO_BUILTIN_NET_TX_RINGS, area + COLO_BUILTIN_NET_TX_BUFFERS, 0);
    }
    if (failed) {
        reg_write(MMIO_STATUS, STATUS_FAILED);
        return failed;
    }
    tx.avail->flags = AVAIL_F_NO_INTERRUPT;

    for (uint32_t i = 0; i < 6; ++i) {
        my_mac[i] = (offered_low & FEATURE_NET_MAC) ? *(volatile uint8_t*)(regs + MMIO_CONFIG_MAC + i) : params->mac[i];
    }
    for (uint32_t i = 0; i < 4; ++i) my_ip[i] = params->ipv4[i];

    /* Every receive buffer to the device before it goes live. */
    for (uint16_t i = 0; i < rx.size; ++i) rx.avail->ring[i] = i;
    barrier();
    rx.avail_idx = rx.size;
    rx.avail->idx = rx.avail_idx;

    if (use_interrupt) {
        /* Redirection entry of pin nic_gsi: vCPU 0 (physical destination 0), fixed delivery,
         * edge-triggered, active high, unmasked. High half first: writing the low half unmasks. */
        const uint32_t entry = 0x10 + 2 * params->nic_gsi;
        ioapic_write(params->ioapic_gpa, entry + 1, 0);
        ioapic_write(params->ioapic_gpa, entry, COLO_BUILTIN_NIC_VECTOR);
    }
    status |= STATUS_DRIVER_OK;
    reg_write(MMIO_STATUS, status);
    reg_write(MMIO_QUEUE_NOTIFY, RX_QUEUE);
    up = 1;
    return 0;
}

/* A free transmit buffer (after its virtio_net_hdr), waiting for the device if all are in
 * flight. The device returns transmit buffers as soon as it has read them. */
static uint8_t* tx_begin(void) {
    while ((uint16_t)(tx.avail_idx - tx.used->idx) >= tx.size) {
        if (tx_pending) {
            reg_write(MMIO_QUEUE_NOTIFY, TX_QUEUE);
            tx_pending = 0;
        }
        __asm__ volatile("pause");
    }
    const uint16_t slot = tx.avail_idx & (tx.size - 1);
    uint8_t* buffer = tx.buffers + (uint32_t)slot * COLO_BUILTIN_NET_BUFFER_BYTES;
    memset(buffer, 0, NET_HDR_BYTES); /* no offloads negotiated: an all-zero header */
    return buffer + NET_HDR_BYTES;
}

/* Queues the frame tx_begin handed out (length bytes, padded to Ethernet's 60); net_poll
 * notifies the device once for everything queued in one pass. */
static void tx_commit(uint32_t length) {
    const uint16_t slot = tx.avail_idx & (tx.size - 1);
    uint8_t* frame = tx.buffers + (uint32_t)slot * COLO_BUILTIN_NET_BUFFER_BYTES + NET_HDR_BYTES;
    while (length < 60) frame[length++] = 0;
    tx.desc[slot].len = NET_HDR_BYTES + length;
    tx.avail->ring[slot] = slot;
    barrier();
    ++tx.avail_idx;
    tx.avail->idx = tx.avail_idx;
    tx_pending = 1;
}

#define ETH_HDR 14u
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806

static void eth_header(uint8_t* out, const uint8_t* to, uint16_t type) {
    memcpy(out, to, 6);
    memcpy(out + 6, my_mac, 6);
    put16(out + 12, type);
}

static void answer_arp(const uint8_t* frame, uint32_t length) {
    const uint8_t* arp = frame + ETH_HDR;
    if (length < ETH_HDR + 28) return;
    /* Ethernet/IPv4, request, for our address. */
    if (get16(arp) != 1 || get16(arp + 2) != ETHERTYPE_IPV4 || arp[4] != 6 || arp[5] != 4 || get16(arp + 6) != 1 ||
        !same(arp + 24, my_ip, 4)) {
        return;
    }
    uint8_t* out = tx_begin();
    eth_header(out, arp + 8, ETHERTYPE_ARP);
    uint8_t* reply = out + ETH_HDR;
    put16(reply, 1);
    put16(reply + 2, ETHERTYPE_IPV4);
    reply[4] = 6;
    reply[5] = 4;
    put16(reply + 6, 2);
    memcpy(reply + 8, my_mac, 6);
    memcpy(reply + 14, my_ip, 4);
    memcpy(reply + 18, arp + 8, 10); /* the asker's MAC and address */
    tx_commit(ETH_HDR + 28);
}

/* An IPv4 header (20 bytes, no options) from us to `to`, and the Ethernet header before it.
 * Identification 0 with don't-fragment: the reply carries nothing that could differ between
 * a PVM and an SVM. Returns where the payload goes. */
static uint8_t* ipv4_begin(uint8_t* out, const uint8_t* request, uint8_t protocol, uint32_t payload_bytes) {
    const uint8_t* ip = request + ETH_HDR;
    eth_header(out, request + 6, ETHERTYPE_IPV4);
    uint8_t* h = out + ETH_HDR;
    h[0] = 0x45;
    h[1] = 0;
    put16(h + 2, (uint16_t)(20 + payload_bytes));
    put16(h + 4, 0);
    put16(h + 6, 0x4000);
    h[8] = 64;
    h[9] = protocol;
    put16(h + 10, 0);
    memcpy(h + 12, my_ip, 4);
    memcpy(h + 16, ip + 12, 4);
    put16(h + 10, fold(sum16(h, 20, 0)));
    return h + 20;
}

static void answer_icmp(const uint8_t* frame, const uint8_t* icmp, uint32_t icmp_bytes) {
    if (icmp_bytes < 8 || icmp[0] != 8 || icmp[1] != 0) return; /* echo request */
    if (fold(sum16(icmp, icmp_bytes, 0)) != 0) return;
    if (ETH_HDR + 20 + icmp_bytes > COLO_BUILTIN_NET_BUFFER_BYTES - NET_HDR_BYTES) return;
    uint8_t* out = tx_begin();
    uint8_t* reply = ipv4_begin(out, frame, 1, icmp_bytes);
    memcpy(reply, icmp, icmp_bytes);
    reply[0] = 0; /* echo reply; identifier, sequence and data stay */
    put16(reply + 2, 0);
    put16(reply + 2, fold(sum16(reply, icmp_bytes, 0)));
    tx_commit(ETH_HDR + 20 + icmp_bytes);
}

#define MAX_REQUEST_ID 1024u

/* "req=17" (a trailing newline is dropped) gets "req=17 count=N\n". */
static void answer_udp(const uint8_t* frame, const uint8_t* udp, uint32_t udp_bytes) {
    if (udp_bytes < 8 || get16(udp + 2) != COLO_BUILTIN_UDP_PORT) return;
    const uint32_t length = get16(udp + 4);
    if (length < 8 || length > udp_bytes) return;
    if (get16(udp + 6) != 0) {
        const uint8_t* ip = frame + ETH_HDR;
        uint32_t acc = sum16(ip + 12, 8, 17 + length); /* pseudo header: addresses, protocol, length */
        if (fold(sum16(udp, length, acc)) != 0) return;
    }
    const uint8_t* request = udp + 8;
    uint32_t id_bytes = length - 8;
    while (id_bytes > 0 && (request[id_bytes - 1] == '\n' || request[id_bytes - 1] == '\r')) --id_bytes;
    if (id_bytes > MAX_REQUEST_ID) return;

    const uint64_t count = ++requests_served;
    uint8_t* out = tx_begin();
    char text[MAX_REQUEST_ID + 32];
    memcpy(text, request, id_bytes);
    uint32_t n = id_bytes;
    const char* label = " count=";
    for (const char* c = label; *c; ++c) text[n++] = *c;
    n += format_decimal(text + n, count);
    text[n++] = '\n';

    uint8_t* reply = ipv4_begin(out, frame, 17, 8 + n);
    const uint8_t* ip = frame + ETH_HDR;
    put16(reply, COLO_BUILTIN_UDP_PORT);
    memcpy(reply + 2, udp, 2); /* to the asker's port */
    put16(reply + 4, (uint16_t)(8 + n));
    put16(reply + 6, 0);
    memcpy(reply + 8, text, n);
    uint32_t acc = sum16(my_ip, 4, 0);
    acc = sum16(ip + 12, 4, acc);
    acc += 17 + 8 + n;
    uint16_t checksum = fold(sum16(reply, 8 + n, acc));
    put16(reply + 6, checksum == 0 ? 0xffff : checksum);
    tx_commit(ETH_HDR + 20 + 8 + n);
}

static void answer_ipv4(const uint8_t* frame, uint32_t length) {
    const uint8_t* ip = frame + ETH_HDR;
    if (length < ETH_HDR + 20 || (ip[0] >> 4) != 4) return;
    const uint32_t header = (uint32_t)(ip[0] & 0xf) * 4;
    const uint32_t total = get16(ip + 2);
    if (header < 20 || total < header || ETH_HDR + total > length) return;
    if (!same(ip + 16, my_ip, 4) || (get16(ip + 6) & 0x3fff) != 0) return; /* ours, not a fragment */
    if (fold(sum16(ip, header, 0)) != 0) return;
    if (ip[9] == 1) answer_icmp(frame, ip + header, total - header);
    if (ip[9] == 17) answer_udp(frame, ip + header, total - header);
}

static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static const uint8_t no_address[4] = {0, 0, 0, 0};

static void answer(const uint8_t* frame, uint32_t length) {
    if (same(my_ip, no_address, 4)) return; /* a vif without ip=: nothing to answer for */
    if (length < ETH_HDR || (!same(frame, my_mac, 6) && !same(frame, broadcast, 6))) return;
    const uint16_t type = get16(frame + 12);
    if (type == ETHERTYPE_ARP) answer_arp(frame, length);
    if (type == ETHERTYPE_IPV4) answer_ipv4(frame, length);
}

void net_poll(int after_interrupt) {
    if (!up) return;
    if (after_interrupt) reg_write(MMIO_INTERRUPT_ACK, INTERRUPT_USED_BUFFER | INTERRUPT_CONFIG_CHANGE);
    for (;;) {
        const uint16_t used = rx.used->idx;
        if (used == rx.last_used) break;
        barrier(); /* x86 keeps loads in order; the compiler must too */
        /* Buffers the device still holds. A device that ran dry waits for a notification; it
         * may have, only if it holds few, so only then is the notification (an exit) paid. */
        const uint16_t held = (uint16_t)(rx.avail_idx - used);
        while (rx.last_used != used) {
            const volatile struct virtq_used_elem* e = &rx.used->ring[rx.last_used & (rx.size - 1)];
            const uint32_t id = e->id;
            const uint32_t length = e->len;
            ++rx.last_used;
            if (id >= rx.size) continue; /* not a buffer of ours: nothing to answer or give back */
            if (length > NET_HDR_BYTES && length <= COLO_BUILTIN_NET_BUFFER_BYTES) {
                answer(rx.buffers + id * COLO_BUILTIN_NET_BUFFER_BYTES + NET_HDR_BYTES, length - NET_HDR_BYTES);
            }
            rx.avail->ring[rx.avail_idx & (rx.size - 1)] = (uint16_t)id;
            ++rx.avail_idx;
        }
        barrier();
        rx.avail->idx = rx.avail_idx;
        __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the new avail idx is visible before we read the flag */
        if (held < rx.size / 2 && !(rx.used->flags & USED_F_NO_NOTIFY)) reg_write(MMIO_QUEUE_NOTIFY, RX_QUEUE);
    }
    if (tx_pending) {
        tx_pending = 0;
        reg_write(MMIO_QUEUE_NOTIFY, TX_QUEUE);
    }
}
