/* The nested Xen tier's guest workload, PID 2 of the PVH domU. Fills a buffer with 0x5a, then
 * every interval stamps `pages` consecutive pages (round robin), so dom0 sees a steady dirty rate
 * and can recognise the pages it reads. Prints "seq=N" to the console every print interval, with
 * N counting up by one, so a replicated guest's console can be checked for lost or repeated lines.
 *
 * It checks its own memory as it goes, like the KVM built-in guest: each page carries a stamp
 * (page index << 32 | pass) at offset 0 and again at offset 2048, and a separate table (also guest
 * memory) remembers the pass that last stamped each page. Before a page is stamped again both
 * copies must equal what the table says; if not, a checkpoint restored a page that does not belong
 * with the rest of the guest (a lost dirty page), and it prints "CORRUPT page=I ...".
 *   domu_dirtier [buffer_mib=16] [pages=256] [interval_ms=100] [print_ms=250]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILL 0x5a5a5a5a5a5a5a5aull

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    const size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 16;
    const size_t pages = argc > 2 ? (size_t)atoi(argv[2]) : 256;
    const int interval_ms = argc > 3 ? atoi(argv[3]) : 100;
    const int print_ms = argc > 4 ? atoi(argv[4]) : 250;
    const size_t total = mib * 256;
    volatile unsigned char *buffer = malloc(total * 4096);
    volatile uint32_t *last_pass = calloc(total, sizeof *last_pass); /* 0: never stamped */
    if (buffer == NULL || last_pass == NULL || total == 0)
        return 1;
    memset((void *)buffer, 0x5a, total * 4096);
    printf("dirtier: %zu MiB, %zu pages every %d ms, seq every %d ms\n", mib, pages, interval_ms, print_ms);
    fflush(stdout);
    size_t next = 0;
    uint32_t pass = 0;
    unsigned long seq = 0, corrupt = 0;
    uint64_t next_print = now_ms() + (uint64_t)print_ms;
    for (;;) {
        ++pass;
        for (size_t i = 0; i < pages; i++) {
            volatile uint64_t *first = (volatile uint64_t *)(buffer + next * 4096);
            volatile uint64_t *second = (volatile uint64_t *)(buffer + next * 4096 + 2048);
            const uint64_t want = last_pass[next] == 0 ? FILL : ((uint64_t)next << 32 | last_pass[next]);
            if (*first != want || *second != want) {
                if (++corrupt <= 20)
                    printf("CORRUPT page=%zu want=%llx got=%llx,%llx\n", next, (unsigned long long)want,
                           (unsigned long long)*first, (unsigned long long)*second);
            }
            const uint64_t stamp = (uint64_t)next << 32 | pass;
            *first = stamp;
            *second = stamp;
            last_pass[next] = pass;
            next = (next + 1) % total;
        }
        if (now_ms() >= next_print) {
            next_print += (uint64_t)print_ms;
            printf("seq=%lu\n", ++seq);
            fflush(stdout);
        }
        usleep(interval_ms * 1000);
    }
}
