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
- project/<arch>.<layer>/...: deconvnet projections from one image's forward pass: one unit
  (zfnet: its receptive field only; PyTorch: autograd with the modified ReLU backward over the
  whole image), the same unit including the forward pass, and whole feature maps, batched.
- scan/<arch>.<layer>/top9_of_64: a top-9 scan of every map over 64 natural-statistics images.

The same registry on the GPU (``cases("cuda")``, report.py --device cuda): each builder takes a
Device that puts zfnet's inputs in numba device arrays and PyTorch's in CUDA tensors; both sides
wait for the GPU before a call returns (timings are real), zfnet runs with backend 'cuda', PyTorch
in full float32 (TF32 off, as zfnet computes) with a TF32 run beside it (``Bench.torch_tf32``).
Forward at batch 1, 16 and 128 there.
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
    torch_tf32: Callable = None  # GPU only: the torch side with TF32 allowed, for reference


class Device:
    """Where a case's two sides run. 'cpu': NumPy arrays and CPU tensors (the registry as it
    always was). 'cuda': zfnet's inputs as numba device arrays, PyTorch's as CUDA tensors."""

    def __init__(self, name="cpu"):
        self.name = name

    @property
    def cuda(self):
        return self.name == "cuda"

    def z(self, a):
        """A zfnet input: the NumPy array, or its device copy."""
        if not self.cuda:
            return a
        from numba import cuda
        return cuda.to_device(a)

    def t(self, a):
        """A PyTorch input: the NumPy array as a tensor, on the GPU for 'cuda'."""
        import torch
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.cuda() if self.cuda else t

    def params(self, net):
        from benchmarks.torch_ref import torch_params
        return {k: (v.cuda() if self.cuda else v) for k, v in torch_params(net).items()}

    def host(self, a):
        """A result as NumPy (device arrays copied back)."""
        from benchmarks.torch_ref import as_numpy
        return np.asarray(as_numpy(a))


CPU = Device("cpu")


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

def _conv_case(arch, layer, transposed, dev=CPU):
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
        wt, wgt = dev.t(wgt), dev.z(wgt)
        if not transposed:
            x, b = _rand(rng, (1, c, h, w)), _rand(rng, (f,), 0.1)
            xt, bt = dev.t(x), dev.t(b)
            x, b = dev.z(x), dev.z(b)
            return Bench(
                lambda: kernels.conv2d(x, wgt, b, layer.stride, layer.padding, layer.groups),
                lambda: F.conv2d(xt, wt, bt, layer.stride, layer.padding, 1, layer.groups),
                _close(), flops)
        y = _rand(rng, (1, f, ho, wo))
        yt, y = dev.t(y), dev.z(y)
        # output_padding: the rows/columns the strided forward conv dropped at the far edge
        min_h = (ho - 1) * layer.stride[0] - 2 * layer.padding[0] + kh
        min_w = (wo - 1) * layer.stride[1] - 2 * layer.padding[1] + kw
        return Bench(
            lambda: kernels.conv_transpose2d(y, wgt, layer.stride, layer.padding, layer.groups, (h, w)),
            lambda: F.conv_transpose2d(yt, wt, None, layer.stride, layer.padding,
                                       (h - min_h, w - min_w), layer.groups),
            _close(), flops)
    op = "conv_transpose2d" if transposed else "conv2d"
    return Case(f"kernel/{arch.name}.{layer.name}/{op}", "kernel", on(dev, build), quick=arch.name == "zfnet")


