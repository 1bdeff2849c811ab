/* The nested Xen tier's guest workload, PID 2 of the PVH domU: fills a buffer with 0x5a, then
 * every interval stamps one byte in each of `pages` consecutive pages (round robin), so dom0
 * sees a steady dirty rate and can recognise the pages it reads. Prints "tick N" to the console
 * once a second, which the backend's console reader must deliver.
 *   domu_dirtier [buffer_mib=16] [pages=256] [interval_ms=100]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 16;
    const size_t pages = argc > 2 ? (size_t)atoi(argv[2]) : 256;
    const int interval_ms = argc > 3 ? atoi(argv[3]) : 100;
    const size_t total = mib * 256;
    volatile unsigned char *buffer = malloc(total * 4096);
    if (buffer == NULL || total == 0)
        return 1;
    memset((void *)buffer, 0x5a, total * 4096);
    printf("dirtier: %zu MiB, %zu pages every %d ms\n", mib, pages, interval_ms);
    fflush(stdout);
    size_t next = 0;
    unsigned long pass = 0, tick = 0;
    time_t last = time(NULL);
    for (;;) {
        ++pass;
        for (size_t i = 0; i < pages; i++) {
            buffer[next * 4096] = (unsigned char)pass;
            next = (next + 1) % total;
        }
        if (time(NULL) != last) {
            last = time(NULL);
            printf("tick %lu\n", ++tick);
            fflush(stdout);
        }
        usleep(interval_ms * 1000);
    }
}
