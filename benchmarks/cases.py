"""The one registry of benchmark cases, read by the benchmarks *and* the tests.

Each case builds its inputs once (`case.build()`) and returns a `Bench` holding two functions of
no arguments, `zfnet()` and `torch()`, that compute the same thing, plus `check(a, b)` that
asserts the two results agree. The benchmarks time exactly those two functions; the test
tests/test_benchmark_cases.py calls them and `check`, so what is timed is what is tested.

Cases:
- kernel/<arch>.<layer>/<op>: every conv (forward and transposed), max-pool (with switches),
  unpool (the max-pool adjoint), LRN (across channels: zfnet; within channel: zf_caffe) and linear
  layer of zfnet and squeezenet1_0, at its real shape, batch 1.
- forward/<arch>/b<N>: the full forward pass to class probabilities, batch 1 and 16.
- project/...: deconvnet projections (one conv5 unit; every map of a layer), see _project_cases.
- scan/...: a top-9 scan of 64 images.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from zfnet import kernels
from zfnet.net import Net, forward, get_architecture


@dataclass
class Bench:
    zfnet: Callable
    torch: Callable
    check: Callable
    flops: float = None         # floating-point operations of one call, where it applies
    images: int = None          # images processed by one call (for images/s)


@dataclass
class Case:
    name: str
    group: str
    build: Callable = field(repr=False)
    quick: bool = False         # part of `report.py --quick`


def _close(rtol=1e-4, atol_rel=1e-5):
    """check(a, b): |a - b| <= atol_rel * max|b| + rtol * |b| elementwise (float32 summation order)."""
    def check(a, b):
        from benchmarks.torch_ref import as_numpy
        a = [a] if not isinstance(a, tuple) else list(a)
        b = [b] if not isinstance(b, tuple) else list(b)
        for u, v in zip(a, b):
            u, v = np.asarray(as_numpy(u), np.float64), np.asarray(as_numpy(v), np.float64)
            assert u.shape == v.shape, f"shapes differ: {u.shape} vs {v.shape}"
            scale = max(np.abs(v).max(), 1e-30)
            err = np.abs(u - v) - rtol * np.abs(v)
            assert err.max() <= atol_rel * scale, f"max error {np.abs(u - v).max():.3g} at scale {scale:.3g}"
    return check


def _exact(a, b):
    from benchmarks.torch_ref import as_numpy
    np.testing.assert_array_equal(np.asarray(as_numpy(a)), np.asarray(as_numpy(b)))


def _rand(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# kernels at the real layer shapes
# ---------------------------------------------------------------------------------------------

def _conv_case(arch, layer, transposed):
    def build():
        import torch
        import torch.nn.functional as F
        rng = np.random.default_rng(0)
        shapes = arch.shapes
        (c, h, w) = shapes[layer.inputs[0]]
        (f, ho, wo) = shapes[layer.name]
        kh, kw = layer.kernel_size
        wgt = _rand(rng, (f, c // layer.groups, kh, kw), np.sqrt(2.0 / (c * kh * kw / layer.groups)))
        flops = 2.0 * f * ho * wo * (c // layer.groups) * kh * kw
        wt = torch.from_numpy(wgt)
        if not transposed:
            x, b = _rand(rng, (1, c, h, w)), _rand(rng, (f,), 0.1)
            xt, bt = torch.from_numpy(x), torch.from_numpy(b)
            return Bench(
                lambda: kernels.conv2d(x, wgt, b, layer.stride, layer.padding, layer.groups),
                lambda: F.conv2d(xt, wt, bt, layer.stride, layer.padding, 1, layer.groups),
                _close(), flops)
        y = _rand(rng, (1, f, ho, wo))
        yt = torch.from_numpy(y)
        # output_padding: the rows/columns the strided forward conv dropped at the far edge
        min_h = (ho - 1) * layer.stride[0] - 2 * layer.padding[0] + kh
        min_w = (wo - 1) * layer.stride[1] - 2 * layer.padding[1] + kw
        return Bench(
            lambda: kernels.conv_transpose2d(y, wgt, layer.stride, layer.padding, layer.groups, (h, w)),
            lambda: F.conv_transpose2d(yt, wt, None, layer.stride, layer.padding,
                                       (h - min_h, w - min_w), layer.groups),
            _close(), flops)
    op = "conv_transpose2d" if transposed else "conv2d"
    return Case(f"kernel/{arch.name}.{layer.name}/{op}", "kernel", build, quick=arch.name == "zfnet")


def _pool_case(arch, layer, unpool):
    def build():
        import torch
        import torch.nn.functional as F
        rng = np.random.default_rng(0)
        c, h, w = arch.shapes[layer.inputs[0]]
        x = _rand(rng, (1, c, h, w))
        xt = torch.from_numpy(x)
        args = (layer.kernel_size, layer.stride, layer.padding)
        if not unpool:
            def check(a, b):
                _close(0, 0)(a[0], b[0])
                _exact(a[1], b[1])
            return Bench(lambda: kernels.max_pool2d(x, *args, layer.ceil_mode),
                         lambda: F.max_pool2d(xt, *args, ceil_mode=layer.ceil_mode, return_indices=True),
                         check)
        y, switches = kernels.max_pool2d(x, *args, layer.ceil_mode)
        g = _rand(rng, y.shape)
        gt, st = torch.from_numpy(g), torch.from_numpy(switches.astype(np.int64))
        # torch's exact adjoint of max-pooling: the max-pool backward, which sums duplicates
        return Bench(
            lambda: kernels.max_unpool2d(g, switches, (h, w)),
            lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                gt, xt, list(layer.kernel_size), list(layer.stride), list(layer.padding), [1, 1],
                layer.ceil_mode, st),
            _close())
    op = "max_unpool2d" if unpool else "max_pool2d"
    return Case(f"kernel/{arch.name}.{layer.name}/{op}", "kernel", build, quick=arch.name == "zfnet")


def _lrn_case(arch, layer):
    def build():
        import torch
        from benchmarks.torch_ref import _lrn
        rng = np.random.default_rng(0)
        x = _rand(rng, (1, *arch.shapes[layer.inputs[0]]), 10.0)
        xt = torch.from_numpy(x)
        return Bench(
            lambda: kernels.lrn(x, layer.size, layer.alpha, layer.beta, layer.k, layer.within_channel),
            lambda: _lrn(layer, xt), _close())
    kind = "within" if layer.within_channel else "across"
    return Case(f"kernel/{arch.name}.{layer.name}/lrn_{kind}", "kernel", build, quick=True)


def _linear_case(arch, layer):
    def build():
        import torch
        import torch.nn.functional as F
        rng = np.random.default_rng(0)
        x = _rand(rng, (1, layer.in_features))
        w = _rand(rng, (layer.out_features, layer.in_features), np.sqrt(1.0 / layer.in_features))
        b = _rand(rng, (layer.out_features,), 0.1)
        xt, wt, bt = map(torch.from_numpy, (x, w, b))
        return Bench(lambda: kernels.linear(x, w, b), lambda: F.linear(xt, wt, bt), _close(),
                     2.0 * layer.in_features * layer.out_features)
    return Case(f"kernel/{arch.name}.{layer.name}/linear", "kernel", build, quick=True)


def _kernel_cases():
    cases, seen = [], set()
    for arch in (get_architecture("zfnet"), get_architecture("squeezenet1_0"), get_architecture("zf_caffe")):
        for layer in arch.layers:
            # one case per distinct shape and hyper-parameters (fire modules repeat shapes)
            key = (layer.op, arch.shapes[layer.inputs[0]] if layer.inputs else None, layer.describe().__repr__())
            if key in seen:
                continue
            seen.add(key)
            if arch.name == "zf_caffe":
                if layer.op == "lrn":          # the within-channel LRN only zf_caffe has
                    cases.append(_lrn_case(arch, layer))
                continue
            if layer.op == "conv":
                cases += [_conv_case(arch, layer, False), _conv_case(arch, layer, True)]
            elif layer.op == "maxpool":
                cases += [_pool_case(arch, layer, False), _pool_case(arch, layer, True)]
            elif layer.op == "lrn":
                cases.append(_lrn_case(arch, layer))
            elif layer.op == "linear":
                cases.append(_linear_case(arch, layer))
    return cases


# ---------------------------------------------------------------------------------------------
# the full forward pass
# ---------------------------------------------------------------------------------------------

def _forward_case(arch_name, batch):
    def build():
        import torch
        from benchmarks.torch_ref import torch_forward, torch_params
        arch = get_architecture(arch_name)
        net = Net.random(arch, seed=0)
        rng = np.random.default_rng(0)
        x = _rand(rng, (batch, *arch.input_shape), 50.0)
        xt, params = torch.from_numpy(x), torch_params(net)
        flops = batch * sum(
            2.0 * np.prod(arch.shapes[l.name]) * np.prod(net.params[f"{l.name}.weight"].shape[1:])
            for l in arch.layers if l.op in ("conv", "linear"))

        def run_torch():
            with torch.no_grad():
                return torch_forward(net, xt, params)
        return Bench(lambda: forward(net, x).output, run_torch, _close(1e-4, 1e-5), flops, batch)
    return Case(f"forward/{arch_name}/b{batch}", "forward", build, quick=batch == 1)


def _forward_cases():
    return [_forward_case(a, b) for a in ("zfnet", "squeezenet1_0") for b in (1, 16)]


CASES = _kernel_cases() + _forward_cases()


def get_case(name):
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(name)
