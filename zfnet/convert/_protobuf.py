"""Protocol Buffers by hand: the binary wire format, a tiny schema, and the text format.

Caffe's ``.caffemodel`` and ONNX's ``.onnx`` are serialised protobuf messages, and Caffe's
``.prototxt`` is the same message in protobuf's text format. We need a few dozen fields of
each, so instead of generated code (thousands of lines) we keep a small schema per format
(field number -> name and kind) and decode either encoding into plain dicts:

    {"name": "conv1", "type": "Convolution", "bottom": ["data"], "blobs": [{...}, ...]}

Repeated fields are lists, singular fields plain values (the last one wins, as in protobuf),
numeric arrays (packed floats) numpy arrays, enums their names. Unknown fields are skipped.

The wire format. A message is a sequence of fields; each starts with a key, a varint equal to
``field_number << 3 | wire_type``, followed by its value:

    wire type 0  varint: 7 bits per byte, low bits first, high bit set on all but the last byte
    wire type 1  8 bytes, little-endian (fixed64, double)
    wire type 2  a varint length, then that many bytes (string, bytes, sub-message, packed array)
    wire type 5  4 bytes, little-endian (fixed32, float)

Negative int32/int64 values are varints of their 64-bit two's complement (10 bytes). A repeated
numeric field may be "packed" (one wire-type-2 field holding the values back to back) or not
(one field per value); parsers must accept both. Groups (wire types 3, 4) are obsolete and
refused.
"""
import re

import numpy as np


class ProtobufError(Exception):
    """Malformed protobuf data; the converters re-raise it as ZFNetError naming the file."""


WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_FIXED32 = 0, 1, 2, 5

# Scalar kinds of the schema and how each is stored on the wire.
_VARINT_KINDS = {"int", "uint", "bool", "enum"}
_FIXED32_KINDS = {"float"}
_FIXED64_KINDS = {"double"}
_LEN_KINDS = {"string", "bytes", "view", "message"}


# ---------------------------------------------------------------------------------------------
# The wire format
# ---------------------------------------------------------------------------------------------

def read_varint(buf, pos):
    """Decode the varint starting at ``buf[pos]``; returns (value, position after it)."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint (the data ends in the middle of a number)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def iter_fields(buf):
    """Yield (field_number, wire_type, value) for every field of one message.

    ``buf``: bytes or memoryview. value: an int (varint), or a memoryview of the 8, 4 or
    length-delimited bytes (no copy, so multi-megabyte weight arrays cost nothing here).
    """
    buf = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ProtobufError(f"field number 0 at byte {pos} (corrupted data)")
        if wire == WIRE_VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == WIRE_FIXED64:
            if pos + 8 > end:
                raise ProtobufError(f"truncated 8-byte value of field {field}")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == WIRE_LEN:
            n, pos = read_varint(buf, pos)
            if pos + n > end:
                raise ProtobufError(
                    f"field {field} claims {n} bytes but only {end - pos} remain (truncated data)")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == WIRE_FIXED32:
            if pos + 4 > end:
                raise ProtobufError(f"truncated 4-byte value of field {field}")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ProtobufError(f"field {field} has wire type {wire}, which is not valid here "
                                f"(groups are obsolete; the data is probably corrupted)")
        yield field, wire, value


def _signed64(v):
    """Two's-complement reinterpretation of a 64-bit varint (int32/int64 fields)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed_varints(view):
    out, pos = [], 0
    while pos < len(view):
        v, pos = read_varint(view, pos)
        out.append(v)
    return out


# ---------------------------------------------------------------------------------------------
# The schema: {message name: {field number: Field}}
# ---------------------------------------------------------------------------------------------

class Field:
    """One field of a message: its ``name``, ``kind`` and whether it is ``repeated``.

    kind: "int" (int32/int64), "uint", "bool", "enum", "float", "double", "string", "bytes",
    "view" (bytes as a memoryview into the data, for large payloads), or "message" (then
    ``message`` names the sub-message type). ``enum``: {number: name}.
    """
    __slots__ = ("name", "kind", "repeated", "message", "enum")

    def __init__(self, name, kind, repeated=False, message=None, enum=None):
        self.name, self.kind, self.repeated, self.message, self.enum = name, kind, repeated, message, enum


def F(name, kind, message=None, enum=None):
    """A singular field."""
    return Field(name, kind, False, message, enum)


