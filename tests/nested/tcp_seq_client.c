/*
 * The nested network test's client (runs in L1, next to colo-replicate): one TCP connection to
 * the example guest's tcp_seq_server (examples/linux/tcp_seq_server.c), streaming numbered lines
 * as fast as the acks come back, and checking every ack:
 *
 *     sends     seq=1 [padding]\n  seq=2 ...       at most --window lines unacknowledged
 *     expects   ack=1 total=1\n    ack=2 total=2\n  ...  exactly this, in this order
 *
 * A guest that lost or replayed part of the stream (ack=K total!=K), an ack lost or sent twice
 * (ack out of order), a reset (ECONNRESET: the client saw an RST) or the guest closing the
 * connection all end the run with a failure. Through a failover the connection must simply stall
 * and go on.
 *
 *     tcp_seq_client HOST PORT [--nonce] [--seconds S] [--pad BYTES] [--window LINES]
 *                    [--progress-ms MS] [--connect-seconds S]
 *
 *   --nonce           ask for replies that differ every time the guest computes them
 *                     ("seq=N nonce", answered "ack=N total=N nonce=H", H 1-16 hex digits from the
 *                     guest's clock): without them a replica that recomputes a reply the client
 *                     already has from the same input makes the same bytes, and output released
 *                     too early would go unnoticed (see tcp_seq_server.c)
 *   --seconds         stop after S seconds of streaming (default 600); SIGTERM or SIGINT stops
 *                     at once. Either way counts as success if nothing went wrong.
 *   --pad             make each line BYTES long (padding after the number; default: no padding)
 *   --window          lines in flight at most (default 64)
 *   --progress-ms     print a progress line this often (default 250; 0: never)
 *   --connect-seconds keep trying to connect for this long (default 30): the guest may still be
 *                     booting
 *
 * Output (stdout), times as CLOCK_BOOTTIME seconds (the clock of /proc/uptime, which the test
 * scripts read):
 *     connected up=12.34
 *     progress up=12.59 acked=1234 bytes=1263616
 *     result=ok acked=N bytes=B seconds=S max_stall_ms=M stall_at=UP
 *     result=reset|gap|closed|error ... (what went wrong), then the same counters
 * Exit status 0 for result=ok, 1 for any other result, 2 for bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kLineMax = 4096 };

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) { (void)sig; stop_requested = 1; }

static double uptime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
    fprintf(stderr, "usage: tcp_seq_client HOST PORT [--nonce] [--seconds S] [--pad BYTES] [--window LINES] "
                    "[--progress-ms MS] [--connect-seconds S]\n");
    exit(2);
}

static unsigned long number_arg(const char *name, const char *value, unsigned long min, unsigned long max) {
    char *end;
    errno = 0;
    unsigned long n = strtoul(value, &end, 10);
    if (errno != 0 || *end != '\0' || end == value || n < min || n > max) {
        fprintf(stderr, "tcp_seq_client: %s must be a number from %lu to %lu, not '%s'\n", name, min, max, value);
        exit(2);
    }
    return n;
}

/* The reply to the K-th line is exactly `want` ("ack=K total=K"), with --nonce followed by
 * " nonce=" and 1-16 lowercase hex digits. */
static int reply_matches(const char *reply, const char *want, int nonce) {
    const size_t n = strlen(want);
    if (strncmp(reply, want, n) != 0) return 0;
    if (!nonce) return reply[n] == '\0';
    if (strncmp(reply + n, " nonce=", 7) != 0) return 0;
    const char *hex = reply + n + 7;
    const size_t digits = strspn(hex, "0123456789abcdef");
    return digits >= 1 && digits <= 16 && hex[digits] == '\0';
}

