"""Deep Compression's compressed_SqueezeNet.net: an independent encoder here, round trips through
it (including gaps longer than 15, bridged by filler entries), and damaged files."""
import numpy as np
import pytest

from zfnet import ZFNetError
from zfnet.convert import convert, deep_compression
from zfnet.net import get_architecture

LAYERS = ["conv1"] + [f"fire{f}/{p}" for f in range(2, 10)
                      for p in ("squeeze1x1", "expand1x1", "expand3x3")] + ["conv10"]


def entries(w, codebook):
    """(codes, gaps) storing the flat weight `w` (values from `codebook`, 0 = pruned).

    Each stored entry advances the position by gap + 1; a distance over 16 is bridged by filler
    entries (code 0, gap 15), as the format prescribes.
    """
    flat = w.ravel()
    positions = np.flatnonzero(flat)
    codes = np.searchsorted(codebook[1:], flat[positions]) + 1      # codebook[1:] is sorted
    assert np.array_equal(codebook[codes], flat[positions])
    gaps = np.diff(np.concatenate([[-1], positions])) - 1
    fillers = gaps // 16                                  # filler entries before each real one
    real = np.cumsum(fillers + 1) - 1                     # where the real entries land
    out_codes = np.zeros(len(codes) + int(fillers.sum()), dtype=np.uint8)
    out_gaps = np.full(out_codes.size, 15, dtype=np.uint8)
    out_codes[real] = codes
    out_gaps[real] = gaps - 16 * fillers
    return out_codes, out_gaps