def R(name, kind, message=None, enum=None):
    """A repeated field."""
    return Field(name, kind, True, message, enum)


def decode(buf, message, schema, path=""):
    """Decode the binary message ``buf`` of type ``message`` into a dict (see module docstring)."""
    fields = schema[message]
    out = {}
    for number, wire, value in iter_fields(buf):
        f = fields.get(number)
        if f is None:
            continue                                  # a field we do not need
        where = f"{path}{message}.{f.name}"
        values = _decode_value(f, wire, value, schema, where)
        if f.repeated:
            out.setdefault(f.name, []).extend(values)
        elif f.kind == "message" and f.name in out:
            # Protobuf merges repeated occurrences of a singular sub-message; the last field wins.
            merged = dict(out[f.name])
            merged.update(values[-1])
            out[f.name] = merged
        else:
            out[f.name] = values[-1]
    # Runs of unpacked floats arrive one by one: join them into one array.
    for f in fields.values():
        if f.repeated and f.kind in ("float", "double") and f.name in out:
            parts = out[f.name]
            out[f.name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return out


def _decode_value(f, wire, value, schema, where):
    """The list of values one wire field carries (more than one only for packed arrays)."""
    kind = f.kind
    if kind in _LEN_KINDS:
        if wire != WIRE_LEN:
            raise ProtobufError(f"{where}: expected a length-delimited value, got wire type {wire}")
        if kind == "message":
            return [decode(value, f.message, schema, path=where + " > ")]
        if kind == "bytes":
            return [bytes(value)]
        if kind == "view":
            return [value]                            # large payloads: no copy here
        try:
            return [bytes(value).decode("utf-8")]
        except UnicodeDecodeError:
            raise ProtobufError(f"{where}: string is not valid UTF-8 (corrupted data)") from None
    if kind in _VARINT_KINDS:
        if wire == WIRE_VARINT:
            raw = [value]
        elif wire == WIRE_LEN and f.repeated:
            raw = _packed_varints(value)
        else:
            raise ProtobufError(f"{where}: expected a varint, got wire type {wire}")
        if kind == "int":
            return [_signed64(v) for v in raw]
        if kind == "bool":
            return [bool(v) for v in raw]
        if kind == "enum":
            return [f.enum.get(v, v) if f.enum else v for v in raw]
        return raw
    if kind == "float" or kind == "double":
        size, dtype, fixed = (4, "<f4", WIRE_FIXED32) if kind == "float" else (8, "<f8", WIRE_FIXED64)
        if wire == fixed:
            v = np.frombuffer(value, dtype=dtype)
            return [v.astype(dtype[1:]) if f.repeated else float(v[0])]
        if wire == WIRE_LEN and f.repeated:
            if len(value) % size:
                raise ProtobufError(f"{where}: packed array of {len(value)} bytes is not a whole "
                                    f"number of {size}-byte values (corrupted data)")
            return [np.frombuffer(value, dtype=dtype).astype(dtype[1:])]
        raise ProtobufError(f"{where}: expected a {size}-byte number, got wire type {wire}")
    raise AssertionError(f"unknown schema kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# The text format (Caffe's .prototxt)
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)[fF]?
              |[-+]?(?:inf|infinity|nan)\b)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}<>:;,\[\]])
