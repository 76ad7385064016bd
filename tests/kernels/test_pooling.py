"""max_pool2d (with switches), max_unpool2d and avg_pool2d.

Three layers of checks: the Numba kernel against its NumPy twin over a grid of small shapes;
both against PyTorch (small shapes, plus the pools of ZFNet and SqueezeNet at their real sizes);
and the rules PyTorch does not pin down for us (unpooling SUMS where windows overlap) against
torch autograd's max-pool gradient, which sums too.
"""
import importlib
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zfnet.kernels import ZFNetError, avg_pool2d, max_pool2d, max_unpool2d, pool_output_size, relu
from zfnet.kernels.max_pool2d import (_group_size, _max_pool2d_parallel, _max_pool2d_serial,
                                      max_pool2d_reference)
from zfnet.kernels.max_unpool2d import max_unpool2d_cpu

torch.set_num_threads(2)

# (kernel, padding) pairs legal under PyTorch's padding <= kernel // 2.
KERNEL_PADDING = [(2, 0), (2, 1), (3, 0), (3, 1), (5, 0), (5, 1), (5, 2), (1, 0)]
GRID = [
    (k, s, p, n, ceil)
    for (k, p), s, n, ceil in itertools.product(KERNEL_PADDING, (1, 2, 3, 4), (1, 3), (False, True))
]


def _x(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _torch_pool(x, k, s, p, ceil):
    y, idx = F.max_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil, return_indices=True)
    return y.numpy(), idx.numpy()


# --------------------------------------------------------------------------------------------
# Output size
# --------------------------------------------------------------------------------------------

def test_pool_output_size_equals_pytorch_for_both_rounding_rules():
    checked = 0
    for n in range(1, 14):
        for (k, p), s, ceil in itertools.product(KERNEL_PADDING + [(4, 2), (3, 1), (6, 3)],
                                                 (1, 2, 3, 4), (False, True)):
            if n + 2 * p < k:
                with pytest.raises(ZFNetError, match="larger than the padded input"):
                    pool_output_size((n, n), k, s, p, ceil)
                continue
            want = F.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, ceil_mode=ceil).shape[2:]
            assert pool_output_size((n, n), k, s, p, ceil) == tuple(want), (n, k, s, p, ceil)
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize("hw, k, s, p, ceil, want", [
    ((110, 110), 3, 2, 0, True, (55, 55)),     # ZFNet pool1 (Caffe rounding)
    ((110, 110), 3, 2, 1, False, (55, 55)),    # ... or with padding 1
    ((26, 26), 3, 2, 0, True, (13, 13)),       # ZFNet pool2
    ((13, 13), 3, 2, 0, True, (6, 6)),         # ZFNet pool5
    ((111, 111), 3, 2, 0, True, (55, 55)),     # SqueezeNet pool1
    ((5, 5), 2, 2, 1, True, (3, 3)),           # ceil gives 4, but a 4th window would start in the right pad
])
def test_pool_output_size_on_the_papers_layers(hw, k, s, p, ceil, want):
    assert pool_output_size(hw, k, s, p, ceil) == want


# --------------------------------------------------------------------------------------------
# max_pool2d
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k, s, p, n, ceil", GRID)
def test_max_pool2d_twins_and_pytorch_agree(rng, k, s, p, n, ceil):
    x = _x(rng, (n, 2, 9, 11))
    y_ref, sw_ref = max_pool2d(x, k, s, p, ceil, backend="reference")
    y_cpu, sw_cpu = max_pool2d(x, k, s, p, ceil, backend="cpu")
    y_t, sw_t = _torch_pool(x, k, s, p, ceil)
    assert y_cpu.dtype == np.float32 and sw_cpu.dtype == np.int64
    assert y_cpu.shape == y_t.shape == (n, 2, *pool_output_size((9, 11), k, s, p, ceil))
    np.testing.assert_array_equal(y_cpu, y_ref)
    np.testing.assert_array_equal(sw_cpu, sw_ref)
    np.testing.assert_array_equal(y_cpu, y_t)
    np.testing.assert_array_equal(sw_cpu, sw_t)
    # Every switch points at the value it reports.
    flat = x.reshape(n, 2, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, sw_cpu.reshape(n, 2, -1), 2), y_cpu.reshape(n, 2, -1))


