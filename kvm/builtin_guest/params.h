/* The built-in test guest's parameters page, shared by the guest (C, freestanding) and the VMM
 * (C++), which fills it in at kvm::layout::kBuiltinParams from the GuestConfig. All derived
 * numbers are computed by the VMM so the guest does no division it could get wrong.
 * Fixed-width fields only: this is a layout both compilers must agree on. */
#ifndef COLO_KVM_BUILTIN_GUEST_PARAMS_H
#define COLO_KVM_BUILTIN_GUEST_PARAMS_H

#include <stdint.h>

#define COLO_BUILTIN_PARAMS_MAGIC 0x534d524150474243ull /* "CBGPARMS" */
#define COLO_BUILTIN_PARAMS_VERSION 4u

/* The vCPU has a TSC-deadline LAPIC timer: halt between intervals (else spin on rdtsc). */
#define COLO_BUILTIN_FLAG_IDLE_ON_TIMER 0x1u

struct colo_builtin_params {
    uint64_t magic;
    uint32_t version;
    uint16_t console_port;           /* COM1 THR: 0x3f8 */
    uint16_t flags;                  /* COLO_BUILTIN_FLAG_* */
    uint64_t seed;                   /* PRNG seed: page choice and page contents */
    uint64_t working_set_gpa;        /* first byte of the working set (page aligned) */
    uint64_t working_set_pages;
    uint64_t generation_table_gpa;   /* uint32_t per working-set page: times it was written */
    uint64_t writes_per_interval;    /* dirty_rate * print_interval_ms / 1000 */
    uint64_t verify_per_interval;    /* pages checked per interval (whole set every few s) */
    uint64_t interval_tsc;           /* TSC ticks per interval: tsc_khz * print_interval_ms */
    uint64_t tsc_khz;                /* KVM_GET_TSC_KHZ */
    /* Network (the config's first vif; kvm/builtin_guest/net.c). nic_mmio_gpa 0: no NIC, and
     * the guest runs exactly as without these fields. */
    uint64_t nic_mmio_gpa;           /* the NIC's virtio-mmio register page */
    uint64_t ioapic_gpa;             /* where the NIC's interrupt is routed (IOAPIC pin nic_gsi) */
    uint64_t net_area_gpa;           /* rings and buffers, COLO_BUILTIN_NET_AREA_BYTES, page aligned */
    uint32_t nic_gsi;
    uint8_t mac[6];                  /* used when the device does not offer VIRTIO_NET_F_MAC */
    uint8_t ipv4[4];                 /* network byte order */
    uint8_t ipv4_prefix;
    uint8_t reserved[1];
    /* Disk workload (the config's first disk; kvm/builtin_guest/disk.c). disk_mmio_gpa 0: no
     * disk, and the guest runs exactly as without these fields. */
    uint64_t disk_mmio_gpa;          /* the disk's virtio-mmio register page */
    uint64_t disk_area_gpa;          /* its ring and buffers, COLO_BUILTIN_DISK_AREA_BYTES, page aligned */
    uint64_t disk_generation_gpa;    /* uint64_t per block: times it was written (zero at boot) */
    uint64_t disk_table_blocks;      /* entries the generation table has room for */
    uint64_t disk_blocks;            /* blocks used; 0: min(disk size / 4096, disk_table_blocks) */
    uint64_t disk_rate_x1000;        /* blocks written per interval, times 1000: disk_rate * print_interval_ms */
    uint64_t disk_writes;            /* stop writing after this many; 0: never */
    uint64_t disk_flush_every;       /* a FLUSH after every N writes; 0: never */
    uint64_t disk_sweep_intervals;   /* a full verification pass takes this many intervals */
    /* Where the guest keeps its own stall statistics (struct colo_builtin_stats); 0: none. */
    uint64_t stats_gpa;
};

/* The guest's own view of its stalls, for the VMM to report (status: guest_stall_*): every gap
 * its busy loops see between two pages written or checked, and how late it wakes after an idle
 * wait, in TSC ticks, as a histogram of COLO_BUILTIN_STALL_BUCKETS buckets, 4 per power of two:
 * bucket 4*L + S (L >= 2) holds gaps in [(4+S) << (L-2), (5+S) << (L-2)), buckets 0..7 gaps below 8.
 * A pause of the VM (a checkpoint), a slow exit or a descheduled vCPU thread all show here as the
 * guest itself would feel them; the VMM only reads it, the guest only writes it. */
#define COLO_BUILTIN_STATS_MAGIC 0x5354415453474243ull /* "CBGSTATS" */
#define COLO_BUILTIN_STALL_BUCKETS 256u

struct colo_builtin_stats {
    uint64_t magic;
    uint64_t max_gap_tsc;                          /* the longest since the guest started */
    uint64_t histogram[COLO_BUILTIN_STALL_BUCKETS];
};

/* The network area: two virtqueues of COLO_BUILTIN_NET_QUEUE_SIZE entries (descriptor table,
 * driver ring and device ring a page each), then one buffer per descriptor. Receive buffers
 * hold a whole frame plus the 12-byte virtio_net_hdr (no VIRTIO_NET_F_MRG_RXBUF). */
#define COLO_BUILTIN_NET_QUEUE_SIZE 64u
#define COLO_BUILTIN_NET_BUFFER_BYTES 2048u
#define COLO_BUILTIN_NET_RX_RINGS 0x0000u   /* desc, avail, used: +0, +0x1000, +0x2000 */
#define COLO_BUILTIN_NET_TX_RINGS 0x3000u
#define COLO_BUILTIN_NET_RX_BUFFERS 0x8000u
#define COLO_BUILTIN_NET_TX_BUFFERS (COLO_BUILTIN_NET_RX_BUFFERS + COLO_BUILTIN_NET_QUEUE_SIZE * COLO_BUILTIN_NET_BUFFER_BYTES)
#define COLO_BUILTIN_NET_AREA_BYTES (COLO_BUILTIN_NET_TX_BUFFERS + COLO_BUILTIN_NET_QUEUE_SIZE * COLO_BUILTIN_NET_BUFFER_BYTES)

/* The disk area: one virtqueue of COLO_BUILTIN_DISK_QUEUE_SIZE entries (descriptor table,
 * driver ring and device ring a page each), the request header and status byte, and a write and
 * a read buffer of one 4 KiB block each. */
#define COLO_BUILTIN_DISK_QUEUE_SIZE 16u
#define COLO_BUILTIN_DISK_RINGS 0x0000u   /* desc, avail, used: +0, +0x1000, +0x2000 */
#define COLO_BUILTIN_DISK_HEADER 0x3000u  /* virtio_blk_req header (16 bytes); status byte at +0x100 */
#define COLO_BUILTIN_DISK_WRITE_BUFFER 0x4000u
#define COLO_BUILTIN_DISK_READ_BUFFER 0x5000u
#define COLO_BUILTIN_DISK_AREA_BYTES 0x6000u

#endif
