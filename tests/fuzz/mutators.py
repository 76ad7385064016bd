"""Mutators: generic byte-level ones and structure-aware ones per format.

Every mutator is ``f(rng, data) -> bytes`` (rng: random.Random). The structure-aware ones rebuild
the container so the damage lands past the outer checks: protobuf trees re-encoded with correct
lengths, zip archives re-packed with valid CRCs (or with a chosen header field broken), pickles
changed opcode by opcode, safetensors headers rewritten as JSON, prototxt text edited token by
token, Deep Compression counts and codebooks rewritten.
"""
import io
import json
import pickletools
import struct
import warnings
import zipfile
import zlib

from . import pb

INTERESTING_INTS = (0, 1, 2, 3, 7, 255, 256, 65535, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1,
                    -1, -2, -2**31, -2**63, 10**9, 20000, 400000000)
INTERESTING_FLOATS = (0.0, -0.0, 1.0, -1.0, 1e-45, 3e38, -3e38, float("nan"), float("inf"),
                      float("-inf"))            # all representable as float32


# -- bytes ----------------------------------------------------------------------------------------
def bit_flips(rng, data):
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def interesting_bytes(rng, data):
    b = bytearray(data)
    if not b:
        return data
    i = rng.randrange(len(b))
    width = rng.choice((1, 2, 4, 8))
    v = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
    b[i:i + width] = v.to_bytes(width, "little")
    return bytes(b)


def truncate(rng, data):
    if not data:
        return data
    return data[:rng.randrange(len(data))] if rng.random() < 0.7 else data[:rng.randrange(min(len(data), 64))]


def chunk_edit(rng, data):
    """Delete, duplicate or insert a chunk."""
    if len(data) < 2:
        return data + bytes(rng.randrange(256) for _ in range(4))
    i = rng.randrange(len(data))
    n = rng.randrange(1, min(64, len(data) - i) + 1)
    op = rng.randrange(3)
    if op == 0:
        return data[:i] + data[i + n:]
    if op == 1:
        return data[:i] + data[i:i + n] * rng.randrange(2, 4) + data[i + n:]
    return data[:i] + bytes(rng.randrange(256) for _ in range(n)) + data[i:]


BYTES = (bit_flips, interesting_bytes, truncate, chunk_edit)


# -- protobuf -------------------------------------------------------------------------------------
def _entries(tree, out=None):
    """Every [field, wire, value] entry list in the tree (the lists themselves, for in-place edits)."""
    out = [] if out is None else out
    out.append(tree)
    for e in tree:
        if isinstance(e[2], list):
            _entries(e[2], out)
    return out


def protobuf_tree(rng, data):
    try:
        tree = pb.parse(data)
    except ValueError:
        return bit_flips(rng, data)
    lists = [t for t in _entries(tree) if t]
    if not lists:
        return bit_flips(rng, data) if data else b"\x08\x07"
    for _ in range(rng.choice((1, 1, 2, 3))):
        msg = rng.choice(lists)
        if not msg:
            continue
        i = rng.randrange(len(msg))
        e = msg[i]
        op = rng.randrange(9)
        if op == 0:
            del msg[i]
        elif op == 1:
            msg.insert(i, [e[0], e[1], _copy(e[2])])
        elif op == 2 and e[1] == 0:
            e[2] = rng.choice(INTERESTING_INTS)
        elif op == 3:                                # wire-type confusion (INT where INTS, ...)
            e[1] = rng.choice((0, 1, 2, 5))
            if e[1] == 0 and not isinstance(e[2], int):
                e[2] = rng.choice(INTERESTING_INTS)
        elif op == 4:
            e[0] = max(1, e[0] + rng.choice((-1, 1, 7, 8)))
        elif op == 5 and e[1] == 2:
            e[2] = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        elif op == 6 and e[1] == 5:
            e[2] = struct.pack("<f", rng.choice(INTERESTING_FLOATS))
        elif op == 7 and isinstance(e[2], bytes) and e[2]:
            e[2] = bit_flips(rng, e[2])
        elif op == 8 and len(msg) > 1:
            j = rng.randrange(len(msg))
            msg[i], msg[j] = msg[j], msg[i]
        elif isinstance(e[2], list) and e[2]:        # drop a sub-message's tail
            del e[2][rng.randrange(len(e[2])):]
    out = pb.encode(tree)
    return bit_flips(rng, out) if rng.random() < 0.1 else out