def _pool_case(arch, layer, unpool, dev=CPU):
    def build():
        import torch
        import torch.nn.functional as F
        rng = np.random.default_rng(0)
        c, h, w = arch.shapes[layer.inputs[0]]
        x = _rand(rng, (1, c, h, w))
        xt, xz = dev.t(x), dev.z(x)
        args = (layer.kernel_size, layer.stride, layer.padding)
        if not unpool:
            def check(a, b):
                _close(0, 0)(a[0], b[0])
                _exact(a[1], b[1])
            return Bench(lambda: kernels.max_pool2d(xz, *args, layer.ceil_mode),
                         lambda: F.max_pool2d(xt, *args, ceil_mode=layer.ceil_mode, return_indices=True),
                         check)
        y, switches = kernels.max_pool2d(x, *args, layer.ceil_mode)
        g = _rand(rng, y.shape)
        gt, st = dev.t(g), dev.t(switches.astype(np.int64))
        g, switches = dev.z(g), dev.z(switches)
        # torch's exact adjoint of max-pooling: the max-pool backward, which sums duplicates
        return Bench(
            lambda: kernels.max_unpool2d(g, switches, (h, w)),
            lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                gt, xt, list(layer.kernel_size), list(layer.stride), list(layer.padding), [1, 1],
                layer.ceil_mode, st),
            _close())
    op = "max_unpool2d" if unpool else "max_pool2d"
    return Case(f"kernel/{arch.name}.{layer.name}/{op}", "kernel", on(dev, build), quick=arch.name == "zfnet")


def _lrn_case(arch, layer, dev=CPU):
    def build():
        import torch
        from benchmarks.torch_ref import _lrn
        rng = np.random.default_rng(0)
        x = _rand(rng, (1, *arch.shapes[layer.inputs[0]]), 10.0)
        xt, x = dev.t(x), dev.z(x)
        return Bench(
            lambda: kernels.lrn(x, layer.size, layer.alpha, layer.beta, layer.k, layer.within_channel),
            lambda: _lrn(layer, xt), _close())
    kind = "within" if layer.within_channel else "across"
    return Case(f"kernel/{arch.name}.{layer.name}/lrn_{kind}", "kernel", on(dev, build), quick=True)


def _linear_case(arch, layer, dev=CPU):
    def build():
        import torch
        import torch.nn.functional as F
        rng = np.random.default_rng(0)
        x = _rand(rng, (1, layer.in_features))
        w = _rand(rng, (layer.out_features, layer.in_features), np.sqrt(1.0 / layer.in_features))
        b = _rand(rng, (layer.out_features,), 0.1)
        xt, wt, bt = map(dev.t, (x, w, b))
        x, w, b = map(dev.z, (x, w, b))
        return Bench(lambda: kernels.linear(x, w, b), lambda: F.linear(xt, wt, bt), _close(),
                     2.0 * layer.in_features * layer.out_features)
    return Case(f"kernel/{arch.name}.{layer.name}/linear", "kernel", on(dev, build), quick=True)


def _kernel_cases(dev=CPU):
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
                    cases.append(_lrn_case(arch, layer, dev))
                continue
            if layer.op == "conv":
                cases += [_conv_case(arch, layer, False, dev), _conv_case(arch, layer, True, dev)]
            elif layer.op == "maxpool":
                cases += [_pool_case(arch, layer, False, dev), _pool_case(arch, layer, True, dev)]
            elif layer.op == "lrn":
                cases.append(_lrn_case(arch, layer, dev))
            elif layer.op == "linear":
                cases.append(_linear_case(arch, layer, dev))
    return cases


# ---------------------------------------------------------------------------------------------
# the full forward pass
# ---------------------------------------------------------------------------------------------

def _forward_case(arch_name, batch, dev=CPU):
    def build():
        import torch
        from benchmarks.torch_ref import torch_forward
        arch = get_architecture(arch_name)
        net = Net.random(arch, seed=0)
        rng = np.random.default_rng(0)
        x = _rand(rng, (batch, *arch.input_shape), 50.0)
        xt, params, x = dev.t(x), dev.params(net), dev.z(x)
        flops = batch * sum(
            2.0 * np.prod(arch.shapes[l.name]) * np.prod(net.params[f"{l.name}.weight"].shape[1:])
            for l in arch.layers if l.op in ("conv", "linear"))

        def run_torch():
            with torch.no_grad():
                return torch_forward(net, xt, params)
        # probabilities of a random net on large inputs saturate (logits in the hundreds), so a
        # float32 rounding of the logits (~1e-7 relative) moves a probability by up to ~1e-4
        return Bench(lambda: forward(net, x, switches=False).output, run_torch, _close(1e-4, 1e-4), flops, batch)
    return Case(f"forward/{arch_name}/b{batch}", "forward", on(dev, build), quick=batch == 1)