/* One non-blocking connect with a 1 s limit: the socket, or -1 (errno set). */
static int connect_once(const struct sockaddr_in *to) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) == 0) return fd;
    if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        int r = poll(&p, 1, 1000);
        if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) return fd;
        errno = r == 0 ? ETIMEDOUT : err;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 3) usage();
    unsigned long seconds = 600, pad = 0, window = 64, progress_ms = 250, connect_seconds = 30;
    int nonce = 0;
    for (int a = 3; a < argc; a += 2) {
        if (strcmp(argv[a], "--nonce") == 0) {
            nonce = 1, --a;
            continue;
        }
        if (a + 1 >= argc) usage();
        if (strcmp(argv[a], "--seconds") == 0) seconds = number_arg("--seconds", argv[a + 1], 1, 86400);
        else if (strcmp(argv[a], "--pad") == 0) pad = number_arg("--pad", argv[a + 1], 0, kLineMax - 1);
        else if (strcmp(argv[a], "--window") == 0) window = number_arg("--window", argv[a + 1], 1, 1 << 20);
        else if (strcmp(argv[a], "--progress-ms") == 0) progress_ms = number_arg("--progress-ms", argv[a + 1], 0, 60000);
        else if (strcmp(argv[a], "--connect-seconds") == 0)
            connect_seconds = number_arg("--connect-seconds", argv[a + 1], 0, 3600);
        else usage();
    }
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((unsigned short)number_arg("PORT", argv[2], 1, 65535))};
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
        fprintf(stderr, "tcp_seq_client: HOST must be an IPv4 address, not '%s'\n", argv[1]);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: poll returns at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    int fd = -1;
    const double give_up = uptime() + (double)connect_seconds;
    while ((fd = connect_once(&to)) < 0 && !stop_requested) {
        if (uptime() >= give_up) {
            printf("result=error connect: %s acked=0 bytes=0 seconds=0 max_stall_ms=0 stall_at=0\n", strerror(errno));
            return 1;
        }
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (fd < 0) return 1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const double start = uptime();
    printf("connected up=%.2f\n", start);

    unsigned long long sent = 0, acked = 0, bytes_acked = 0;
    char out[kLineMax * 2];
    size_t out_len = 0, out_off = 0;
    char in[kLineMax];
    size_t in_len = 0;
    double last_ack = start, max_stall = 0, stall_at = 0, next_progress = start + (double)progress_ms / 1000;
    const double end = start + (double)seconds;
    char problem[300] = "";
    const char *result = "ok";

    /* At the end the client stops sending, shuts its side down and reads the acks still coming
     * until the guest closes too (or 2 s pass): closing with unread data would send an RST. */
    int closing = 0;
    double close_by = 0;
    for (;;) {
        const double now = uptime();
        if (!closing && (stop_requested || now >= end)) {
            closing = 1, close_by = now + 2;
            out_off = out_len = 0; /* a line half written stays half: the server ignores it */
            shutdown(fd, SHUT_WR);
        }
        if (closing && now >= close_by) break;
        /* Queue the next line while the window has room and the last one is written. */
        if (!closing && out_off == out_len && sent - acked < window) {
            int n = snprintf(out, sizeof out, "seq=%llu%s", sent + 1, nonce ? " nonce" : "");
            while ((size_t)n + 1 < pad) out[n++] = 'x';
            out[n++] = '\n';
            out_len = (size_t)n, out_off = 0;
            ++sent;
        }
        double wake = closing ? close_by : end;
        if (progress_ms > 0 && next_progress < wake) wake = next_progress;
        struct pollfd p = {.fd = fd, .events = POLLIN | (out_off < out_len ? POLLOUT : 0)};
        int r = poll(&p, 1, (int)((wake - now) * 1000) + 1);
        if (r < 0 && errno != EINTR) {
            result = "error", snprintf(problem, sizeof problem, " poll: %s", strerror(errno));
            break;
        }
        if (r > 0 && (p.revents & POLLOUT)) {
            ssize_t w = send(fd, out + out_off, out_len - out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) out_off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                result = errno == ECONNRESET || errno == EPIPE ? "reset" : "error";
                snprintf(problem, sizeof problem, " send: %s after seq=%llu", strerror(errno), sent);
                break;
            }
        }
        if (r > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
            ssize_t got = recv(fd, in + in_len, sizeof in - in_len, MSG_DONTWAIT);
            if (got == 0 && closing) break;
            if (got == 0) {
                result = "closed", snprintf(problem, sizeof problem, " the guest closed the connection");
                break;
            }
            if (got < 0 && errno != EAGAIN && errno != EINTR) {
                result = errno == ECONNRESET ? "reset" : "error";
                snprintf(problem, sizeof problem, " recv: %s", strerror(errno));
                break;
            }
            if (got > 0) in_len += (size_t)got;
            char *at = in, *nl;
            while (*problem == '\0' && (nl = memchr(at, '\n', in_len - (size_t)(at - in))) != NULL) {
                *nl = '\0';
                char want[64];
                snprintf(want, sizeof want, "ack=%llu total=%llu", acked + 1, acked + 1);
                if (acked >= sent || !reply_matches(at, want, nonce)) {
                    result = "gap";
                    snprintf(problem, sizeof problem, " want '%s' got '%.60s' (seq=%llu sent)", acked < sent ? want : "nothing",
                             at, sent);
                } else {
                    const double t = uptime();
                    if (t - last_ack > max_stall) max_stall = t - last_ack, stall_at = last_ack;
                    last_ack = t;
                    ++acked;
                    const size_t digits = (size_t)snprintf(NULL, 0, "seq=%llu%s", acked, nonce ? " nonce" : "") + 1;
                    bytes_acked += digits > pad ? digits : pad;
                }
                at = nl + 1;
            }
            if (*problem) break;
            in_len -= (size_t)(at - in);
            memmove(in, at, in_len);
            if (in_len == sizeof in) {
                result = "gap", snprintf(problem, sizeof problem, " %zu bytes with no newline", in_len);
                break;
            }
        }
        if (progress_ms > 0 && uptime() >= next_progress) {
            printf("progress up=%.2f acked=%llu bytes=%llu\n", uptime(), acked, bytes_acked);
            next_progress += (double)progress_ms / 1000;
        }
    }
    /* The stall still going on when the run ends counts too (a connection that never came back). */
    const double t = closing ? close_by - 2 : uptime();
    if (t - last_ack > max_stall) max_stall = t - last_ack, stall_at = last_ack;
    printf("result=%s%s acked=%llu bytes=%llu seconds=%.2f max_stall_ms=%.0f stall_at=%.2f\n", result, problem, acked,
           bytes_acked, t - start, max_stall * 1000, stall_at);
    close(fd);
    return strcmp(result, "ok") == 0 ? 0 : 1;
}