def _copy(v):
    return [[a, b, _copy(c)] for a, b, c in v] if isinstance(v, list) else v


# -- pickles and zip archives ---------------------------------------------------------------------
def pickle_ops(rng, data):
    """Change one opcode of a pickle: drop it, repeat it, or rewrite an integer or string argument."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ops = [(op, arg, pos) for op, arg, pos in pickletools.genops(data)]
    except Exception:
        return bit_flips(rng, data)
    if not ops:
        return bit_flips(rng, data)
    op, arg, pos = rng.choice(ops)
    end = next((p for _, _, p in ops if p > pos), len(data))
    choice = rng.randrange(5)
    if choice == 0:
        return data[:pos] + data[end:]
    if choice == 1:
        return data[:pos] + data[pos:end] * 2 + data[end:]
    if choice == 2 and op.name in ("BININT", "BININT1", "BININT2", "LONG1"):
        v = rng.choice(INTERESTING_INTS)
        enc = v.to_bytes(8, "little", signed=True)
        return data[:pos] + b"\x8a\x08" + enc + data[end:]          # LONG1 of 8 bytes
    if choice == 3:                                  # a BUILD, a REDUCE or a SETITEM dropped in
        return data[:pos] + rng.choice((b"}b", b"(tR", b"NN\x86b", b"\x85R", b"s", b"}\x94b")) + data[pos:]
    return bit_flips(rng, data)


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def _repack(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # duplicate names are one of the mutations
        with zipfile.ZipFile(buf, "w", compression) as z:
            for name, payload in members:
                z.writestr(name, payload)
    return buf.getvalue()


DEFLATE_BOMB = None


def _bomb():
    global DEFLATE_BOMB
    if DEFLATE_BOMB is None:                         # 256 MiB of zeros in ~250 KB
        # A full flush ends each block byte-aligned with no back-references: one compressed
        # MiB of zeros can be repeated, then the final (empty) block closes the stream.
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
        DEFLATE_BOMB = block * 256 + c.flush()
    return DEFLATE_BOMB


def _zip_header_field(rng, data):
    """Break one field of a local or central header: compression method, flags, sizes, CRC."""
    b = bytearray(data)
    sigs = [i for i in range(len(b) - 4) if b[i:i + 4] in (b"PK\x03\x04", b"PK\x01\x02")]
    if not sigs:
        return bit_flips(rng, data)
    i = rng.choice(sigs)
    central = b[i:i + 4] == b"PK\x01\x02"
    fields = {"flags": (8 if central else 6, 2), "method": (10 if central else 8, 2),
              "crc": (16 if central else 14, 4), "csize": (20 if central else 18, 4),
              "usize": (24 if central else 22, 4)}
    name = rng.choice(list(fields))
    off, width = fields[name]
    if name == "flags":
        v = rng.choice((1, 0x41, 0x2001, 0x8))       # encrypted, strong encryption, masked, data descriptor
    elif name == "method":
        v = rng.choice((1, 6, 9, 12, 14, 93, 98, 99, 8))
    else:
        v = rng.choice(INTERESTING_INTS) & 0xFFFFFFFF
    b[i + off:i + off + width] = v.to_bytes(width, "little")
    return bytes(b)


def zip_archive(rng, data):
    try:
        members = _members(data)
    except Exception:
        return bit_flips(rng, data)
    op = rng.randrange(8)
    i = rng.randrange(len(members))
    name, payload = members[i]
    if op == 0:                                      # the pickle, opcode by opcode; valid CRCs
        k = next((j for j, (n, _) in enumerate(members) if n.endswith("data.pkl")), i)
        members[k] = (members[k][0], pickle_ops(rng, members[k][1]))
    elif op == 1:
        members[i] = (name, rng.choice((truncate, chunk_edit, bit_flips))(rng, payload))
    elif op == 2:
        del members[i]
    elif op == 3:
        members[i] = (name.replace("data", rng.choice(("dat", "data/..", "data/data"))), payload)
    elif op == 4:
        return _zip_header_field(rng, _repack(members, rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))))
    elif op == 5:                                    # a deflate stream broken mid-way, CRC intact
        return _broken_deflate(rng, members, i)
    elif op == 6 and rng.random() < 0.3:             # a deflate bomb as one storage
        return _with_bomb(members, i)
    else:
        members.append((members[i][0], payload))     # a duplicated member name
    return _repack(members, rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)))


def _broken_deflate(rng, members, i):
    data = _repack(members, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.infolist()[i]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    b = bytearray(data)
    for _ in range(rng.choice((1, 3, 8))):
        if info.compress_size:
            b[start + rng.randrange(info.compress_size)] ^= 0xFF
    return bytes(b)


def _with_bomb(members, i):
    """Member i replaced by a stored deflate bomb whose headers tell its true size."""
    bomb = _bomb()
    body = _repack([m for j, m in enumerate(members) if j != i])
    cd = body.index(b"PK\x01\x02") if b"PK\x01\x02" in body else body.index(b"PK\x05\x06")
    name = members[i][0].encode()
    size, crc = 256 << 20, zlib.crc32(bytes(1 << 20) * 1)  # CRC is wrong; size is what matters
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(bomb), size, len(name), 0)
    offset = cd
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(bomb), size,
                          len(name), 0, 0, 0, 0, 0, offset)
    # rebuild: old locals, the bomb, old central directory entries + the bomb's, a new end record
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        infos = z.infolist()
    end = body.index(b"PK\x05\x06")
    old_cd = body[cd:end]
    new_cd = old_cd + central + name
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(infos) + 1, len(infos) + 1, len(new_cd),
                       cd + len(local) + len(name) + len(bomb), 0)
    return body[:cd] + local + name + bomb + new_cd + eocd


def legacy_pickle(rng, data):
    """The legacy .pth stream: an opcode change in one of its pickles, or in the storage section."""
    return pickle_ops(rng, data) if rng.random() < 0.5 else rng.choice(BYTES)(rng, data)


# -- safetensors ----------------------------------------------------------------------------------
JSON_JUNK = (None, True, 0, -1, 1.5, 2**64, "", "x", [], [1], [1, 2, 3], [-1, 5], ["a", "b"], [1.0, 2.0],
             {}, {"a": 1}, [[1, 2]], [0, 2**40], list(range(70)), "nan", float("nan"))


def _junk(rng):
    return rng.choice(JSON_JUNK)


def _mutate_json(rng, v, depth=0):
    """A copy of a JSON value with one thing changed somewhere inside."""
    if isinstance(v, dict) and v and depth < 8:
        k = rng.choice(list(v))
        v = dict(v)
        op = rng.randrange(4)
        if op == 0:
            del v[k]
        elif op == 1:
            v[k] = _junk(rng)
        else:
            v[k] = _mutate_json(rng, v[k], depth + 1)
        return v
    if isinstance(v, list) and v and depth < 8:
        v = list(v)
        i = rng.randrange(len(v))
        op = rng.randrange(4)
        if op == 0:
            del v[i]
        elif op == 1:
            v.append(v[i])
        else:
            v[i] = _mutate_json(rng, v[i], depth + 1) if rng.random() < 0.6 else _junk(rng)
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool) and rng.random() < 0.7:
        return rng.choice((0, -1, 1, 3, 2**31, 10**12, 0.5, 1e300, -7, float("inf")))
    return _junk(rng)


def safetensors_header(rng, data):
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        body = data[8 + n:]
    except Exception:
        return bit_flips(rng, data)
    if not isinstance(header, dict):
        return bit_flips(rng, data)
    op = rng.randrange(5)
    meta = header.get("__metadata__", {})
    if op <= 1 or not meta or not isinstance(meta, dict):                          # a tensor entry (data_offsets, shape, dtype)
        header = _mutate_json(rng, header)
    elif op == 2:                                    # a metadata value, JSON-encoded junk
        k = rng.choice(list(meta))
        try:
            inner = json.loads(meta[k])
            meta[k] = json.dumps(_mutate_json(rng, inner))
        except Exception:
            meta[k] = json.dumps(_junk(rng))
    elif op == 3:                                    # the metadata value not even JSON
        k = rng.choice(list(meta))
        meta[k] = rng.choice(("{", "[1,", "", "NaN", "\"\\ud800\"", "1e999"))
    else:
        k = rng.choice(list(meta))
        meta[k] = _junk(rng)                         # not a string at all
    raw = json.dumps(header).encode()
    if rng.random() < 0.2:
        raw += b" " * rng.randrange(8)
    m = len(raw) if rng.random() < 0.95 else rng.choice((0, 1, len(raw) + 9, 2**40))
    return struct.pack("<Q", m) + raw + body


# -- prototxt -------------------------------------------------------------------------------------
TEXT_BITS = ("{", "}", "[", "]", "[1, 2", ":", "\"", "'", "#", "layer {", "dim: 0", "dim: -5",
             "kernel_size: 0", "stride: 0", "num_output: 1000000000", "pad: 99", "top: \"data\"",
             "bottom: \"nowhere\"", "type: \"Pooling\"", "inf", "nan", "1e40", "-1", "99999999999999999999",
             "global_pooling: true", "group: 7", "kernel_h: 3", "pool: AVE", "<", ">", "\\", "\0")


def prototxt_text(rng, data):
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    op = rng.randrange(6)
    i = rng.randrange(len(lines))
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[rng.randrange(len(lines))])
    elif op == 2:
        lines.insert(i, rng.choice(TEXT_BITS))
    elif op == 3:                                    # a value replaced
        if ":" in lines[i]:
            k = lines[i].split(":")[0]
            lines[i] = f"{k}: {rng.choice(TEXT_BITS)}"
    elif op == 4:                                    # unterminated list or block at the end
        lines.append(rng.choice(("dim: [1, 2", "layer {", "x: [", "a {", "name: \"open")))
    else:
        return truncate(rng, data)
    return "\n".join(lines).encode()


# -- Deep Compression -----------------------------------------------------------------------------
def deep_compression(rng, data):
    b = bytearray(data)
    op = rng.randrange(4) if len(b) > 104 + 1024 + 8 else 3
    if op == 0:                                      # a layer count
        i = rng.randrange(26)
        v = rng.choice(INTERESTING_INTS) & 0xFFFFFFFF if rng.random() < 0.5 else \
            struct.unpack_from("<I", b, 4 * i)[0] + rng.choice((-3, -1, 1, 2))
        b[4 * i:4 * i + 4] = (v & 0xFFFFFFFF).to_bytes(4, "little")
    elif op == 1:                                    # a codebook or bias value
        i = 104 + 4 * rng.randrange(256)
        b[i:i + 4] = struct.pack("<f", rng.choice(INTERESTING_FLOATS))
    elif op == 2:                                    # a finite but absurd value somewhere
        i = rng.randrange(104, len(b) - 4) & ~3
        b[i:i + 4] = struct.pack("<f", rng.choice((3e38, -3e38, 1e30, float("nan"))))
    else:
        return rng.choice(BYTES)(rng, data)
    return bytes(b)


MUTATORS = {
    "safetensors": (safetensors_header,) * 3 + BYTES,
    "onnx": (protobuf_tree,) * 4 + BYTES,
    "caffemodel": (protobuf_tree,) * 4 + BYTES,
    "prototxt": (prototxt_text,) * 4 + BYTES,
    "pth": (zip_archive,) * 4 + (legacy_pickle,) + BYTES,
    "net": (deep_compression,) * 3 + BYTES,
}


def mutate(fmt, rng, data):
    """One to three stacked mutations of `data` for format `fmt`."""
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data = rng.choice(MUTATORS[fmt])(rng, data)
    return data
