"""Checks the built-in guest's console output: `seq=N writes=W check=HEX` lines.

The guest's line for a given N depends only on its seed and N, so a released log that is one
unbroken sequence (every N once, in order, no CORRUPT) proves nothing was lost, repeated or
reordered across pause, save/restore, migration or failover.
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


def check_sequence(data, min_lines=1):
    """data: the bytes of one or more released logs concatenated. Each line must be a seq line
    and sequence numbers must go up by exactly one; the only thing allowed after the last newline
    is the start of the next seq line."""
    problems = []
    seqs = []
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
    return sum(1 for line in data.split(b'\n') if SEQ_LINE.match(line))
