/*
 * The Linux example guest's workload (runs as the initramfs's last process, output on the
 * console). It keeps a working set of pages whose contents it can always predict, rewrites some
 * of them every interval and verifies a slice of the whole set, so that a replica that lost or
 * tore a page shows it on its console:
 *
 *     colo-workload: start mib=16 interval_ms=200 rate=256 cpus=2
 *     seq=1 written=256 verified=512 check=0123456789abcdef
 *     CORRUPT page=17 gen=3 word=5 want=... got=...
 *
 * Parameters come from the kernel command line (so one initramfs serves every test):
 *     workload.mib=N        working set in MiB (default 16)
 *     workload.ms=N         interval between seq lines in milliseconds (default 200)
 *     workload.rate=N       pages rewritten per interval (default 256)
 *     workload.count=N      stop after N seq lines and power off (default 0: run forever)
 *     workload.secs=N       stop after N seconds of real time (cycle counter) since start: a
 *                           VMM that pauses the VM often still ends the run on time
 *     workload.corrupt_at=N at seq N, flip a bit behind the checker's back (proves it can fail)
 *     workload.hold=1       after the last seq line, stay up idle instead of powering off
 *                           (a bench reads the stall line, then ends the VM itself)
 * The same key=value words given as arguments override the command line (for a run on a host).
 *
 * Page p at generation g holds 512 words, word i = mix(p, g, i): nothing else in the guest
 * writes there, so any difference is corruption. A generation table in ordinary memory says what
 * each page should hold; the writer and the checker walk the set in different orders.
 *
 * The guest's own stalls: the loop reads the cycle counter (rdtsc) after every page it writes or
 * checks and around every sleep; the longest gap (beyond the sleep asked for) within each seq
 * interval is kept, in microseconds, and with workload.count or .secs set printed once, after the last seq
 * line:  `colo-workload: stall_us=S1,S2,...` (S1 for seq=1 ...). rdtsc, not CLOCK_MONOTONIC: a
 * VMM may stop kvmclock while it pauses the VM (QEMU does), so the guest's monotonic clock would
 * hide the pause, while the TSC runs on. The TSC rate is calibrated against CLOCK_MONOTONIC once,
 * at start. Printed only at the end because a replica compares the console output of both VMs
 * (COLO): a timing line mid-run would differ between them and force a checkpoint.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

enum { kPageBytes = 4096, kWords = kPageBytes / 8 };

static uint64_t mix(uint64_t page, uint64_t gen, uint64_t word) {
    /* splitmix64 of the triple: every word of every page at every generation differs. */
    uint64_t z = (page << 40) ^ (gen << 12) ^ word ^ 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned long param(const char *cmdline, const char *key, unsigned long fallback) {
    const char *at = cmdline;
    const size_t n = strlen(key);
    unsigned long value = fallback;
    while ((at = strstr(at, key)) != NULL) {
        if ((at == cmdline || at[-1] == ' ') && at[n] == '=') value = strtoul(at + n + 1, NULL, 10);
        at += n;
    }
    return value;
}