def _forward_cases(dev=CPU):
    batches = (1, 16, 128) if dev.cuda else (1, 16)
    return [_forward_case(a, b, dev) for a in ("zfnet", "squeezenet1_0") for b in batches]


# ---------------------------------------------------------------------------------------------
# deconvnet projections
# ---------------------------------------------------------------------------------------------

def natural_images(n, shape, seed=0):
    """n random images with natural-image statistics: 1/f amplitude spectrum, random phase.

    (n, 3, H, W) float32, each channel scaled to mean 0 and std 50 (like mean-subtracted pixels on
    a 0..255 scale), the three channels correlated as colour channels are. Deterministic per seed.
    """
    c, h, w = shape
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(h, w))           # 1/f
    out = np.empty((n, c, h, w), np.float32)
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi, (c, h, w // 2 + 1))
        # a shared luminance field plus weaker per-channel fields
        lum = np.fft.irfft2(amplitude * np.exp(1j * phase[0]), s=(h, w))
        for ch in range(c):
            own = np.fft.irfft2(amplitude * np.exp(1j * phase[ch]), s=(h, w))
            img = lum + 0.3 * own
            out[i, ch] = (img - img.mean()) / (img.std() + 1e-12) * 50.0
    return out


def _project_setup(arch_name, layer, dev=CPU):
    """A random-weight net, one natural-ish image (NumPy, and where zfnet reads it), its forward
    pass kept for the deconvnet (on the device for 'cuda'), the layer's activations as NumPy."""
    arch = get_architecture(arch_name)
    net = Net.random(arch, seed=0)
    x = natural_images(1, arch.input_shape, seed=1)
    xz = dev.z(x)
    fwd = forward(net, xz, keep="all", upto=layer, backend="cuda" if dev.cuda else None)
    return net, x, xz, fwd, dev.host(fwd[layer])


def _project_unit_case(arch_name, layer, dev=CPU):
    """One unit of `layer` back to pixels, given the image's forward pass (both sides).

    The unit: the centre of the map strongest there (the centre has the largest receptive field
    inside the image, so this is the slowest unit for the cropped walk). zfnet walks only its
    receptive field (crop=True); PyTorch back-propagates the modified-ReLU graph over the whole
    image (torch.autograd.grad on a recorded forward pass, retain_graph=True), as a PyTorch user
    projecting units of one image would.
    """
    def build():
        import torch
        from benchmarks.torch_ref import torch_project_graph
        from zfnet.deconv import Unit, project
        net, x, xz, fwd, act = _project_setup(arch_name, layer, dev)
        cy, cx = act.shape[2] // 2, act.shape[3] // 2
        unit = Unit(0, int(np.argmax(act[0, :, cy, cx])), cy, cx)
        xt, out = torch_project_graph(net, dev.t(x), layer, params=dev.params(net))
        seed = torch.zeros_like(out)
        seed[0, unit.channel, cy, cx] = out[0, unit.channel, cy, cx].detach()

        def run_torch():
            return torch.autograd.grad(out, xt, seed, retain_graph=True)[0]
        return Bench(lambda: project(net, xz, layer, [unit], forward_result=fwd), run_torch,
                     _close(1e-4, 1e-5))
    return Case(f"project/{arch_name}.{layer}/one_unit", "project", on(dev, build), quick=True)


def _project_unit_e2e_case(arch_name, layer, dev=CPU):
    """The same unit end to end: forward pass (keeping what the deconvnet needs) + projection."""
    def build():
        import torch
        from benchmarks.torch_ref import torch_project
        from zfnet.deconv import Unit, project
        net, x, xz, fwd, act = _project_setup(arch_name, layer, dev)
        cy, cx = act.shape[2] // 2, act.shape[3] // 2
        unit = Unit(0, int(np.argmax(act[0, :, cy, cx])), cy, cx)
        xt, params = dev.t(x), dev.params(net)
        return Bench(lambda: project(net, xz, layer, [unit]),
                     lambda: torch_project(net, xt, layer, unit.channel, cy, cx, params=params),
                     _close(1e-4, 1e-5))
    return Case(f"project/{arch_name}.{layer}/one_unit_with_forward", "project", on(dev, build), quick=True)


def _project_maps_case(arch_name, layer, n_maps=None, chunk=16, torch_batching="vmap", dev=CPU):
    """Feature maps 0..n_maps-1 (default: every map) of `layer` for one image, each map whole.

    zfnet: one project() call with a whole_map Unit per map (the dense walk, 16 seeds at a time).
    PyTorch, `chunk` maps at a time, whichever batching is faster for the network (measured):
    "vmap" back-propagates the one recorded forward pass from a batch of seeds
    (torch.autograd.grad(..., is_grads_batched=True)); "copies" records the forward pass of
    `chunk` copies of the image and seeds one map in each (for ZFNet 2.5x faster than vmap, whose
    batched conv/pool backward rules are slow there).
    Every map of ZFNet's conv5 (256) takes ~20 s per side here, too long to time and test
    repeatedly, so that case takes the first 32 maps; the per-map cost is the same.
    """
    def build():
        import torch
        from benchmarks.torch_ref import torch_forward, torch_project_graph
        from zfnet.deconv import project, whole_map
        net, x, xz, fwd, act = _project_setup(arch_name, layer, dev)
        C = n_maps or act.shape[1]
        units = [whole_map(0, c) for c in range(C)]
        params = dev.params(net)
        xt, out = torch_project_graph(net, dev.t(x), layer, params=params)
        a = out.detach()

        def run_torch():
            grads = []
            for c0 in range(0, C, chunk):
                cs = range(c0, min(C, c0 + chunk))
                seed = torch.zeros((len(cs), *out.shape[1:]), device=out.device)       # (K, C, H', W')
                for k, c in enumerate(cs):
                    seed[k, c] = a[0, c]
                if torch_batching == "vmap":
                    g = torch.autograd.grad(out, xt, seed[:, None], retain_graph=True, is_grads_batched=True)
                    grads.append(g[0][:, 0])
                else:
                    with torch.enable_grad():
                        xb = dev.t(x).repeat(len(cs), 1, 1, 1).requires_grad_(True)
                        ob = torch_forward(net, xb, params, upto=layer, mode="deconvnet", lrn_identity=True)
                        grads.append(torch.autograd.grad(ob, xb, seed)[0])
            return torch.cat(grads)
        return Bench(lambda: project(net, xz, layer, units, forward_result=fwd), run_torch,
                     _close(1e-4, 1e-5))
    what = f"maps_0-{n_maps - 1}" if n_maps else "every_map"
    return Case(f"project/{arch_name}.{layer}/{what}", "project", on(dev, build))


def _project_cases(dev=CPU):
    return [_project_unit_case("zfnet", "conv5", dev), _project_unit_e2e_case("zfnet", "conv5", dev),
            _project_maps_case("zfnet", "conv5", n_maps=32, torch_batching="copies", dev=dev)]


# ---------------------------------------------------------------------------------------------
# the top-9 scan (Fig. 2's first step)
# ---------------------------------------------------------------------------------------------

def _scan_case(arch_name, layer, n_images=64, k=9, batch=16, dev=CPU):
    """The k strongest units (one per image) of every map of `layer` over `n_images` images.

    Both sides get the same preprocessed images from memory (decoding is not timed: it is the
    same Pillow work for both). zfnet: zfnet.viz.scan.scan (batches of `batch`, forward to the
    layer, per-map argmax, merge). PyTorch: the same loop, batched forward under no_grad, max over
    each map, the running top-k merged with torch.topk.
    Results: per map, the kept (value, image, y, x), strongest first.
    """
    def build():
        import torch
        from benchmarks.torch_ref import torch_forward
        from zfnet.viz.scan import scan
        arch = get_architecture(arch_name)
        net = Net.random(arch, seed=0)
        images = natural_images(n_images, arch.input_shape, seed=2)
        names = [f"natural{i:03d}.png" for i in range(n_images)]        # never opened: see `load`
        by_name = dict(zip(names, images))
        params = dev.params(net)
        xt = dev.t(images)

        def run_zfnet():
            r = scan(net, names, layer, k=k, batch_size=batch, load=lambda p, meta, crop: by_name[p])
            t = r.state.topk
            return t.value, t.image, t.y, t.x

        def run_torch():
            with torch.no_grad():
                value = image = pos = None
                for n0 in range(0, n_images, batch):
                    a = torch_forward(net, xt[n0:n0 + batch], params, upto=layer)        # (N, C, H', W')
                    v, p = a.flatten(2).max(dim=2)                                         # (N, C)
                    idx = torch.arange(n0, n0 + a.shape[0], device=a.device).expand(a.shape[1], -1)  # (C, N)
                    v, p = v.T, p.T
                    if value is not None:
                        v, idx, p = torch.cat([value, v], 1), torch.cat([image, idx], 1), torch.cat([pos, p], 1)
                    top = torch.topk(v, min(k, v.shape[1]), dim=1).indices                # (C, k)
                    value, image, pos = v.gather(1, top), idx.gather(1, top), p.gather(1, top)
                w = a.shape[3]
            return tuple(dev.host(v) for v in (value, image, pos // w, pos % w))

        def check(z, t):
            zv, zi, zy, zx = z
            tv, ti, ty, tx = t
            _close(1e-4, 1e-5)(zv, tv)
            # the same units, except where two candidates are a float32 near-tie
            same = (zi == ti) & (zy == ty) & (zx == tx)
            tie = np.abs(zv - tv) <= 1e-4 * np.abs(tv).max()
            assert same.mean() > 0.99 and np.all(same | tie), f"{(~same).sum()} kept units differ"
        return Bench(run_zfnet, run_torch, check, images=n_images)
    return Case(f"scan/{arch_name}.{layer}/top{k}_of_{n_images}", "scan", on(dev, build), quick=True)


def _scan_cases(dev=CPU):
    return [_scan_case("zfnet", "conv5", dev=dev)]


# ---------------------------------------------------------------------------------------------
# the GPU: the same cases on device arrays and CUDA tensors
# ---------------------------------------------------------------------------------------------

def on(dev, build):
    """`build` as is on the CPU; on the GPU its Bench's calls run zfnet with backend 'cuda' and
    PyTorch with TF32 off (a TF32 twin beside), each waiting for the GPU before it returns."""
    if not dev.cuda:
        return build

    def build_on_gpu():
        from zfnet import kernels
        with kernels.use_backend("cuda"):
            bench = build()
        bench.torch_tf32 = _torch_on_gpu(bench.torch, tf32=True)
        bench.torch = _torch_on_gpu(bench.torch, tf32=False)
        bench.zfnet = _zfnet_on_gpu(bench.zfnet)
        return bench
    return build_on_gpu


def _zfnet_on_gpu(fn):
    def run():
        from numba import cuda
        from zfnet import kernels
        with kernels.use_backend("cuda"):        # NumPy-fed code paths (the scan) run there too
            out = fn()
        cuda.synchronize()
        return out
    return run


def _torch_on_gpu(fn, tf32):
    def run():
        import torch
        flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        try:
            out = fn()
            torch.cuda.synchronize()
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
        return out
    return run


def cases(device="cpu"):
    """The registry for `device` ('cpu': CASES; 'cuda': the same cases on the GPU, forward at
    batch 1, 16 and 128). Building the list touches no GPU; each case's build() does."""
    dev = Device(device)
    return _kernel_cases(dev) + _forward_cases(dev) + _project_cases(dev) + _scan_cases(dev)


CASES = cases("cpu")


def get_case(name):
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(name)
