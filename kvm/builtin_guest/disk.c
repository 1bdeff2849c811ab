/* The built-in guest's disk workload: a polled virtio-blk driver (virtio 1.x over virtio-mmio
 * version 2, one request queue, one request at a time; the device serves a request within the
 * QueueNotify write, so the driver only checks the used ring after it) and a workload on the
 * first disk that
 *   - writes params->disk_rate_x1000 / 1000 blocks per interval (fractions carry over), each a
 *     block b chosen by a PRNG from the seed, of generation ++generation[b], its content a
 *     function of (seed, b, generation) (disk_pattern.h); a FLUSH after every disk_flush_every
 *     writes; stops after disk_writes writes (0: never);
 *   - after each write reads back another random block and checks it against generation[];
 *   - checks disk_blocks / disk_sweep_intervals blocks per interval, so all of them every few
 *     seconds, and after each full pass prints
 *         disk-check pass=P blocks=B written=W digest=HEX
 *     and, once disk_writes is reached and a pass that began after it was clean, once
 *         disk-done writes=W digest=HEX
 *     (HEX: 16 digits, disk_pattern.h's digest of generation[]);
 *   - prints `disk CORRUPT block=B want=G got=H [torn|foreign|garbled]` for a block that does
 *     not hold generation[B], and `DISKERR ...` for a request the device failed. (Every disk line
 *     starts with "disk", so a reader can tell them from the memory workload's lines.)
 * generation[] (params->disk_generation_gpa) and everything here live in guest memory, which
 * the checkpoints replicate: a guest restored from one expects exactly the disk of that moment.
 * The output depends only on the guest's memory and disk, never on time. */
#include "kvm/builtin_guest/disk.h"

#include <stddef.h>

#include "kvm/builtin_guest/console.h"
#include "kvm/builtin_guest/disk_pattern.h"
#include "kvm/builtin_guest/virtio_mmio.h"

#define VIRTIO_ID_BLOCK 2u
#define FEATURE_BLK_RO (1u << 5)
#define FEATURE_BLK_FLUSH (1u << 9)
#define BLK_T_IN 0u
#define BLK_T_OUT 1u
#define BLK_T_FLUSH 4u
#define BLK_S_OK 0u
#define RING_PAGE 0x1000u
#define STATUS_OFFSET 0x100u
#define MAX_BLOCKS_DEFAULT 1024u

struct blk_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static volatile uint8_t* regs;
static struct virtq_desc* desc;
static struct virtq_avail* avail;
static volatile struct virtq_used* used;
static uint16_t queue_size, avail_idx;
static struct blk_header* header;
static volatile uint8_t* status_byte;
static uint8_t* write_buffer;
static uint8_t* read_buffer;
static uint64_t* generations;
static int up, has_flush;
static uint64_t seed, blocks, writes_total, flush_every, rate_x1000, verify_per_interval;
static uint64_t rng, due_x1000, writes, passes, cursor, pass_problems;
static int pass_after_done, done_printed;

static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

/* One request, served by the time QueueNotify returns. Returns the device's status byte, or
 * 0x100 if the device stopped (it wants a reset: the queue is no longer usable). */
static uint32_t request(uint32_t type, uint64_t sector, uint8_t* buffer, uint32_t length, int device_writes) {
    header->type = type;
    header->reserved = 0;
    header->sector = sector;
    *status_byte = 0xff;
    desc[0].addr = (uint64_t)(uintptr_t)header;
    desc[0].len = sizeof *header;
    desc[0].flags = DESC_F_NEXT;
    desc[0].next = length ? 1 : 2;
    desc[1].addr = (uint64_t)(uintptr_t)buffer;
    desc[1].len = length;
    desc[1].flags = (uint16_t)(DESC_F_NEXT | (device_writes ? DESC_F_WRITE : 0));
    desc[1].next = 2;
    desc[2].addr = (uint64_t)(uintptr_t)status_byte;
    desc[2].len = 1;
    desc[2].flags = DESC_F_WRITE;
    desc[2].next = 0;
    avail->ring[avail_idx & (queue_size - 1)] = 0;
    barrier();
    ++avail_idx;
    avail->idx = avail_idx;
    barrier();
    vmmio_write(regs, MMIO_QUEUE_NOTIFY, 0);
    while (used->idx != avail_idx) {
        if (vmmio_read(regs, MMIO_STATUS) & STATUS_NEEDS_RESET) {
            up = 0;
            console_string("DISKERR the disk needs a reset; workload stopped\n");
            return 0x100;
        }
        __asm__ volatile("pause");
    }
    barrier();
    return *status_byte;
}