""", re.VERBOSE | re.IGNORECASE)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _tokenize(text):
    tokens = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ProtobufError(f"line {line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        tok = m.group()
        if kind != "space":
            tokens.append((kind, tok, line))
        line += tok.count("\n")
        pos = m.end()
    return tokens


def _unquote(tok):
    body = tok[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _text_number(tok, f, where, line):
    t = tok.lower()
    if t.endswith("f") and not t.endswith("inf"):
        t = t[:-1]                                      # C-style float suffix: 1.5f
    try:
        if f.kind in ("float", "double"):
            v = float(t)
            return float(np.float32(v)) if f.kind == "float" else v
        if f.kind in ("int", "uint", "enum"):
            v = int(t)
            if f.kind == "uint" and v < 0:
                raise ValueError
            return f.enum.get(v, v) if (f.kind == "enum" and f.enum) else v
        if f.kind == "bool":
            return bool(int(t))
    except (ValueError, OverflowError):
        pass
    raise ProtobufError(f"line {line}: {where}: {tok!r} is not a valid {f.kind}")


def parse_text(text, message, schema):
    """Parse protobuf text format (``name: value``, ``name { ... }``) into the decoded-dict form."""
    tokens = _tokenize(text)
    try:
        pos, out = _parse_text_message(tokens, 0, message, schema, top=True)
    except RecursionError:
        raise ProtobufError("blocks nested too deeply (an unbalanced '{'?)") from None
    return out


def _parse_text_message(tokens, pos, message, schema, top=False, close="}"):
    by_name = {f.name: f for f in schema[message].values()} if message else {}
    out = {}
    while True:
        if pos >= len(tokens):
            if top:
                break
            raise ProtobufError(f"unexpected end of text inside a {message} block (missing '{close}')")
        kind, tok, line = tokens[pos]
        if kind == "punct" and tok == close and not top:
            return pos + 1, out
        if kind == "punct" and tok in ";,":
            pos += 1
            continue
        if kind != "ident":
            raise ProtobufError(f"line {line}: expected a field name, got {tok!r}")
        name = tok
        f = by_name.get(name)
        where = f"{message}.{name}" if message else name
        pos += 1
        has_colon = pos < len(tokens) and tokens[pos][1] == ":"
        if has_colon:
            pos += 1
        if pos >= len(tokens):
            raise ProtobufError(f"line {line}: field {name!r} has no value")
        values = []
        if tokens[pos][1] == "[":                       # name: [v1, v2] (list syntax)
            pos += 1
            while pos < len(tokens) and tokens[pos][1] != "]":
                if tokens[pos][1] == ",":
                    pos += 1
                    continue
                pos, v = _parse_text_value(tokens, pos, f, schema, where)
                values.append(v)
            if pos >= len(tokens):
                raise ProtobufError(f"line {line}: unterminated list for {name!r} (no closing ']')")
            pos += 1
        else:
            pos, v = _parse_text_value(tokens, pos, f, schema, where)
            values.append(v)
        if f is None:
            continue                                    # a field we do not need
        if f.repeated:
            lst = out.setdefault(name, [])
            lst.extend(values)
        else:
            out[name] = values[-1]
    # Repeated float fields become arrays, as in the binary decoding.
    for f in (schema[message].values() if message else ()):
        if f.repeated and f.kind in ("float", "double") and f.name in out:
            out[f.name] = np.asarray(out[f.name], dtype=np.float32 if f.kind == "float" else np.float64)
    return pos, out


def _parse_text_value(tokens, pos, f, schema, where):
    kind, tok, line = tokens[pos]
    if kind == "punct" and tok in "{<":
        close = "}" if tok == "{" else ">"
        sub = f.message if (f is not None and f.kind == "message") else None
        if f is not None and f.kind != "message":
            raise ProtobufError(f"line {line}: {where} is a {f.kind}, not a message block")
        return _parse_text_message(tokens, pos + 1, sub, schema, close=close)
    if f is None:                                       # skip an unknown scalar
        if kind in ("string", "number", "ident"):
            pos += 1
            while pos < len(tokens) and tokens[pos][0] == "string" and kind == "string":
                pos += 1
            return pos, None
        raise ProtobufError(f"line {line}: unexpected {tok!r} after {where}")
    if f.kind == "message":
        raise ProtobufError(f"line {line}: {where} needs a {{ ... }} block, got {tok!r}")
    if kind == "string":
        if f.kind not in ("string", "bytes"):
            raise ProtobufError(f"line {line}: {where} is a {f.kind}, got the string {tok}")
        s = _unquote(tok)
        pos += 1
        while pos < len(tokens) and tokens[pos][0] == "string":   # "a" "b" concatenates
            s += _unquote(tokens[pos][1])
            pos += 1
        return pos, (s.encode() if f.kind == "bytes" else s)
    if kind == "ident" and f.kind == "bool" and tok.lower() in ("true", "false", "t", "f"):
        return pos + 1, tok.lower() in ("true", "t")
    if kind == "ident" and f.kind == "enum":
        names = set(f.enum.values()) if f.enum else set()
        if names and tok not in names:
            raise ProtobufError(f"line {line}: {where}: {tok!r} is not one of {sorted(names)}")
        return pos + 1, tok
    if kind in ("number", "ident"):
        return pos + 1, _text_number(tok, f, where, line)
    raise ProtobufError(f"line {line}: unexpected {tok!r} as the value of {where}")
