#!/usr/bin/env python3
"""The built-in guest's disk blocks, read back from an image file on the host: the Python mirror
of kvm/builtin_guest/disk_pattern.h (keep the two in step; tests/kvm/virtio_blk_test.cpp checks
the C side against a real guest, `python3 tests/disk_pattern.py --self-test` this side against
blocks made here).

    image_digest(path, blocks, seed) -> (digest_hex, problems)

digest_hex is what the guest prints in `disk-check ... digest=` and `disk-done ... digest=`: FNV-1a
64 over, for b = 0 .. blocks-1, b then its generation (8 bytes little-endian each), the generation
read from the block's header (0: an all-zero block, never written). problems lists one line per
block that is not a whole, clean generation of that block: torn (the header's generation, the
payload not all of it), foreign (another block's or seed's header), garbled (neither zero nor a
header), short (the image ends inside it).

    python3 tests/disk_pattern.py IMAGE BLOCKS SEED     prints the digest and any problems
"""
import struct
import sys

BLOCK_BYTES = 4096
MAGIC = 0x42445243  # "CRDB"
HEADER_BYTES = 24
WORDS = (BLOCK_BYTES - HEADER_BYTES) // 8
BLOCK_STEP = 0xd6e8feb86659fd93
WORD_STEP = 0x9e3779b97f4a7c15
FNV_OFFSET = 0xcbf29ce484222325
FNV_PRIME = 0x100000001b3
MASK = (1 << 64) - 1


def mix(x):
    x ^= x >> 33
    x = (x * 0xff51afd7ed558ccd) & MASK
    x ^= x >> 33
    x = (x * 0xc4ceb9fe1a85ec53) & MASK
    x ^= x >> 33
    return x


def base(seed, block, generation):
    return mix(seed ^ mix((block * BLOCK_STEP + generation) & MASK))


def payload(seed, block, generation):
    b = base(seed, block, generation)
    return struct.pack('<%dQ' % WORDS, *(mix((b + i * WORD_STEP) & MASK) for i in range(WORDS)))


def block_bytes(seed, block, generation):
    """Generation `generation` (>= 1) of `block`, as the guest writes it."""
    return struct.pack('<IIQQ', MAGIC, block & 0xffffffff, generation, seed) + payload(seed, block, generation)


def check_block(data, seed, block):
    """(generation, problem or None) for BLOCK_BYTES read from `block`."""
    if len(data) < BLOCK_BYTES:
        return 0, 'short (%d bytes)' % len(data)
    magic, number, generation, block_seed = struct.unpack_from('<IIQQ', data)
    if magic != MAGIC:
        return 0, (None if data.count(0) == BLOCK_BYTES else 'garbled (no header, not zero)')
    if number != block & 0xffffffff or block_seed != seed or generation == 0:
        return generation, 'foreign (header of block %d, seed %d, generation %d)' % (number, block_seed, generation)
    if data[HEADER_BYTES:BLOCK_BYTES] != payload(seed, block, generation):
        return generation, 'torn (header says generation %d, the payload is not all of it)' % generation
    return generation, None


def digest_step(digest, block, generation):
    for byte in struct.pack('<QQ', block, generation):
        digest = ((digest ^ byte) * FNV_PRIME) & MASK
    return digest


def image_digest(path, blocks, seed):
    digest, problems = FNV_OFFSET, []
    with open(path, 'rb') as f:
        for b in range(blocks):
            generation, problem = check_block(f.read(BLOCK_BYTES), seed, b)
            if problem:
                problems.append('block %d: %s' % (b, problem))
            digest = digest_step(digest, b, generation)
    return '%016x' % digest, problems


def self_test():
    import os
    import tempfile
    seed = 11
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'img')
        image = bytearray(4 * BLOCK_BYTES)
        image[BLOCK_BYTES:2 * BLOCK_BYTES] = block_bytes(seed, 1, 3)
        image[3 * BLOCK_BYTES:] = block_bytes(seed, 3, 1)
        with open(path, 'wb') as f:
            f.write(image)
        want = FNV_OFFSET
        for b, g in ((0, 0), (1, 3), (2, 0), (3, 1)):
            want = digest_step(want, b, g)
        got, problems = image_digest(path, 4, seed)
        assert (got, problems) == ('%016x' % want, []), (got, problems)
        image[BLOCK_BYTES + 100] ^= 1                                     # torn
        image[2 * BLOCK_BYTES:3 * BLOCK_BYTES] = block_bytes(seed, 3, 1)  # foreign: block 3's in 2
        image[5] = 0xff                                                   # block 0 garbled
        with open(path, 'wb') as f:
            f.write(image)
        _, problems = image_digest(path, 5, seed)
        kinds = [p.split(': ')[1].split(' ')[0] for p in problems]
        assert kinds == ['garbled', 'torn', 'foreign', 'short'], problems


def main(argv):
    if argv[1:] == ['--self-test']:
        self_test()
        print('disk_pattern self-test: ok')
        return 0
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    digest, problems = image_digest(argv[1], int(argv[2]), int(argv[3]))
    print('digest=%s' % digest)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
