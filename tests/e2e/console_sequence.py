"""Checks the built-in guest's console output: `seq=N writes=W check=HEX` lines.

The guest's line for a given N depends only on its seed and N, so a released log that is one
unbroken sequence (every N once, in order, no CORRUPT) proves nothing was lost, repeated or
reordered across pause, save/restore, migration or failover.

Each host's --console-log holds byte k of the guest's console stream at file position k (NULs
before the first byte that host released), so the hosts' logs are joined by overlaying them by
position (`overlay`), not by concatenating them: a byte both a dead primary and its survivor
released lands at the same position in both and is seen once; two hosts that disagree about a
position is an error.
"""
import re

SEQ_LINE = re.compile(rb'^seq=(\d+) writes=(\d+) check=([0-9a-fA-F]+)\s*$')


class SequenceReport:
    def __init__(self, seqs, problems):
        self.seqs = seqs          # the sequence numbers in the order they appear
        self.problems = problems  # human-readable list; empty when the sequence is unbroken

    @property
    def ok(self):
        return not self.problems

    @property
    def first(self):
        return self.seqs[0] if self.seqs else None

    @property
    def last(self):
        return self.seqs[-1] if self.seqs else None

    def summary(self):
        if not self.seqs:
            return 'no seq lines'
        return 'seq %d..%d, %d lines' % (self.first, self.last, len(self.seqs))


class Overlay:
    def __init__(self, data, conflicts):
        self.data = data            # the joined stream, from the first position any log holds
        self.conflicts = conflicts  # positions where two logs hold different bytes


def overlay(*logs):
    """Joins the logs by position. A NUL is a position that log does not hold (the guest's
    console output has none)."""
    size = max((len(x) for x in logs), default=0)
    joined = bytearray(size)
    conflicts = []
    for data in logs:
        for position, byte in enumerate(data):
            if byte == 0:
                continue
            if joined[position] == 0:
                joined[position] = byte
            elif joined[position] != byte:
                conflicts.append(position)
    start = next((i for i, byte in enumerate(joined) if byte != 0), size)
    return Overlay(bytes(joined[start:]), conflicts)


def check_joined(logs, min_lines=1):
    """The hosts' released logs overlaid by position must be one unbroken sequence, and no
    position may hold different bytes in two logs."""
    joined = overlay(*logs)
    report = check_sequence(joined.data, min_lines)
    if joined.conflicts:
        report.problems.insert(0, '%d positions differ between the logs, the first at %d'
                               % (len(joined.conflicts), joined.conflicts[0]))
    return report


def check_sequence(data, min_lines=1):
    """data: the bytes of one released log (the NULs before the first byte it holds are skipped)
    or of logs joined with `overlay`. Each line must be a seq line
    and sequence numbers must go up by exactly one; the only thing allowed after the last newline
    is the start of the next seq line."""
    problems = []
    seqs = []
    data = data.lstrip(b'\0')
    lines = data.split(b'\n')
    partial = lines.pop() if lines else b''  # after the last newline: b'' or a line cut short
    for number, line in enumerate(lines, 1):
        if b'CORRUPT' in line:
            problems.append('line %d: %s' % (number, line[:120].decode(errors='replace')))
            continue
        m = SEQ_LINE.match(line)
        if not m:
            problems.append('line %d is not a seq line: %r' % (number, line[:80]))
            continue
        n = int(m.group(1))
        if seqs and n != seqs[-1] + 1:
            if n <= seqs[-1]:
                problems.append('line %d: seq=%d repeated or out of order after seq=%d' % (number, n, seqs[-1]))
            else:
                problems.append('line %d: seq=%d follows seq=%d (missing %d..%d)'
                                % (number, n, seqs[-1], seqs[-1] + 1, n - 1))
        seqs.append(n)
    if partial:
        # A guest stopped (destroy, kill) in the middle of printing leaves the start of its next
        # line; anything else there is output that does not belong.
        expected = b'seq=%d writes=' % (seqs[-1] + 1 if seqs else 0)
        if not (expected.startswith(partial) or partial.startswith(expected)) or b'CORRUPT' in partial:
            problems.append('output ends in an unexpected partial line %r' % partial[:60])
    if len(seqs) < min_lines:
        problems.append('only %d seq lines, expected at least %d' % (len(seqs), min_lines))
    return SequenceReport(seqs, problems[:8] + (['... %d more' % (len(problems) - 8)] if len(problems) > 8 else []))


def count_seq_lines(data):
    return sum(1 for line in data.lstrip(b'\0').split(b'\n') if SEQ_LINE.match(line))
