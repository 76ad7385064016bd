"""Protobuf wire format for the fuzz suite: a parse into a mutable tree and its re-encoding.

Written from the wire-format spec, independently of zfnet's reader. A message is a list of
[field, wire, value] entries; a length-delimited value that itself parses as a message (and is
not plausibly text) is kept as a sub-list, so mutations deep inside a layer still re-encode with
consistent lengths.
"""
import struct


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def parse(buf, depth=0):
    """A list of [field, wire, value]; value: int (varint), bytes (fixed or leaf), or a list."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            if pos + n > len(buf):
                raise ValueError("short")
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("short")
            value, pos = bytes(buf[pos:pos + n]), pos + n
            if depth < 6 and value and not _texty(value):
                try:
                    value = parse(value, depth + 1)
                except ValueError:
                    pass
        else:
            raise ValueError("wire type")
        out.append([field, wire, value])
    return out


def _texty(b):
    return len(b) < 200 and all(32 <= c < 127 for c in b)


def encode(tree):
    parts = []
    for field, wire, value in tree:
        parts.append(varint(field << 3 | wire))
        if isinstance(value, list):
            value = encode(value)
        if wire == 0:
            parts.append(varint(value if isinstance(value, int) else len(value)))
        elif wire == 2:
            value = value if isinstance(value, bytes) else varint(value)
            parts.append(varint(len(value)) + value)
        else:
            n = 8 if wire == 1 else 4
            if isinstance(value, int):
                value = struct.pack("<Q", value & ((1 << 64) - 1))
            parts.append(value[:n].ljust(n, b"\0"))
    return b"".join(parts)


def f_varint(field, value):
    return varint(field << 3) + varint(value)


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def f_float(field, value):
    return varint(field << 3 | 5) + struct.pack("<f", value)
