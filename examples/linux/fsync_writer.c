/* The Linux example guest's disk workload, and its checker.
 *
 *   fsync_writer DIR             writes DIR/f000001, f000002, ... (8 KiB each, self-describing
 *                                content), fsync()s each file and then DIR, and only then prints
 *                                `fsynced N` on stdout: a line a host sees released promises that
 *                                file N is on the disk the guest's survivor runs on.
 *   fsync_writer --check DIR N   every file 1..N must be there and intact; prints `checked N
 *                                files ok`, or `BAD fNNNNNN: why` lines and exits 1.
 *
 * The content of file N is its first line `colo-fsync-file N`, then bytes that depend only on N
 * and their position, so a torn, stale or foreign file is told from the right one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES 8192

static void content(unsigned long n, unsigned char *out) {
    int head = snprintf((char *)out, FILE_BYTES, "colo-fsync-file %lu\n", n);
    for (size_t k = (size_t)head; k < FILE_BYTES; ++k) out[k] = (unsigned char)((n * 131u + k * 7u + (k >> 8)) & 0xffu);
}

static void path_of(const char *dir, unsigned long n, char *out, size_t size) {
    snprintf(out, size, "%s/f%06lu", dir, n);
}

static int write_all(int fd, const unsigned char *p, size_t left) {
    while (left > 0) {
        ssize_t done = write(fd, p, left);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) return -1;
        p += done;
        left -= (size_t)done;
    }
    return 0;
}

static int writer(const char *dir) {
    unsigned char data[FILE_BYTES];
    char path[4096];
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dirfd < 0) {
        printf("fsync_writer: open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    const struct timespec pause = {0, 40 * 1000 * 1000};
    for (unsigned long n = 1;; ++n) {
        path_of(dir, n, path, sizeof path);
        content(n, data);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write_all(fd, data, sizeof data) != 0 || fsync(fd) != 0 || close(fd) != 0 || fsync(dirfd) != 0) {
            printf("fsync_writer: file %lu: %s\n", n, strerror(errno));
            fflush(stdout);
            return 1;
        }
        printf("fsynced %lu\n", n);
        fflush(stdout);
        nanosleep(&pause, NULL);
    }
}

static int check(const char *dir, unsigned long count) {
    unsigned char want[FILE_BYTES], got[FILE_BYTES + 1];
    char path[4096];
    int bad = 0;
    for (unsigned long n = 1; n <= count; ++n) {
        path_of(dir, n, path, sizeof path);
        content(n, want);
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            printf("BAD f%06lu: %s\n", n, strerror(errno));
            ++bad;
            continue;
        }
        size_t have = 0;
        for (;;) {
            ssize_t r = read(fd, got + have, sizeof got - have);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            have += (size_t)r;
            if (have == sizeof got) break;
        }
        close(fd);
        if (have != FILE_BYTES) {
            printf("BAD f%06lu: %zu bytes, expected %d\n", n, have, FILE_BYTES);
            ++bad;
        } else if (memcmp(want, got, FILE_BYTES) != 0) {
            printf("BAD f%06lu: content differs\n", n);
            ++bad;
        }
    }
    if (bad) return 1;
    printf("checked %lu files ok\n", count);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2) return writer(argv[1]);
    if (argc == 4 && strcmp(argv[1], "--check") == 0) return check(argv[2], strtoul(argv[3], NULL, 10));
    fprintf(stderr, "usage: fsync_writer DIR | fsync_writer --check DIR N\n");
    return 2;
}