def encode(layers):
    """The file bytes for [(codebook (256,), bias (O,), codes (n,), gaps (n,)), ...] in order."""
    counts = np.array([len(codes) for _, _, codes, _ in layers], dtype="<u4")
    parts = [counts.tobytes()]
    for codebook, bias, codes, gaps in layers:
        nibbles = np.zeros(2 * ((len(gaps) + 1) // 2), dtype=np.uint8)
        nibbles[: len(gaps)] = gaps
        packed = nibbles[0::2] | (nibbles[1::2] << 4)                 # low nibble first
        parts += [codebook.astype("<f4").tobytes(), bias.astype("<f4").tobytes(),
                  codes.astype(np.uint8).tobytes(), packed.astype(np.uint8).tobytes()]
    return b"".join(parts)


def random_model(rng):
    """{layer: (weight, bias, codebook)} with SqueezeNet's shapes, 70 % pruned, long zero runs."""
    shapes = get_architecture("squeezenet1_0").param_shapes()
    model = {}
    for name in LAYERS:
        shape = shapes[f"{name}.weight"]
        codebook = np.concatenate([[0.0], np.sort(rng.standard_normal(255))]).astype(np.float32)
        codes = rng.integers(1, 256, size=int(np.prod(shape)))
        codes[rng.random(codes.size) < 0.7] = 0
        start = rng.integers(0, codes.size)
        codes[start:start + 100] = 0                                 # a run needing 6 fillers
        w = codebook[codes].reshape(shape)
        bias = rng.standard_normal(shape[0]).astype(np.float32)
        model[name] = (w, bias, codebook)
    return model


@pytest.fixture
def model(rng):
    return random_model(rng)


def layer_records(model):
    return [(cb, b, *entries(w, cb)) for w, b, cb in (model[n] for n in LAYERS)]


def test_round_trip_through_an_independent_encoder(tmp_path, model):
    path = tmp_path / "random.net"
    path.write_bytes(encode(layer_records(model)))
    net = convert(path)
    assert net.arch == get_architecture("squeezenet1_0")
    assert net.meta["converter"] == "deep_compression"
    for name in LAYERS:
        w, b, _ = model[name]
        assert np.array_equal(net.params[f"{name}.weight"].view(np.uint32), w.view(np.uint32)), name
        assert np.array_equal(net.params[f"{name}.bias"], b), name
    assert deep_compression.looks_like(path)


def test_decoding_rule_on_a_hand_worked_example():
    # Entries at positions 0, 3, 20 (gaps 0, 2, 16 -> filler at 19, then gap 0), codes 1, 2, 3.
    codebook = np.arange(256, dtype=np.float32) / 10
    codes = np.array([1, 2, 0, 3], dtype=np.uint8)
    gaps = np.array([0, 2, 15, 0], dtype=np.uint8)
    w = deep_compression.decode_layer(codebook, codes, gaps, 24)
    want = np.zeros(24, np.float32)
    want[[0, 3, 20]] = [0.1, 0.2, 0.3]
    assert np.array_equal(w, want)
    assert np.array_equal(deep_compression.unpack_nibbles(np.array([0x21, 0x0F], np.uint8), 3), [1, 2, 15])


def test_real_file_layout(squeezenet_dir):
    data = (squeezenet_dir / "compressed_SqueezeNet.net").read_bytes()
    assert len(data) == 675763
    assert deep_compression.looks_like(squeezenet_dir / "compressed_SqueezeNet.net")
    assert not deep_compression.looks_like(squeezenet_dir / "squeezenet1_0.onnx")


@pytest.fixture
def real(squeezenet_dir):
    return (squeezenet_dir / "compressed_SqueezeNet.net").read_bytes()


@pytest.mark.parametrize("cut, words", [
    (lambda d: d[:-1], "truncated or damaged: layer conv10 needs"),
    (lambda d: d[: len(d) // 2], "truncated or damaged: layer fire"),
    (lambda d: d[:104], "truncated or damaged: layer conv1 needs"),
    (lambda d: d[:50], "not even the 104-byte header"),
    (lambda d: d + b"\x00", "1 bytes left over"),
    (lambda d: d + b"junk" * 100, "400 bytes left over"),
    (lambda d: b"", "empty"),
])
def test_truncated_and_padded_files(tmp_path, real, cut, words):
    path = tmp_path / "damaged.net"
    path.write_bytes(cut(real))
    with pytest.raises(ZFNetError, match=words) as e:
        deep_compression.convert(path)
    assert str(path) in str(e.value)


def test_position_past_the_end_of_a_tensor(tmp_path, model):
    records = layer_records(model)
    codebook, bias, codes, gaps = records[-1]
    # Two more filler entries after conv10's last weight walk off the end of its 512000 weights.
    extra = 512000 - (int(gaps.astype(np.int64).sum()) + len(gaps))
    n_fill = extra // 16 + 1
    records[-1] = (codebook, bias, np.concatenate([codes, np.zeros(n_fill, np.uint8)]),
                   np.concatenate([gaps, np.full(n_fill, 15, np.uint8)]))
    path = tmp_path / "past_end.net"
    path.write_bytes(encode(records))
    with pytest.raises(ZFNetError, match=r"past_end\.net: damaged: layer conv10 places an entry at position \d+, past the end"):
        deep_compression.convert(path)


def test_bad_codebooks_and_nan(tmp_path, model):
    records = layer_records(model)
    cb = records[3][0].copy()
    cb[0] = 0.5
    bad = records.copy()
    bad[3] = (cb, *records[3][1:])
    path = tmp_path / "codebook.net"
    path.write_bytes(encode(bad))
    with pytest.raises(ZFNetError, match="fire2/expand3x3's codebook entry 0 is 0.5"):
        deep_compression.convert(path)
    bias = records[0][1].copy()
    bias[0] = np.nan
    bad = records.copy()
    bad[0] = (records[0][0], bias, *records[0][2:])
    path.write_bytes(encode(bad))
    with pytest.raises(ZFNetError, match="layer conv1 has NaN"):
        deep_compression.convert(path)


def test_architecture_other_than_squeezenet_is_refused(squeezenet_dir):
    with pytest.raises(ZFNetError, match="always squeezenet1_0"):
        convert(squeezenet_dir / "compressed_SqueezeNet.net", architecture="alexnet")
