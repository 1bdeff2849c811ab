/* The built-in test guest: a freestanding ring-3 program that dirties memory at a set rate and
 * proves on the console that nothing was lost (see kvm/builtin_guest/params.h for its inputs).
 *
 * Every interval N it
 *   1. writes params->writes_per_interval whole pages, chosen by a PRNG seeded with `seed`; a
 *      page's content is a function of (seed, page index, generation), where the generation is
 *      how often that page has been written (kept in the generation table);
 *   2. verifies a slice of the working set against that function (the whole set every few
 *      seconds) and prints `CORRUPT page=P gen=G` for each page that does not match;
 *   3. prints `seq=N writes=W check=HEX` (W: pages written so far, HEX: a hash of every
 *      (page, generation) written so far), which depends only on the seed and N;
 *   4. idles until the interval's deadline (TSC), halted on the LAPIC timer.
 * With a NIC (params->nic_mmio_gpa) it also answers the network (net.c) between and during
 * intervals; that changes nothing it prints. With a disk (params->disk_mmio_gpa) it also runs
 * the disk workload (disk.c) each interval, before the seq line, which adds disk-* lines.
 * So a primary and a secondary running it from the same state print the same bytes, and a
 * restore that lost or repeated work shows up as a gap, a repeat or a different check value.
 *
 * Console output goes to COM1's THR with no LSR polling (the VMM's UART never makes us wait),
 * one line at a time through the ring-0 console call (image_header.h says why). */
#include <stddef.h>
#include <stdint.h>

#include "kvm/builtin_guest/console.h"
#include "kvm/builtin_guest/decimal.h"
#include "kvm/builtin_guest/disk.h"
#include "kvm/builtin_guest/image_header.h"
#include "kvm/builtin_guest/mix.h"
#include "kvm/builtin_guest/net.h"
#include "kvm/builtin_guest/params.h"

#define PAGE_WORDS 512u