static void request_failed(const char* what, uint64_t block, uint32_t status) {
    console_string("DISKERR ");
    console_string(what);
    console_string(" block=");
    console_decimal(block);
    console_string(" status=");
    console_decimal(status);
    console_char('\n');
}

static void check_block(uint64_t block) {
    const uint32_t status = request(BLK_T_IN, block * COLO_DISK_SECTORS_PER_BLOCK, read_buffer, COLO_DISK_BLOCK_BYTES, 1);
    if (status != BLK_S_OK) {
        if (up) request_failed("read", block, status);
        ++pass_problems;
        return;
    }
    uint64_t got = 0;
    const enum colo_disk_verdict verdict = colo_disk_check(read_buffer, seed, block, &got);
    if (verdict == COLO_DISK_OK && got == generations[block]) return;
    ++pass_problems;
    console_string("disk CORRUPT block=");
    console_decimal(block);
    console_string(" want=");
    console_decimal(generations[block]);
    console_string(" got=");
    console_decimal(got);
    if (verdict == COLO_DISK_TORN) console_string(" torn");
    if (verdict == COLO_DISK_FOREIGN) console_string(" foreign");
    if (verdict == COLO_DISK_GARBLED) console_string(" garbled");
    console_char('\n');
}

static uint64_t next_random(void) {
    rng += 0x9e3779b97f4a7c15ull; /* splitmix64 */
    return colo_disk_mix(rng);
}

static void write_one(void) {
    const uint64_t block = next_random() % blocks;
    const uint64_t generation = ++generations[block];
    colo_disk_fill(write_buffer, seed, block, generation);
    const uint32_t status = request(BLK_T_OUT, block * COLO_DISK_SECTORS_PER_BLOCK, write_buffer, COLO_DISK_BLOCK_BYTES, 0);
    if (!up) return;
    if (status != BLK_S_OK) request_failed("write", block, status);
    ++writes;
    if (has_flush && flush_every != 0 && writes % flush_every == 0) {
        const uint32_t flushed = request(BLK_T_FLUSH, 0, 0, 0, 0);
        if (!up) return;
        if (flushed != BLK_S_OK) request_failed("flush", block, flushed);
    }
    uint64_t other = next_random() % blocks;
    if (other == block && blocks > 1) other = other + 1 == blocks ? 0 : other + 1;
    check_block(other);
}

static uint64_t digest(void) {
    uint64_t h = COLO_DISK_FNV_OFFSET;
    for (uint64_t b = 0; b < blocks; ++b) h = colo_disk_digest_step(h, b, generations[b]);
    return h;
}

static void end_of_pass(void) {
    ++passes;
    const uint64_t h = digest();
    console_string("disk-check pass=");
    console_decimal(passes);
    console_string(" blocks=");
    console_decimal(blocks);
    console_string(" written=");
    console_decimal(writes);
    console_string(" digest=");
    console_hex(h);
    console_char('\n');
    const int finished = writes_total != 0 && writes >= writes_total;
    if (finished && pass_after_done && pass_problems == 0 && !done_printed) {
        done_printed = 1;
        console_string("disk-done writes=");
        console_decimal(writes);
        console_string(" digest=");
        console_hex(h);
        console_char('\n');
    }
    pass_after_done = finished;
    pass_problems = 0;
}

