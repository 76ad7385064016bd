"""Damage a JPEG decoder passes over silently: libjpeg warns ("Corrupt JPEG data ...") and goes
on decoding garbage, and Pillow drops its warnings. A check of the file's bytes finds the usual
kinds of damage without decoding anything:

    jpeg_damage(data) -> None, or a short description of what is wrong

- no end-of-image marker (the file was cut short, at or near its end);
- restart markers out of sequence inside a scan (bytes lost or overwritten between them);
- a long run of zero bytes inside a scan's entropy-coded data where the Huffman tables make that
  impossible for a real picture: zero bits decode to each table's first code, and unless that
  code is an AC table's end-of-block (what optimised encoders use for flat areas), a run of
  ZERO_RUN zero bytes means whole blocks of identical +-1 coefficients: bytes zeroed mid-file.

Only baseline/extended scans get the zero-run check (a progressive scan's zero bits can mean
"nothing to refine"). None means "nothing found", not a guarantee.
"""
import re

# 256 zero bits: more than one whole 8x8 block of a real picture's coefficients.
ZERO_RUN = 32
_SCAN_END = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")   # a marker that ends entropy-coded data
_RESTART = re.compile(rb"\xff([\xd0-\xd7])")
_ZEROS = re.compile(rb"\x00{%d,}" % ZERO_RUN)
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}


def _dht_first_symbols(seg, ac_first):
    """Record, per AC table id, the symbol of its all-zero code (the first symbol listed)."""
    j = 0
    while j + 17 <= len(seg):
        cls_id, n = seg[j], sum(seg[j + 1:j + 17])
        if cls_id >> 4 == 1 and n and j + 17 < len(seg):
            ac_first[cls_id & 15] = seg[j + 17]
        j += 17 + n


def _scan_damage(entropy, offset, restart_interval, zeros_possible):
    """What is wrong with one scan's entropy-coded bytes (starting at file offset `offset`)."""
    if restart_interval:
        for n, m in enumerate(_RESTART.finditer(entropy)):
            if m.group(1)[0] - 0xD0 != n % 8:
                return f"restart marker {n} out of sequence at byte {offset + m.start()}"
    if not zeros_possible:
        m = _ZEROS.search(entropy)
        if m:
            return f"{m.end() - m.start()} zero bytes in the compressed data at byte {offset + m.start()}"
    return None


def jpeg_damage(data):
    """None if nothing is wrong with the JPEG bytes `data` that this check can see, else what is."""
    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        return None                                     # not a JPEG: not this check's business
    i, ac_first, restart, progressive = 2, {}, 0, False
    while i + 1 < len(data):
        if data[i] != 0xFF:
            return f"no marker where one should be, at byte {i}"
        m = data[i + 1]
        if m == 0xFF:                                   # fill byte before a marker
            i += 1
            continue
        if m == 0xD9:
            return None                                 # end of image: anything after it is not ours
        if 0xD0 <= m <= 0xD7 or m == 0x01:              # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        seg = data[i + 4:i + 2 + length]
        if m == 0xC4:
            _dht_first_symbols(seg, ac_first)
        elif m == 0xDD and len(seg) >= 2:
            restart = int.from_bytes(seg[:2], "big")
        elif m in _PROGRESSIVE:
            progressive = True
        elif m == 0xDA and seg:
            tables = [seg[2 + 2 * k] & 15 for k in range(seg[0]) if 2 + 2 * k < len(seg)]
            start = i + 2 + length
            end = _SCAN_END.search(data, start)
            end = end.start() if end else len(data)
            zeros_possible = progressive or any(ac_first.get(t) == 0 for t in tables)
            problem = _scan_damage(data[start:end], start, restart, zeros_possible)
            if problem:
                return problem
            i = end
            continue
        i += 2 + length
    return "no end-of-image marker: the file is cut short"
