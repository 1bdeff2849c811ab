/*
 * The Linux example guest's TCP service (started by /init when the kernel command line has
 * net.ip=ADDR/PREFIX): it lets a client outside the guest see whether its connection survived a
 * failover with nothing lost, repeated or reset.
 *
 *     client -> guest   seq=1\n seq=2\n ...          (anything after the number up to \n is padding)
 *     guest  -> client  ack=1 total=1\n ack=2 total=2\n ...
 *
 * N is echoed as received; T counts the lines this connection has delivered. A client that sends
 * seq=1, 2, 3, ... in order therefore expects ack=K total=K for its K-th line: a line the guest
 * lost or saw twice (a replica that forgot or replayed part of the stream) shows as N != T, an
 * ack lost or sent twice on the way back as an ack out of order. tests/nested/tcp_seq_client.c is
 * that client.
 *
 * A line "seq=N nonce..." is answered "ack=N total=T nonce=H", H 1 to 16 hex digits taken from
 * the cycle counter and the clock: a reply that is different, even in length, each time the
 * guest computes it. Replies without it depend only on the stream, so a replica that re-executes the guest from
 * a checkpoint and is given the same input recomputes the same bytes, and the client could not
 * tell whether a reply it got came from a state the replica does not have (Remus releasing
 * output before the checkpoint is acknowledged, COLO releasing without comparing). With nonces
 * the replica's replies differ from the ones the client already has, and the stream the client
 * reads after a failover is only whole if no reply escaped before it was safe.
 *
 *     tcp_seq_server [PORT]      default 7000
 *
 * One process, poll() over the listening socket and up to kMaxClients connections: a client that
 * vanished without a FIN cannot block the others. Nothing is printed per line (the console is the
 * memory workload's); one line when listening, one per connection closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

enum { kMaxClients = 16, kLineMax = 4096, kOutMax = 64 * 1024 };

struct client {
    int fd;
    unsigned long long lines;
    size_t in_len;
    char in[kLineMax];
    size_t out_len; /* replies not yet written (the client reads slower than it sends) */
    char out[kOutMax];
};

/* Console lines go out with dprintf: one write each, so the workload's lines never split ours. */
static void drop(struct client *c, const char *why) {
    dprintf(1, "tcp-seq-server: connection closed after %llu lines (%s)\n", c->lines, why);
    close(c->fd);
    c->fd = -1;
}

/* Writes what it can of the pending replies; 0, or -1 when the connection is broken. */
static int flush_out(struct client *c) {
    while (c->out_len > 0) {
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (w <= 0) return -1;
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    return 0;
}

/* 64 bits that differ each time they are computed: the cycle counter and the clock, mixed. The
 * clock alone is not enough: a guest whose clocksource ticks in jiffies reads the same value for
 * milliseconds, and re-executing from a checkpoint would often compute the same nonce length. */
static unsigned long long timing_hash(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long z = __rdtsc() ^ ((unsigned long long)ts.tv_sec << 32) ^ (unsigned long long)ts.tv_nsec;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix64's finaliser */
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Answers every complete line in c->in; -1 on a line that is not "seq=N...". */
static int answer_lines(struct client *c) {
    char *start = c->in, *nl;
    while ((nl = memchr(start, '\n', c->in_len - (size_t)(start - c->in))) != NULL) {
        *nl = '\0';
        char *end;
        if (strncmp(start, "seq=", 4) != 0) return -1;
        errno = 0;
        unsigned long long n = strtoull(start + 4, &end, 10);
        if (errno != 0 || end == start + 4) return -1;
        ++c->lines;
        char nonce[32] = "";
        if (strncmp(end, " nonce", 6) == 0) {
            const unsigned long long bits = timing_hash();
            const int digits = (int)(bits >> 60) + 1;
            snprintf(nonce, sizeof nonce, " nonce=%0*llx", digits, digits < 16 ? bits & ((1ull << (4 * digits)) - 1) : bits);
        }
        int len = snprintf(c->out + c->out_len, kOutMax - c->out_len, "ack=%llu total=%llu%s\n", n, c->lines, nonce);
        if (len < 0 || (size_t)len >= kOutMax - c->out_len) return -1; /* the caller stops reading first */
        c->out_len += (size_t)len;
        start = nl + 1;
    }
    c->in_len -= (size_t)(start - c->in);
    memmove(c->in, start, c->in_len);
    return c->in_len == kLineMax ? -1 : 0; /* a full buffer with no newline: not our protocol */
}

int main(int argc, char **argv) {
    const int port = argc > 1 ? atoi(argv[1]) : 7000;
    static struct client clients[kMaxClients];
    for (int i = 0; i < kMaxClients; ++i) clients[i].fd = -1;

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 8) != 0) {
        dprintf(1, "tcp-seq-server: cannot listen on port %d: %s\n", port, strerror(errno));
        return 1;
    }
    dprintf(1, "tcp-seq-server: listening on port %d\n", port);

    for (;;) {
        struct pollfd fds[kMaxClients + 1];
        fds[0] = (struct pollfd){.fd = listener, .events = POLLIN};
        for (int i = 0; i < kMaxClients; ++i) {
            struct client *c = &clients[i];
            short events = 0;
            /* Read only while the replies to a full buffer of lines still fit (a line is at least
             * 5 bytes, a reply at most 75): a client that stops reading is throttled by TCP
             * instead of growing our buffer. */
            if (c->fd >= 0 && c->out_len + (kLineMax / 5 + 1) * 75 < kOutMax) events |= POLLIN;
            if (c->fd >= 0 && c->out_len > 0) events |= POLLOUT;
            fds[i + 1] = (struct pollfd){.fd = c->fd, .events = events};
        }
        if (poll(fds, kMaxClients + 1, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (fds[0].revents & POLLIN) {
            int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            int slot = 0;
            while (slot < kMaxClients && clients[slot].fd >= 0) ++slot;
            if (fd >= 0 && slot == kMaxClients) {
                close(fd); /* full: the client sees its connection closed at once */
            } else if (fd >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                clients[slot] = (struct client){.fd = fd};
            }
        }
        for (int i = 0; i < kMaxClients; ++i) {
            struct client *c = &clients[i];
            if (c->fd < 0 || fds[i + 1].fd != c->fd || fds[i + 1].revents == 0) continue;
            if (fds[i + 1].revents & POLLIN) {
                ssize_t r = recv(c->fd, c->in + c->in_len, kLineMax - c->in_len, MSG_DONTWAIT);
                if (r == 0) {
                    drop(c, "end of stream");
                    continue;
                }
                if (r < 0 && errno != EINTR && errno != EAGAIN) {
                    drop(c, strerror(errno));
                    continue;
                }
                if (r > 0) {
                    c->in_len += (size_t)r;
                    if (answer_lines(c) != 0) {
                        drop(c, "not a seq=N line");
                        continue;
                    }
                }
            } else if (fds[i + 1].revents & (POLLERR | POLLHUP)) {
                drop(c, "error");
                continue;
            }
            if (flush_out(c) != 0) drop(c, "send failed");
        }
    }
}