@pytest.mark.parametrize("k, s, p", [((3, 2), (1, 2), (1, 0)), ((2, 5), (3, 1), (0, 2)), ((4, 1), 2, (2, 0))])
def test_max_pool2d_rectangular_windows(rng, k, s, p):
    x = _x(rng, (2, 3, 10, 7))
    for ceil in (False, True):
        y, sw = max_pool2d(x, k, s, p, ceil)
        y_ref, sw_ref = max_pool2d(x, k, s, p, ceil, backend="reference")
        y_t, sw_t = _torch_pool(x, k, s, p, ceil)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(sw, sw_ref)
        np.testing.assert_array_equal(y, y_t)
        np.testing.assert_array_equal(sw, sw_t)


def test_max_pool2d_stride_defaults_to_kernel_size(rng):
    x = _x(rng, (1, 2, 8, 8))
    y, sw = max_pool2d(x, 2)
    y2, sw2 = max_pool2d(x, 2, 2)
    assert y.shape == (1, 2, 4, 4)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(sw, sw2)


REAL_POOLS = [
    ("zfnet pool1 (round up)", (1, 96, 110, 110), 3, 2, 0, True),
    ("zfnet pool1 (pad 1)", (1, 96, 110, 110), 3, 2, 1, False),
    ("zfnet pool2", (1, 256, 26, 26), 3, 2, 0, True),
    ("zfnet pool5", (1, 256, 13, 13), 3, 2, 0, True),
    ("squeezenet pool1", (1, 96, 111, 111), 3, 2, 0, True),
]


