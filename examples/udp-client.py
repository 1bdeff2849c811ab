"""A client of the built-in guest's UDP service (port 7777): numbered requests, one at a time, each
re-sent with the same number until its reply comes. Prints one JSON line when told to stop
(SIGTERM) or when `--count` requests were answered; with --progress, one line per second too.
`scons demo` and the e2e tier run it inside a client network namespace:

    ip netns exec NETNS python3 examples/udp-client.py 10.77.1.2 [--count N]

The guest answers "req=K count=N": N counts the requests it served since boot. So a request lost
on the way in shows as a re-send (the guest then serves it once), a reply the survivor should not
have sent again shows as a second reply for K, and a request served twice (the dead primary's
and the survivor's) shows as a jump in N.
"""
import argparse
import json
import signal
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('address')
    parser.add_argument('--port', type=int, default=7777)
    parser.add_argument('--resend-ms', type=int, default=3000)
    parser.add_argument('--count', type=int, default=0, help='stop after this many answers (0: until SIGTERM)')
    parser.add_argument('--gap-ms', type=float, default=0.0, help='pause between requests')
    parser.add_argument('--progress', action='store_true', help='a line a second: answers so far, last reply')
    parser.add_argument('--progress-ms', type=int, default=1000, help='how often --progress prints')
    args = parser.parse_args()
    stop = {'now': False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.05)
    replies = []       # (request, count, rtt_us), in arrival order
    extra = []         # replies for requests already answered, or for none we sent
    resends = 0
    answered = set()
    request = 0
    started = time.monotonic()
    next_progress = started + args.progress_ms / 1000
    while not stop['now'] and (args.count == 0 or len(replies) < args.count):
        request += 1
        payload = ('req=%d' % request).encode()
        sent_at = time.monotonic()
        sock.sendto(payload, (args.address, args.port))
        while not stop['now']:
            try:
                data, _ = sock.recvfrom(2048)
            except socket.timeout:
                if (time.monotonic() - sent_at) * 1000 >= args.resend_ms:
                    resends += 1
                    sent_at = time.monotonic()
                    sock.sendto(payload, (args.address, args.port))
                continue
            text = data.decode(errors='replace').strip()
            try:
                fields = dict(part.split('=', 1) for part in text.split())
                k, n = int(fields['req']), int(fields['count'])
            except (ValueError, KeyError):
                extra.append(text)
                continue
            if k in answered or k != request:
                extra.append(text)
                continue
            answered.add(k)
            replies.append((k, n, int((time.monotonic() - sent_at) * 1e6)))
            break
        if args.progress and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + args.progress_ms / 1000
            last = replies[-1] if replies else None
            print('progress answers=%d resends=%d last=%s' % (len(replies), resends,
                  'req=%d count=%d rtt=%dus' % last if last else '-'), flush=True)
        if args.gap_ms:
            time.sleep(args.gap_ms / 1000)
    print(json.dumps({'replies': replies, 'extra': extra, 'resends': resends,
                      'seconds': time.monotonic() - started, 'unanswered': request - len(replies)}), flush=True)


if __name__ == '__main__':
    sys.exit(main())