static inline void outb(uint16_t port, uint8_t value) {
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t mix(uint64_t x) { return colo_mix64(x); }

/* Word i of a page is base + i * odd constant: one multiply-add per word to fill or check. */
static uint64_t page_base(uint64_t seed, uint64_t page, uint32_t generation) {
    return mix(seed ^ mix(page * 0x9e3779b97f4a7c15ull + generation));
}

#define WORD_STEP 0xd6e8feb86659fd93ull

/* Read by the ring-0 console call in entry.S. */
uint16_t colo_console_port;

/* The line being built; flush() hands it to the console call. Ring 0 (fault_report) writes
 * bytes straight out instead. */
static char line[256];
static uint32_t line_length;
static int in_ring0;

static void flush(void) {
    if (line_length == 0) return;
    /* The guest call: int3, see image_header.h. */
    __asm__ volatile("int3" : : "a"((uint64_t)COLO_BUILTIN_CALL_CONSOLE), "D"(line), "S"((uint64_t)line_length)
                     : "memory");
    line_length = 0;
}

static void put_char(char c) {
    if (in_ring0) {
        outb(colo_console_port, (uint8_t)c);
        return;
    }
    line[line_length++] = c;
    if (c == '\n' || line_length == sizeof line) flush();
}

static void put_string(const char* s) {
    while (*s) put_char(*s++);
}

static void put_decimal(uint64_t value) {
    char digits[20];
    const uint32_t n = format_decimal(digits, value);
    for (uint32_t i = 0; i < n; ++i) put_char(digits[i]);
}

static void put_hex(uint64_t value) {
    static const char hex[] = "0123456789abcdef";
    for (int shift = 60; shift >= 0; shift -= 4) put_char(hex[(value >> shift) & 0xf]);
}

/* The console for disk.c (console.h); guest.c's own calls stay static and inlined. */
void console_char(char c) { put_char(c); }
void console_string(const char* s) { put_string(s); }
void console_decimal(uint64_t value) { put_decimal(value); }
void console_hex(uint64_t value) { put_hex(value); }

static void timer_setup(void) {
    __asm__ volatile("int3" : : "a"((uint64_t)COLO_BUILTIN_CALL_TIMER_SETUP) : "memory");
}

static int idle_on_timer;
static int net_up;

/* Idles (ring 0 halts on the LAPIC timer) until the TSC reaches deadline; without a
 * TSC-deadline timer, spins. With a NIC, every interrupt (the NIC's or the timer's) brings
 * us back to answer what arrived, and the spin polls the NIC's rings. */
static void wait_until(uint64_t deadline) {
    int interrupted = 0;
    for (;;) {
        if (net_up) net_poll(interrupted);
        if (rdtsc() >= deadline) return;
        if (idle_on_timer && net_up) {
            __asm__ volatile("int3" : : "a"((uint64_t)COLO_BUILTIN_CALL_WAIT_EVENT), "D"(deadline) : "memory");
            interrupted = 1;
        } else if (idle_on_timer) {
            __asm__ volatile("int3" : : "a"((uint64_t)COLO_BUILTIN_CALL_WAIT), "D"(deadline) : "memory");
        } else {
            __asm__ volatile("pause");
        }
    }
}

/* The guest's own stalls (params.h, struct colo_builtin_stats). */
static struct colo_builtin_stats* stats;
static uint64_t last_tick;

static void stall_record(uint64_t gap) {
    uint32_t bucket = (uint32_t)gap;
    if (gap >= 8) {
        const uint32_t log = 63u - (uint32_t)__builtin_clzll(gap);
        bucket = 4u * log + (uint32_t)((gap >> (log - 2u)) & 3u);
    }
    if (bucket >= COLO_BUILTIN_STALL_BUCKETS) bucket = COLO_BUILTIN_STALL_BUCKETS - 1u;
    ++stats->histogram[bucket];
    if (gap > stats->max_gap_tsc) stats->max_gap_tsc = gap;
}

/* Between two steps of a busy loop: the time since the last is a gap the guest saw. */
static void stall_tick(void) {
    const uint64_t now = rdtsc();
    if (stats) stall_record(now - last_tick);
    last_tick = now;
}

static void fill_page(uint64_t* words, uint64_t base) {
    for (uint32_t i = 0; i < PAGE_WORDS; ++i) words[i] = base + i * WORD_STEP;
}

/* A page never written (generation 0) must still be all zero, as the VMM created it. */
static int page_matches(const uint64_t* words, uint64_t seed, uint64_t page, uint32_t generation) {
    if (generation == 0) {
        for (uint32_t i = 0; i < PAGE_WORDS; ++i)
            if (words[i] != 0) return 0;
        return 1;
    }
    const uint64_t base = page_base(seed, page, generation);
    for (uint32_t i = 0; i < PAGE_WORDS; ++i)
        if (words[i] != base + i * WORD_STEP) return 0;
    return 1;
}

void guest_main(const struct colo_builtin_params* params);

void guest_main(const struct colo_builtin_params* params) {
    colo_console_port = params->console_port ? params->console_port : 0x3f8;
    if (params->magic != COLO_BUILTIN_PARAMS_MAGIC || params->version != COLO_BUILTIN_PARAMS_VERSION ||
        params->working_set_pages == 0) {
        put_string("BADPARAMS\n");
        for (;;) __asm__ volatile("pause");
    }
    const uint64_t seed = params->seed;
    const uint64_t pages = params->working_set_pages;
    uint64_t* const working_set = (uint64_t*)(uintptr_t)params->working_set_gpa;
    uint32_t* const generations = (uint32_t*)(uintptr_t)params->generation_table_gpa;

    uint64_t rng = seed;
    uint64_t writes = 0;
    uint64_t check = mix(seed);
    uint64_t verify_cursor = 0;
    idle_on_timer = (params->flags & COLO_BUILTIN_FLAG_IDLE_ON_TIMER) != 0;
    if (idle_on_timer) timer_setup();
    if (params->nic_mmio_gpa != 0) {
        const char* failed = net_start(params, idle_on_timer);
        if (failed) {
            put_string("NETERR ");
            put_string(failed);
            put_char('\n');
        }
        net_up = failed == 0;
    }
    if (params->disk_mmio_gpa != 0) {
        const char* failed = disk_start(params);
        if (failed) {
            put_string("DISKERR ");
            put_string(failed);
            put_char('\n');
        }
    }
    if (params->stats_gpa != 0) {
        stats = (struct colo_builtin_stats*)(uintptr_t)params->stats_gpa;
        stats->magic = COLO_BUILTIN_STATS_MAGIC;
    }
    const uint64_t start = rdtsc();
    last_tick = start;

    for (uint64_t seq = 0;; ++seq) {
        for (uint64_t w = 0; w < params->writes_per_interval; ++w) {
            rng += 0x9e3779b97f4a7c15ull; /* splitmix64 */
            const uint64_t page = mix(rng) % pages;
            const uint32_t generation = ++generations[page];
            fill_page(working_set + page * PAGE_WORDS, page_base(seed, page, generation));
            check = mix(check ^ (page << 32) ^ generation);
            ++writes;
            stall_tick();
            if (net_up && (w & 31) == 31) net_poll(0); /* a memory read unless frames wait */
        }
        for (uint64_t v = 0; v < params->verify_per_interval; ++v) {
            const uint64_t page = verify_cursor;
            verify_cursor = verify_cursor + 1 == pages ? 0 : verify_cursor + 1;
            const uint32_t generation = generations[page];
            if (!page_matches(working_set + page * PAGE_WORDS, seed, page, generation)) {
                put_string("CORRUPT page=");
                put_decimal(page);
                put_string(" gen=");
                put_decimal(generation);
                put_char('\n');
            }
            stall_tick();
            if (net_up && (v & 31) == 31) net_poll(0);
        }
        disk_interval();
        put_string("seq=");
        put_decimal(seq);
        put_string(" writes=");
        put_decimal(writes);
        put_string(" check=");
        put_hex(check);
        put_char('\n');

        const uint64_t deadline = start + (seq + 1) * params->interval_tsc;
        /* The disk's requests and the console line are steps of the loop too (and where a pause
         * most often lands: the VMM stops a vCPU at its exits). */
        stall_tick();
        const uint64_t idle_from = last_tick;
        wait_until(deadline);
        /* Idle time is no stall, waking late is: the guest wanted to run from the deadline on (or
         * from when it began to wait, when it is catching up and the deadline has passed). */
        last_tick = rdtsc();
        const uint64_t wanted = deadline > idle_from ? deadline : idle_from;
        if (stats && last_tick > wanted) stall_record(last_tick - wanted);
    }
}

/* Ring 0, from entry.S's exception stubs: report and stop this vCPU for good. */
void fault_report(uint64_t vector, uint64_t rip, uint64_t error_code);

void fault_report(uint64_t vector, uint64_t rip, uint64_t error_code) {
    (void)error_code;
    in_ring0 = 1;
    if (colo_console_port == 0) colo_console_port = 0x3f8;
    put_string("FAULT vector=");
    put_decimal(vector);
    put_string(" rip=");
    put_hex(rip);
    put_char('\n');
}
