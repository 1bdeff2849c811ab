"""Byte streams a hostile or broken peer might send to `colo-replicate receive`.

The stream header layout is documented in toolstack/protocol/stream_header.hpp: magic
"COLOREPL", u32 version, u32 backend kind, u32 page size, u32 region count, the regions
(u64 first pfn, u64 pages), a CRC32C over all of that, and a reserved u32. Everything is
little-endian. The CRC is computed here so a header can be wrong in one field only.
"""
import struct

STREAM_MAGIC = b'COLOREPL'
STREAM_VERSION = 5  # toolstack/protocol/messages.hpp kStreamVersion (test_hostile_streams checks it against --version)
BACKEND_KVM = 1
PAGE_SIZE = 4096


def _crc32c_table():
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def stream_header(version=STREAM_VERSION, backend=BACKEND_KVM, regions=((0, 16384),)):
    body = STREAM_MAGIC + struct.pack('<IIII', version, backend, PAGE_SIZE, len(regions))
    for first, pages in regions:
        body += struct.pack('<QQ', first, pages)
    return body + struct.pack('<II', crc32c(body), 0)


def garbage(length=4096, seed=12345):
    """Deterministic noise that does not start with the magic."""
    out = bytearray()
    x = seed
    while len(out) < length:
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        out += struct.pack('<Q', x)
    out[0:8] = b'GARBAGE!'
    return bytes(out[:length])