const char* disk_start(const struct colo_builtin_params* params) {
    regs = (volatile uint8_t*)(uintptr_t)params->disk_mmio_gpa;
    uint32_t offered_low = 0;
    const char* refused = vmmio_negotiate(regs, VIRTIO_ID_BLOCK, "device is not a disk", FEATURE_BLK_FLUSH, &offered_low);
    if (refused) return refused;
    if (offered_low & FEATURE_BLK_RO) {
        vmmio_write(regs, MMIO_STATUS, STATUS_FAILED);
        return "the disk is read-only (the workload writes)";
    }
    has_flush = (offered_low & FEATURE_BLK_FLUSH) != 0;
    vmmio_write(regs, MMIO_QUEUE_SEL, 0);
    const uint32_t max = vmmio_read(regs, MMIO_QUEUE_NUM_MAX);
    if (max == 0 || vmmio_read(regs, MMIO_QUEUE_READY) != 0) {
        vmmio_write(regs, MMIO_STATUS, STATUS_FAILED);
        return "request queue missing or live after reset";
    }
    uint32_t size = COLO_BUILTIN_DISK_QUEUE_SIZE;
    while (size > max) size >>= 1;
    const uint64_t area = params->disk_area_gpa;
    desc = (struct virtq_desc*)(uintptr_t)(area + COLO_BUILTIN_DISK_RINGS);
    avail = (struct virtq_avail*)(uintptr_t)(area + COLO_BUILTIN_DISK_RINGS + RING_PAGE);
    used = (volatile struct virtq_used*)(uintptr_t)(area + COLO_BUILTIN_DISK_RINGS + 2 * RING_PAGE);
    header = (struct blk_header*)(uintptr_t)(area + COLO_BUILTIN_DISK_HEADER);
    status_byte = (volatile uint8_t*)(uintptr_t)(area + COLO_BUILTIN_DISK_HEADER + STATUS_OFFSET);
    write_buffer = (uint8_t*)(uintptr_t)(area + COLO_BUILTIN_DISK_WRITE_BUFFER);
    read_buffer = (uint8_t*)(uintptr_t)(area + COLO_BUILTIN_DISK_READ_BUFFER);
    queue_size = (uint16_t)size;
    avail_idx = 0;
    avail->flags = AVAIL_F_NO_INTERRUPT; /* polled */
    avail->idx = 0;
    vmmio_write(regs, MMIO_QUEUE_NUM, size);
    vmmio_write64(regs, MMIO_QUEUE_DESC, (uint64_t)(uintptr_t)desc);
    vmmio_write64(regs, MMIO_QUEUE_DRIVER, (uint64_t)(uintptr_t)avail);
    vmmio_write64(regs, MMIO_QUEUE_DEVICE, (uint64_t)(uintptr_t)used);
    vmmio_write(regs, MMIO_QUEUE_READY, 1);
    vmmio_write(regs, MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    if (vmmio_read(regs, MMIO_STATUS) & STATUS_NEEDS_RESET) return "the device refused the queue";

    const uint64_t capacity = (uint64_t)vmmio_read(regs, MMIO_CONFIG) | (uint64_t)vmmio_read(regs, MMIO_CONFIG + 4) << 32;
    const uint64_t disk_blocks = capacity / COLO_DISK_SECTORS_PER_BLOCK;
    blocks = params->disk_blocks;
    if (blocks == 0) blocks = disk_blocks < params->disk_table_blocks ? disk_blocks : params->disk_table_blocks;
    if (blocks == 0) return "the disk is smaller than one 4 KiB block";
    if (blocks > disk_blocks) return "disk_blocks is larger than the disk";
    if (blocks > params->disk_table_blocks) return "disk_blocks is larger than the generation table";

    seed = params->seed;
    rng = seed ^ 0x6469736b6469736bull; /* "diskdisk": its own sequence, not the memory workload's */
    generations = (uint64_t*)(uintptr_t)params->disk_generation_gpa;
    writes_total = params->disk_writes;
    flush_every = params->disk_flush_every;
    rate_x1000 = params->disk_rate_x1000;
    const uint64_t sweep = params->disk_sweep_intervals ? params->disk_sweep_intervals : 1;
    verify_per_interval = (blocks + sweep - 1) / sweep;
    up = 1;
    return 0;
}

void disk_interval(void) {
    if (!up) return;
    due_x1000 += rate_x1000;
    while (up && due_x1000 >= 1000) {
        due_x1000 -= 1000;
        if (writes_total != 0 && writes >= writes_total) {
            due_x1000 = 0;
            break;
        }
        write_one();
    }
    for (uint64_t v = 0; up && v < verify_per_interval; ++v) {
        check_block(cursor);
        if (++cursor == blocks) {
            cursor = 0;
            end_of_pass();
        }
    }
}