@pytest.mark.parametrize("name, shape, k, s, p, ceil", REAL_POOLS, ids=[r[0] for r in REAL_POOLS])
def test_max_pool2d_equals_pytorch_at_real_layer_shapes(rng, name, shape, k, s, p, ceil):
    # ReLU'd activations: many exact zeros, so the tie rule is exercised at scale too.
    x = np.maximum(_x(rng, shape), 0)
    y, sw = max_pool2d(x, k, s, p, ceil)
    y_t, sw_t = _torch_pool(x, k, s, p, ceil)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(sw, sw_t)
    y_ref, sw_ref = max_pool2d(x, k, s, p, ceil, backend="reference")
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(sw, sw_ref)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("k, s, p, ceil", [(3, 2, 0, True), (3, 2, 1, False), (2, 2, 1, True), (3, 1, 1, False)])
def test_ties_on_a_constant_plane_pick_each_windows_first_real_input(backend, k, s, p, ceil):
    h, w = 7, 8
    x = np.full((1, 2, h, w), 0.5, dtype=np.float32)
    y, sw = max_pool2d(x, k, s, p, ceil, backend=backend)
    ho, wo = y.shape[2:]
    # Independently: the top-left corner of each window, clipped into the image.
    want = np.array([[max(i * s - p, 0) * w + max(j * s - p, 0) for j in range(wo)] for i in range(ho)])
    np.testing.assert_array_equal(sw, np.broadcast_to(want, sw.shape))
    np.testing.assert_array_equal(sw, _torch_pool(x, k, s, p, ceil)[1])
    assert np.all(y == 0.5)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_ties_between_repeated_maxima_go_to_the_first_in_row_major_order(rng, backend):
    # Values from {0, 1, 2}: most windows hold their maximum more than once.
    x = rng.integers(0, 3, size=(3, 4, 11, 10)).astype(np.float32)
    for k, s, p, ceil in [(3, 2, 0, True), (3, 2, 1, False), (3, 1, 0, False), (2, 2, 0, False), (5, 3, 2, True)]:
        y, sw = max_pool2d(x, k, s, p, ceil, backend=backend)
        np.testing.assert_array_equal(sw, _torch_pool(x, k, s, p, ceil)[1])
        # Independently: np.argmax over each clipped window returns its first maximum.
        h, w = x.shape[2:]
        for i, j in itertools.product(range(y.shape[2]), range(y.shape[3])):
            h0, w0 = max(i * s - p, 0), max(j * s - p, 0)
            h1, w1 = min(i * s - p + k, h), min(j * s - p + k, w)
            win = x[:, :, h0:h1, w0:w1].reshape(3, 4, -1)
            a = win.argmax(axis=2)
            want = (h0 + a // (w1 - w0)) * w + w0 + a % (w1 - w0)
            np.testing.assert_array_equal(sw[:, :, i, j], want)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_nan_and_minus_inf_follow_pytorch(rng, backend):
    x = _x(rng, (2, 3, 9, 9))
    x[0, 0, 4, 4] = np.nan
    x[1, 2, 0, :3] = np.nan           # three NaNs in one 3x3 window: the LAST one is the switch
    x[1, 1, 4:7, 4:7] = -np.inf       # a 3x3 window of nothing but -inf
    for k, s, p, ceil in [(3, 2, 0, True), (3, 2, 1, False), (2, 1, 0, False), (3, 1, 1, True)]:
        y, sw = max_pool2d(x, k, s, p, ceil, backend=backend)
        y_t, sw_t = _torch_pool(x, k, s, p, ceil)
        np.testing.assert_array_equal(y, y_t)     # NaN == NaN for assert_array_equal
        np.testing.assert_array_equal(sw, sw_t)
    y, sw = max_pool2d(x, 3, 2, 0, True, backend=backend)
    assert np.isnan(y[0, 0, 2, 2]) and sw[0, 0, 2, 2] == 4 * 9 + 4
    assert np.isnan(y[1, 2, 0, 0]) and sw[1, 2, 0, 0] == 2
    # Window (2, 2) covers rows and cols 4..6: all -inf, so -inf with the switch at its first input.
    assert y[1, 1, 2, 2] == -np.inf and sw[1, 1, 2, 2] == 4 * 9 + 4


# The CPU kernel's polyphase scan (kernels/max_pool2d.py): groups of planes, a partial last group,
# the serial and the parallel driver, and borders (padding, round-up overhang) that hold NaNs and
# ties, all bit-equal to the twin.

def _hard_values(rng, shape):
    """Ties (values from {0, 1, 2}), NaNs and -inf everywhere, borders included."""
    x = rng.integers(0, 3, size=shape).astype(np.float32)
    x[rng.random(shape) < 0.08] = np.nan
    x[rng.random(shape) < 0.15] = -np.inf
    return x


def _call(kernel, x, k, s, p, ho, wo, *split, rectify=False, record=True):
    """Run a raw kernel (serial or parallel) on fresh outputs; -> (y, switches or None)."""
    n, c = x.shape[:2]
    y = np.full((n, c, ho, wo), np.nan, np.float32)
    sw = np.full((n, c, ho, wo) if record else (1, 1, 1, 1), -1, np.int64)
    kernel(x, y, sw, k, k, s, s, p, p, *split, rectify, record)
    return y, (sw if record else None)


def _kernel_runs(x, k, s, p, ceil, rectify=False, record=True):
    """(name, y, switches) of every way the CPU kernel can split the planes of x."""
    ho, wo = pool_output_size(x.shape[2:], k, s, p, ceil)
    args = (x, k, s, p, ho, wo)
    flags = dict(rectify=rectify, record=record)
    planes = x.shape[0] * x.shape[1]
    g = _group_size(planes, k, k, s, s, ho, wo)
    runs = [("serial, natural groups", *_call(_max_pool2d_serial, *args, g, **flags)),
            ("serial, one plane per group", *_call(_max_pool2d_serial, *args, 1, **flags))]
    if planes >= 3:
        runs.append(("serial, partial last group", *_call(_max_pool2d_serial, *args, planes - 1, **flags)))
        runs.append(("parallel, 2 chunks of 1-plane groups", *_call(_max_pool2d_parallel, *args, 1, 2, **flags)))
        runs.append(("parallel, 3 chunks, partial group", *_call(_max_pool2d_parallel, *args, 2, 3, **flags)))
    return runs


# Odd and even sizes, and a plane only 2 rows high (no full window for the larger kernels).
POLYPHASE_GRID = [(hw, *case) for hw in ((9, 11), (8, 7), (2, 13)) for case in GRID if min(hw) + 2 * case[2] >= case[0]]


@pytest.mark.parametrize("hw, k, s, p, n, ceil", POLYPHASE_GRID)
def test_max_pool2d_polyphase_kernel_every_split_equals_the_twin(rng, hw, k, s, p, n, ceil):
    for x in (_x(rng, (n, 3, *hw)), _hard_values(rng, (n, 3, *hw))):
        ho, wo = pool_output_size(hw, k, s, p, ceil)
        y_ref, sw_ref = max_pool2d_reference(x, (k, k), (s, s), (p, p), (ho, wo))
        for name, y, sw in _kernel_runs(x, k, s, p, ceil):
            np.testing.assert_array_equal(y, y_ref, err_msg=name)
            np.testing.assert_array_equal(sw, sw_ref, err_msg=name)


@pytest.mark.parametrize("hw, k, s, p, n, ceil", POLYPHASE_GRID[::3])
def test_max_pool2d_relu_input_and_no_switches_every_split(rng, hw, k, s, p, n, ceil):
    """relu_input pools relu(x) exactly (switches too: ties among the zeros go to the first);
    without switches the maxima are the same bits."""
    for x in (_x(rng, (n, 3, *hw)), _hard_values(rng, (n, 3, *hw)) - np.float32(1)):
        ho, wo = pool_output_size(hw, k, s, p, ceil)
        y_ref, sw_ref = max_pool2d_reference(relu(x, backend="reference"), (k, k), (s, s), (p, p), (ho, wo))
        for name, y, sw in _kernel_runs(x, k, s, p, ceil, rectify=True):
            np.testing.assert_array_equal(y, y_ref, err_msg=name)
            np.testing.assert_array_equal(sw, sw_ref, err_msg=name)
        y_plain, _ = max_pool2d_reference(x, (k, k), (s, s), (p, p), (ho, wo))
        for rectify, want in ((False, y_plain), (True, y_ref)):
            for name, y, sw in _kernel_runs(x, k, s, p, ceil, rectify=rectify, record=False):
                assert sw is None
                np.testing.assert_array_equal(y, want, err_msg=name)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_max_pool2d_public_flags(rng, backend):
    x = _hard_values(rng, (2, 4, 13, 13)) - np.float32(1)
    y, sw = max_pool2d(relu(x), 3, 2, 0, True, backend=backend)
    y2, sw2 = max_pool2d(x, 3, 2, 0, True, backend=backend, relu_input=True)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(sw2, sw)
    y3 = max_pool2d(x, 3, 2, 0, True, backend=backend, relu_input=True, return_switches=False)
    assert isinstance(y3, np.ndarray)
    np.testing.assert_array_equal(y3, y)
    with pytest.raises(ZFNetError, match="relu_input must be True or False"):
        max_pool2d(x, 3, 2, backend=backend, relu_input=1)
    with pytest.raises(ZFNetError, match="return_switches must be True or False"):
        max_pool2d(x, 3, 2, backend=backend, return_switches="no")


@pytest.mark.parametrize("k, s, p, ceil", [(3, 2, 0, True), (3, 2, 1, False), (3, 2, 1, True), (2, 2, 1, True),
                                           (5, 3, 2, True), (3, 1, 1, False)])
def test_max_pool2d_nans_and_ties_on_borders_and_in_the_interior(k, s, p, ceil):
    """Hand-placed: the last NaN of a window wins even in a padded corner or a round-up overhang."""
    h, w = 11, 12
    x = np.zeros((2, 3, h, w), dtype=np.float32)          # ties everywhere: first real input wins
    x[0, 0, 0, 0] = x[0, 0, 0, 1] = np.nan                # top-left corner (padded windows)
    x[0, 1, h - 1, w - 2:] = np.nan                       # bottom-right corner (round-up overhang)
    x[0, 2, 5, 5] = x[0, 2, 5, 6] = x[0, 2, 6, 5] = np.nan    # interior
    x[1, 0, :, 0] = 7.0                                   # a tied column on the left border
    x[1, 1, h - 1, :] = 7.0                               # a tied row on the bottom border
    x[1, 2] = -np.inf                                     # all -inf: switch at each window's first input
    y_ref, sw_ref = max_pool2d(x, k, s, p, ceil, backend="reference")
    y_t, sw_t = _torch_pool(x, k, s, p, ceil)
    np.testing.assert_array_equal(y_ref, y_t)
    np.testing.assert_array_equal(sw_ref, sw_t)
    for name, y, sw in _kernel_runs(x, k, s, p, ceil):
        np.testing.assert_array_equal(y, y_ref, err_msg=name)
        np.testing.assert_array_equal(sw, sw_ref, err_msg=name)


@pytest.mark.parametrize("name, shape, k, s, p, ceil", REAL_POOLS, ids=[r[0] for r in REAL_POOLS])
def test_max_pool2d_batched_real_shapes_with_nans_take_the_parallel_path(rng, name, shape, k, s, p, ceil):
    x = np.maximum(_x(rng, (3, *shape[1:])), 0)
    x[rng.random(x.shape) < 1e-3] = np.nan
    y, sw = max_pool2d(x, k, s, p, ceil)
    y_t, sw_t = _torch_pool(x, k, s, p, ceil)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(sw, sw_t)
    ho, wo = y.shape[2:]
    y_par, sw_par = _call(_max_pool2d_parallel, x, k, s, p, ho, wo,
                          _group_size(x.shape[0] * x.shape[1], k, k, s, s, ho, wo), 2)
    np.testing.assert_array_equal(y_par, y_t)
    np.testing.assert_array_equal(sw_par, sw_t)


# --------------------------------------------------------------------------------------------
# max_unpool2d
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k, s, p, n, ceil", GRID)
def test_max_unpool2d_twins_agree_bit_for_bit(rng, k, s, p, n, ceil):
    x = _x(rng, (n, 2, 9, 11))
    _, sw = max_pool2d(x, k, s, p, ceil)
    g = _x(rng, sw.shape)
    u_ref = max_unpool2d(g, sw, (9, 11), backend="reference")
    u_cpu = max_unpool2d(g, sw, (9, 11), backend="cpu")
    assert u_cpu.shape == (n, 2, 9, 11) and u_cpu.dtype == np.float32
    np.testing.assert_array_equal(u_cpu, u_ref)


@pytest.mark.parametrize("k, s, p, n, ceil", GRID)
def test_max_unpool2d_is_the_gradient_of_max_pool2d(rng, k, s, p, n, ceil):
    """unpool(g, switches) == d/dx sum(maxpool(x) * g): torch autograd sums overlapping windows."""
    x = _x(rng, (n, 2, 9, 11))
    _, sw = max_pool2d(x, k, s, p, ceil)
    g = _x(rng, sw.shape)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    (F.max_pool2d(xt, k, s, p, ceil_mode=ceil) * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(max_unpool2d(g, sw, (9, 11)), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, shape, k, s, p, ceil", REAL_POOLS, ids=[r[0] for r in REAL_POOLS])
def test_max_unpool2d_at_real_layer_shapes(rng, name, shape, k, s, p, ceil):
    x = _x(rng, shape)
    _, sw = max_pool2d(x, k, s, p, ceil)
    g = _x(rng, sw.shape)
    u = max_unpool2d(g, sw, shape[2:])
    # The summing rule, against autograd.
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    (F.max_pool2d(xt, k, s, p, ceil_mode=ceil) * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(u, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    # torch's max_unpool2d writes instead of adding: equal where a position was selected once.
    u_t = F.max_unpool2d(torch.from_numpy(g), torch.from_numpy(sw), s, output_size=shape[2:]).numpy()
    counts = np.zeros((shape[0] * shape[1], shape[2] * shape[3]), dtype=np.int64)
    np.add.at(counts, (np.arange(counts.shape[0])[:, None], sw.reshape(counts.shape[0], -1)), 1)
    once = (counts == 1).reshape(shape)
    assert (counts > 1).any(), "3x3 stride-2 windows overlap, so some inputs win twice"
    np.testing.assert_array_equal(u[once], u_t[once])
    assert np.all(u[(counts == 0).reshape(shape)] == 0)
    np.testing.assert_array_equal(u, max_unpool2d(g, sw, shape[2:], backend="reference"))


def test_max_unpool2d_equals_pytorch_for_non_overlapping_windows(rng):
    x = _x(rng, (3, 5, 12, 10))
    y, sw = max_pool2d(x, 2, 2)
    u_t = F.max_unpool2d(torch.from_numpy(y), torch.from_numpy(sw), 2, output_size=(12, 10)).numpy()
    np.testing.assert_array_equal(max_unpool2d(y, sw, (12, 10)), u_t)
    np.testing.assert_array_equal(max_unpool2d(y, sw, (12, 10), backend="reference"), u_t)


def test_max_unpool2d_sums_every_duplicate_and_has_no_race(rng):
    """Every switch of a plane points at one position: all the plane's values pile up there."""
    n, c, ho, wo = 4, 16, 20, 20
    g = _x(rng, (n, c, ho, wo))
    sw = np.zeros((n, c, ho, wo), dtype=np.int64)
    sw[..., 1::2] = 7
    runs = [max_unpool2d(g, sw, (5, 5)) for _ in range(5)]
    for u in runs[1:]:
        np.testing.assert_array_equal(u, runs[0])
    np.testing.assert_array_equal(runs[0], max_unpool2d(g, sw, (5, 5), backend="reference"))
    np.testing.assert_allclose(runs[0][..., 0, 0], g[..., 0::2].sum(axis=(2, 3), dtype=np.float64), rtol=1e-5, atol=5e-5)
    np.testing.assert_allclose(runs[0][..., 1, 2], g[..., 1::2].sum(axis=(2, 3), dtype=np.float64), rtol=1e-5, atol=5e-5)
    assert np.count_nonzero(runs[0]) == 2 * n * c


def test_max_unpool2d_parallel_kernel_is_deterministic_on_a_real_pool(rng):
    x = np.maximum(_x(rng, (2, 96, 55, 55)), 0)
    _, sw = max_pool2d(x, 3, 2, 0, True)
    g = _x(rng, sw.shape)
    first = max_unpool2d_cpu(g, sw, 55, 55)
    for _ in range(4):
        np.testing.assert_array_equal(max_unpool2d_cpu(g, sw, 55, 55), first)


def test_max_unpool2d_accepts_int32_switches(rng):
    x = _x(rng, (2, 3, 9, 9))
    y, sw = max_pool2d(x, 3, 2, 0, True)
    for backend in ("reference", "cpu"):
        np.testing.assert_array_equal(max_unpool2d(y, sw.astype(np.int32), (9, 9), backend=backend),
                                      max_unpool2d(y, sw, (9, 9), backend=backend))


# --------------------------------------------------------------------------------------------
# avg_pool2d
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("k, s, p, n, ceil", GRID)
def test_avg_pool2d_twins_and_pytorch_agree(rng, k, s, p, n, ceil, count_include_pad):
    x = _x(rng, (n, 2, 9, 11))
    y_ref = avg_pool2d(x, k, s, p, ceil, count_include_pad, backend="reference")
    y_cpu = avg_pool2d(x, k, s, p, ceil, count_include_pad, backend="cpu")
    y_t = F.avg_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil, count_include_pad=count_include_pad).numpy()
    assert y_cpu.dtype == np.float32 and y_cpu.shape == y_t.shape
    np.testing.assert_allclose(y_cpu, y_ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y_cpu, y_t, rtol=1e-5, atol=1e-6)


def test_avg_pool2d_divisor_in_ceil_mode_at_the_border():
    """The divisor counts zero padding but not the part of a ceil-mode window past the padding."""
    # H=W=6, k=3, s=2, p=1, ceil: 4 windows per axis, starting at -1, 1, 3, 5.
    x = np.ones((1, 1, 6, 6), dtype=np.float32)
    got = avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True)
    assert got.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(got[0, 0, 0, 0], 4 / 9, rtol=1e-6)   # rows/cols -1..1: 2x2 ones, 3x3 counted
    np.testing.assert_allclose(got[0, 0, 1, 1], 1.0, rtol=1e-6)     # fully inside
    np.testing.assert_allclose(got[0, 0, 3, 3], 1 / 4, rtol=1e-6)   # rows/cols 5..7 cut at 6 (= H + p): 1 one, 2x2 counted
    np.testing.assert_allclose(got, F.avg_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True).numpy(), rtol=1e-6)
    # H=W=8, k=3, s=2, p=0, ceil: the last window starts at 6 and runs past the image (no padding
    # to count), so it averages its 2x2 real cells: 1.0, not 4/9.
    x8 = np.ones((1, 1, 8, 8), dtype=np.float32)
    got8 = avg_pool2d(x8, 3, 2, 0, ceil_mode=True)
    assert got8.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(got8, 1.0, rtol=1e-6)
    np.testing.assert_allclose(got8, F.avg_pool2d(torch.from_numpy(x8), 3, 2, 0, ceil_mode=True).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name, shape, k, s, p, ceil", REAL_POOLS[:3], ids=[r[0] for r in REAL_POOLS[:3]])
def test_avg_pool2d_at_real_layer_shapes(rng, name, shape, k, s, p, ceil):
    x = _x(rng, shape)
    for cip in (True, False):
        y = avg_pool2d(x, k, s, p, ceil, cip)
        y_t = F.avg_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil, count_include_pad=cip).numpy()
        np.testing.assert_allclose(y, y_t, rtol=1e-5, atol=1e-6)
    # SqueezeNet's global pool as a 13x13 average pool.
    x13 = _x(rng, (2, 1000, 13, 13))
    np.testing.assert_allclose(avg_pool2d(x13, 13, 1)[..., 0, 0], x13.mean(axis=(2, 3), dtype=np.float64),
                               rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# Arguments and inputs
# --------------------------------------------------------------------------------------------

def _x4():
    return np.zeros((1, 2, 6, 6), dtype=np.float32)


BAD_POOL_CALLS = [
    ("3-D x", lambda f: f(np.zeros((2, 6, 6), np.float32), 2), "must have 4 dimensions"),
    ("float64 x", lambda f: f(np.zeros((1, 2, 6, 6)), 2), "must be float32"),
    ("strided x", lambda f: f(np.zeros((1, 2, 6, 12), np.float32)[..., ::2], 2), "C-contiguous"),
    ("list x", lambda f: f([[[[1.0]]]], 1), "numpy array"),
    ("empty batch", lambda f: f(np.zeros((0, 2, 6, 6), np.float32), 2), "N, C, H, W >= 1"),
    ("kernel > input", lambda f: f(_x4(), 7), "larger than the padded input"),
    ("kernel 0", lambda f: f(_x4(), 0), "kernel_size must be >= 1"),
    ("stride 0", lambda f: f(_x4(), 2, 0), "stride must be >= 1"),
    ("negative padding", lambda f: f(_x4(), 3, 1, -1), "padding must be >= 0"),
    ("padding > kernel/2", lambda f: f(_x4(), 3, 1, 2), "at most half the kernel"),
    ("float kernel", lambda f: f(_x4(), 2.0), "kernel_size must be an int"),
    ("ceil_mode str", lambda f: f(_x4(), 2, 2, 0, "yes"), "ceil_mode must be True or False"),
    ("unknown backend", lambda f: f(_x4(), 2, backend="gpu"), "unknown kernel backend"),
]


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d], ids=["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("what, call, match", BAD_POOL_CALLS, ids=[b[0] for b in BAD_POOL_CALLS])
def test_bad_pool_arguments_raise_zfnet_error(op, what, call, match):
    with pytest.raises(ZFNetError, match=match):
        call(op)


def _pooled():
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
    return max_pool2d(x, 2)


BAD_UNPOOL_CALLS = [
    ("float switches", lambda y, s: max_unpool2d(y, s.astype(np.float32), (6, 6)), "int64 \\(or int32\\)"),
    ("uint8 switches", lambda y, s: max_unpool2d(y, s.astype(np.uint8), (6, 6)), "int64 \\(or int32\\)"),
    ("list switches", lambda y, s: max_unpool2d(y, s.tolist(), (6, 6)), "int64 \\(or int32\\)"),
    ("switch shape", lambda y, s: max_unpool2d(y, s[:, :, :2].copy(), (6, 6)), "must have y's shape"),
    ("switch too large", lambda y, s: max_unpool2d(y, s, (5, 5)), "must lie in \\[0, 25\\)"),
    ("negative switch", lambda y, s: max_unpool2d(y, s - 100, (6, 6)), "must lie in \\[0, 36\\)"),
    ("bad output_size", lambda y, s: max_unpool2d(y, s, (6, 0)), "output_size must be >= 1"),
    ("output_size float", lambda y, s: max_unpool2d(y, s, 6.0), "output_size must be an int"),
    ("float64 y", lambda y, s: max_unpool2d(y.astype(np.float64), s, (6, 6)), "y must be float32"),
    ("3-D y", lambda y, s: max_unpool2d(y[0], s[0], (6, 6)), "y must have 4 dimensions"),
    ("strided switches", lambda y, s: max_unpool2d(y[..., :2], s[..., ::2], (6, 6)), "must have y's shape|C-contig"),
]


@pytest.mark.parametrize("what, call, match", BAD_UNPOOL_CALLS, ids=[b[0] for b in BAD_UNPOOL_CALLS])
def test_bad_unpool_arguments_raise_zfnet_error(what, call, match):
    y, s = _pooled()
    with pytest.raises(ZFNetError, match=match):
        call(y, s)


def test_strided_switches_are_refused():
    y, s = _pooled()
    wide = np.zeros((1, 1, 3, 6), dtype=np.int64)
    wide[..., ::2] = s
    with pytest.raises(ZFNetError, match="C-contiguous"):
        max_unpool2d(y, wide[..., ::2], (6, 6))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_inputs_are_never_modified(rng, backend):
    x = _x(rng, (2, 3, 9, 9))
    x0 = x.copy()
    y, sw = max_pool2d(x, 3, 2, 1, backend=backend)
    avg_pool2d(x, 3, 2, 1, True, False, backend=backend)
    y0, sw0 = y.copy(), sw.copy()
    u = max_unpool2d(y, sw, (9, 9), backend=backend)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(sw, sw0)
    assert not np.shares_memory(u, y) and not np.shares_memory(y, x)


DISPATCH = [
    ("max_pool2d", lambda x, b: max_pool2d(x, 3, 2, 1, True, backend=b)),
    ("avg_pool2d", lambda x, b: avg_pool2d(x, 3, 2, 1, True, backend=b)),
    ("max_unpool2d", lambda x, b: max_unpool2d(*max_pool2d(x, 3, 2), (7, 7), backend=b)),
]


@pytest.mark.parametrize("name, call", DISPATCH, ids=[d[0] for d in DISPATCH])
def test_each_backend_runs_its_own_implementation(rng, monkeypatch, name, call):
    """backend='cpu' runs the Numba kernel and never the twin; backend='reference' the reverse."""
    module = importlib.import_module(f"zfnet.kernels.{name}")
    x = _x(rng, (1, 2, 7, 7))

    def boom(*args):
        raise AssertionError("the wrong implementation was called")

    for backend, other in (("cpu", "reference"), ("reference", "cpu")):
        with monkeypatch.context() as m:
            m.setattr(module, f"{name}_{other}", boom)
            call(x, backend)
        with monkeypatch.context() as m:
            m.setattr(module, f"{name}_{backend}", boom)
            with pytest.raises(AssertionError, match="wrong implementation"):
                call(x, backend)
