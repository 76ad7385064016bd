"""The hand-written protobuf reader: wire format, schema decoding, text format."""
import numpy as np
import pytest

from zfnet.convert._protobuf import (F, ProtobufError, R, decode, iter_fields, parse_text,
                                     read_varint)

import convert_pbenc as pb

SCHEMA = {
    "Top": {1: F("name", "string"), 2: R("ints", "int"), 3: R("values", "float"),
            4: F("child", "message", "Child"), 5: R("children", "message", "Child"),
            6: F("flag", "bool"), 7: F("mode", "enum", enum={0: "A", 1: "B"}),
            8: F("big", "uint"), 9: F("x", "double"), 10: F("raw", "bytes"), 11: F("f", "float")},
    "Child": {1: F("n", "int"), 2: R("names", "string")},
}


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1, 2**64 - 1])
def test_varint_round_trip(value):
    data = pb.varint(value)
    assert read_varint(data, 0) == (value, len(data))


def test_negative_ints_are_ten_byte_twos_complement():
    data = pb.f_varint(2, -1) + pb.f_varint(2, -123456789)
    assert len(pb.varint(-1)) == 10
    assert decode(data, "Top", SCHEMA)["ints"] == [-1, -123456789]


def test_packed_and_unpacked_floats_decode_alike_and_concatenate():
    values = np.array([1.5, -2.25, 3e-8, 7.0], dtype=np.float32)
    packed = decode(pb.f_packed_floats(3, values), "Top", SCHEMA)["values"]
    unpacked = decode(pb.f_unpacked_floats(3, values), "Top", SCHEMA)["values"]
    mixed = decode(pb.f_packed_floats(3, values[:2]) + pb.f_unpacked_floats(3, values[2:]), "Top",
                   SCHEMA)["values"]
    for got in (packed, unpacked, mixed):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, values)


def test_packed_varints_and_scalars():
    data = (pb.f_str(1, "héllo") + pb.f_packed_varints(2, [1, 2, 300]) + pb.f_varint(2, 7)
            + pb.f_varint(6, 1) + pb.f_varint(7, 1) + pb.f_varint(8, 2**40) + pb.f_double(9, 0.1)
            + pb.f_bytes(10, b"\x00\xff") + pb.f_float(11, 0.5))
    d = decode(data, "Top", SCHEMA)
    assert d == {"name": "héllo", "ints": [1, 2, 300, 7], "flag": True, "mode": "B", "big": 2**40,
                 "x": 0.1, "raw": b"\x00\xff", "f": 0.5}


def test_nested_messages_and_unknown_fields_are_skipped():
    child = pb.f_varint(1, 5) + pb.f_str(2, "a") + pb.f_str(2, "b") + pb.f_varint(99, 1)
    data = (pb.f_msg(4, child) + pb.f_msg(5, pb.f_varint(1, 1)) + pb.f_msg(5, pb.f_varint(1, 2))
            + pb.f_double(50, 1.0) + pb.f_float(51, 1.0) + pb.f_msg(52, b"\x08\x01")
            + pb.f_varint(53, 3))
    d = decode(data, "Top", SCHEMA)
    assert d == {"child": {"n": 5, "names": ["a", "b"]}, "children": [{"n": 1}, {"n": 2}]}


def test_last_singular_value_wins_and_messages_merge():
    data = pb.f_str(1, "first") + pb.f_str(1, "second") + pb.f_msg(4, pb.f_varint(1, 1)) \
        + pb.f_msg(4, pb.f_str(2, "x"))
    d = decode(data, "Top", SCHEMA)
    assert d["name"] == "second"
    assert d["child"] == {"n": 1, "names": ["x"]}


@pytest.mark.parametrize("data, words", [
    (pb.f_str(1, "hello")[:-1], "truncated"),
    (b"\x08\xff\xff", "truncated varint"),
    (b"\x0b\x00", "wire type 3"),
    (b"\x00\x00", "field number 0"),
    (pb.key(11, 5) + b"\x00\x00", "truncated 4-byte"),
    (pb.key(9, 1) + b"\x00" * 7, "truncated 8-byte"),
    (pb.f_bytes(1, b"\xff\xfe"), "UTF-8"),
    (pb.f_varint(1, 3), "expected a length-delimited"),
    (pb.f_bytes(3, b"\x00" * 6), "whole number of 4-byte"),
    (b"\x80" * 11, "longer than 10 bytes"),
])
def test_malformed_data_is_a_clear_error(data, words):
    with pytest.raises(ProtobufError, match=words):
        decode(data, "Top", SCHEMA)


def test_iter_fields_returns_views_not_copies():
    payload = np.arange(1000, dtype="<f4").tobytes()
    ((field, wire, value),) = list(iter_fields(pb.f_bytes(3, payload)))
    assert (field, wire) == (3, 2) and isinstance(value, memoryview) and bytes(value) == payload


# --- text format -------------------------------------------------------------------------------

def test_text_format_fields_blocks_lists_comments():
    text = """
    # a comment
    name: "net" 'work'   # adjacent strings concatenate
    ints: -3 ints: [4, 5]
    values: 1e-4 values: 2.5f values: 3
    child { n: 7 names: "a\\"b" }
    children: { n: 1 } children < n: 2 >
    flag: true mode: B x: 0.1 big: 12;
    unknown_field { deep { deeper: 1 } } other_unknown: "x"
    """
    d = parse_text(text, "Top", SCHEMA)
    assert d["name"] == "network"
    assert d["ints"] == [-3, 4, 5]
    np.testing.assert_array_equal(d["values"], np.array([1e-4, 2.5, 3], dtype=np.float32))
    assert d["child"] == {"n": 7, "names": ['a"b']}
    assert d["children"] == [{"n": 1}, {"n": 2}]
    assert d["flag"] is True and d["mode"] == "B" and d["x"] == 0.1 and d["big"] == 12


@pytest.mark.parametrize("text, words", [
    ("child { n: 1", "missing '}'"),
    ("mode: C", "not one of"),
    ("ints: 1.5", "not a valid int"),
    ("big: -1", "not a valid uint"),
    ("name: 3", "not a valid string"),
    ("child: 3", "needs a { ... } block"),
    ("flag { }", "not a message block"),
    ("name: \"x\" $", "unexpected character"),
    ("name", "has no value"),
])
def test_text_format_errors(text, words):
    with pytest.raises(ProtobufError, match=words):
        parse_text(text, "Top", SCHEMA)