/* Console output: one write per line so lines from the kernel never split ours. */
static void say(const char *line) {
    size_t len = strlen(line), done = 0;
    while (done < len) {
        ssize_t w = write(1, line + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        done += (size_t)w;
    }
}

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static uint64_t now_ns(void);

/* TSC ticks per microsecond, over 100 ms of CLOCK_MONOTONIC (nothing pauses the VM this early). */
static double tsc_per_us(void) {
    const uint64_t t0 = now_ns(), c0 = rdtsc();
    const struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    const uint64_t t1 = now_ns(), c1 = rdtsc();
    return t1 > t0 ? (double)(c1 - c0) * 1000.0 / (double)(t1 - t0) : 1.0;
}

/* The longest gap the loop saw in the current seq interval, in TSC ticks. */
static uint64_t stall_last, stall_max;
static inline void stall_mark(uint64_t expected_ticks) {
    const uint64_t t = rdtsc(), gap = t - stall_last;
    if (gap > expected_ticks && gap - expected_ticks > stall_max) stall_max = gap - expected_ticks;
    stall_last = t;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    char cmdline[4096] = "";
    FILE *f = fopen("/proc/cmdline", "r");
    if (f) {
        if (!fgets(cmdline, sizeof cmdline, f)) cmdline[0] = '\0';
        fclose(f);
    }
    cmdline[strcspn(cmdline, "\n")] = '\0';
    for (int a = 1; a < argc; ++a) { /* later words win: param() takes the last match */
        strncat(cmdline, " ", sizeof cmdline - strlen(cmdline) - 1);
        strncat(cmdline, argv[a], sizeof cmdline - strlen(cmdline) - 1);
    }
    const unsigned long mib = param(cmdline, "workload.mib", 16);
    const unsigned long interval_ms = param(cmdline, "workload.ms", 200);
    const unsigned long rate = param(cmdline, "workload.rate", 256);
    const unsigned long count = param(cmdline, "workload.count", 0);
    const unsigned long secs = param(cmdline, "workload.secs", 0);
    const unsigned long corrupt_at = param(cmdline, "workload.corrupt_at", 0);
    const unsigned long hold = param(cmdline, "workload.hold", 0);
    const uint64_t pages = (uint64_t)mib << 8;
    char line[256];

    uint64_t *set = mmap(NULL, pages * kPageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *generation = calloc(pages, sizeof *generation);
    if (set == MAP_FAILED || generation == NULL || pages == 0) {
        snprintf(line, sizeof line, "colo-workload: cannot allocate %lu MiB\n", mib);
        say(line);
        return 1;
    }
    snprintf(line, sizeof line, "colo-workload: start mib=%lu interval_ms=%lu rate=%lu cpus=%ld\n", mib,
             interval_ms, rate, sysconf(_SC_NPROCESSORS_ONLN));
    say(line);

    /* Generation 0: every page written once, so every later check has something to compare. */
    for (uint64_t p = 0; p < pages; ++p)
        for (uint64_t i = 0; i < kWords; ++i) set[p * kWords + i] = mix(p, 0, i);

    const double ticks_per_us = tsc_per_us();
    /* Room for every seq line the run can have: a late loop does not catch up, so at most one
     * line per interval. */
    const unsigned long lines = count ? count : secs ? secs * 1000 / (interval_ms ? interval_ms : 1) + 1 : 0;
    uint32_t *stall_us = lines ? calloc(lines + 1, sizeof *stall_us) : NULL;
    const uint64_t end_tsc = secs ? rdtsc() + (uint64_t)((double)secs * 1e6 * ticks_per_us) : 0;
    unsigned long done = 0;
    uint64_t write_cursor = 0, check_cursor = 0, corrupt = 0;
    stall_last = rdtsc();
    const uint64_t check_per_interval = rate * 2 < pages ? rate * 2 : pages;
    uint64_t deadline = now_ns();
    for (unsigned long seq = 1; (count == 0 || seq <= count) && (!end_tsc || rdtsc() < end_tsc) && seq <= (lines ? lines : seq); ++seq) {
        /* Write: a stride walk (coprime with any power-of-two page count) so rewrites spread out. */
        for (unsigned long k = 0; k < rate; ++k) {
            write_cursor = (write_cursor + 40503) % pages;
            const uint64_t p = write_cursor, g = ++generation[p];
            for (uint64_t i = 0; i < kWords; ++i) set[p * kWords + i] = mix(p, g, i);
            stall_mark(0);
        }
        if (seq == corrupt_at) set[check_cursor * kWords + 7] ^= 1; /* the next page to be checked */
        /* Check: the next slice, in address order; the whole set is covered every few lines. */
        uint64_t check = 0;
        for (uint64_t k = 0; k < check_per_interval; ++k) {
            const uint64_t p = check_cursor;
            check_cursor = (check_cursor + 1) % pages;
            for (uint64_t i = 0; i < kWords; ++i) {
                const uint64_t want = mix(p, generation[p], i), got = set[p * kWords + i];
                if (got != want) {
                    if (corrupt++ < 20) {
                        snprintf(line, sizeof line, "CORRUPT page=%llu gen=%u word=%llu want=%016llx got=%016llx\n",
                                 (unsigned long long)p, generation[p], (unsigned long long)i,
                                 (unsigned long long)want, (unsigned long long)got);
                        say(line);
                    }
                    break;
                }
            }
            check = check * 1099511628211ull ^ set[p * kWords + (seq % kWords)];
            stall_mark(0);
        }
        snprintf(line, sizeof line, "seq=%lu written=%lu verified=%llu check=%016llx\n", seq, rate,
                 (unsigned long long)check_per_interval, (unsigned long long)check);
        say(line);

        deadline += (uint64_t)interval_ms * 1000000ull;
        const uint64_t t = now_ns();
        if (deadline > t) {
            struct timespec ts = {(time_t)((deadline - t) / 1000000000ull), (long)((deadline - t) % 1000000000ull)};
            stall_mark(0);
            nanosleep(&ts, NULL);
            stall_mark((uint64_t)((double)(deadline - t) / 1000.0 * ticks_per_us));
        } else {
            deadline = t; /* running late (slow guest): do not try to catch up in a burst */
        }
        if (stall_us) stall_us[seq] = (uint32_t)((double)stall_max / ticks_per_us);
        stall_max = 0;
        done = seq;
    }
    if (stall_us) { /* one line, at the end: see the header comment */
        const size_t size = 32 + done * 11;
        char *all = malloc(size);
        if (all) {
            size_t at = (size_t)snprintf(all, size, "colo-workload: stall_us=");
            for (unsigned long s = 1; s <= done; ++s)
                at += (size_t)snprintf(all + at, size - at, "%s%u", s > 1 ? "," : "", stall_us[s]);
            snprintf(all + at, size - at, "\n");
            say(all);
            free(all);
        }
    }
    snprintf(line, sizeof line, "colo-workload: done corrupt=%llu\n", (unsigned long long)corrupt);
    say(line);
    while (hold) pause(); /* the bench ends the VM */
    if (getpid() == 1) { /* as the guest's init: end the VM instead of panicking the kernel */
        sync();
        reboot(RB_POWER_OFF);
    }
    return corrupt == 0 ? 0 : 1;
}
