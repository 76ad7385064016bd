"""The deconvnet projection: any unit of any layer back to pixel space (Zeiler & Fergus, Sec. 2.1).

    p = project(net, x, "conv5", [Unit(0, 12, 6, 6)])          # (1, 3, H, W) float32
    p = project(net, x, "fire9/concat", top_maps(act, 0, 9))   # 9 projections from one forward pass

Shapes: x (N, 3, H, W) preprocessed input; K units -> (K, 3, H, W), the projections in the
network's input space (same channel order and scale as x), one per unit, in the order given.

The walk, for every unit:

1. run the forward pass once for the whole batch, recording every activation and every
   max-pool's switches (zfnet.net.forward, keep="all");
2. seed: keep the chosen activation(s) of the layer (one unit, or a whole feature map), zero
   every other activation of that layer;
3. walk the layers from there down to the pixels in reverse order, applying each layer's rule
   (backward.py): unpool with the switches, rectify, filter with the transposed filters, ...
   summing where a tensor fed several layers.

Projecting from "prob" (or any softmax) projects the chosen class's score: the seed is that
class's entry of the softmax's input (fc8, or SqueezeNet's pool10_flat), the probability's own
nonlinearity is not inverted.

crop=True (the default) walks a single unit on boxes, the part of every tensor below that lies
in the unit's receptive field (crop.py): the same numbers as the dense walk (tests check it)
and much less work. On chain networks (ZFNet, AlexNet, VGG) in the deconvnet and guided modes
that walk also skips the signal's zeros (sparse.py). Whole maps and units of flat layers always walk the whole planes, K seeds
at a time.

On the GPU (backend="cuda", or a device array x) the dense and cropped walks run on device arrays
(weights uploaded once per network, the forward pass's activations and switches left on the
device); the projections come back as NumPy for a NumPy x, as device arrays for a device x. The
sparse walk has no CUDA kernels: single units take the cropped walk there (the same numbers).
A forward_result of NumPy arrays is uploaded tensor by tensor, as the walk reads it.
"""
import contextlib

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.kernels import serial
from zfnet.net import tensors
from zfnet.net.forward import check_input, forward, on_backend
from zfnet.net.graph import INPUT
from zfnet.deconv.backward import LRN_RULES, Context, backward
from zfnet.deconv.modes import as_mode
from zfnet.deconv import sparse
from zfnet.deconv.crop import ancestors, dense_plan, full_box, paste, unit_plan
from zfnet.deconv.select import as_units, check_units, warn_dead

# Dense walks carry this many seeds at once (bounds the memory of the (K, C, H, W) signals).
CHUNK = 16


def _check_options(mode, lrn):
    """The Mode named `mode` (modes.py); raises for an unknown mode or lrn rule."""
    mode = as_mode(mode)
    if lrn not in LRN_RULES:
        raise ZFNetError(f"unknown lrn rule {lrn!r}; choose one of {', '.join(LRN_RULES)}")
    return mode


def shaped_arch(net, x):
    """net.arch at x's input size (the layer specs are the same; the shapes follow x)."""
    return net.arch if tuple(x.shape[1:]) == net.arch.input_shape else net.arch.with_input_shape(x.shape[1:])


def seed_tensor(arch, layer):
    """The tensor the projection starts from: `layer`, or a softmax's input (the class scores)."""
    if layer == INPUT:
        raise ZFNetError(f"{INPUT!r} is the input image; project from one of the layers: {', '.join(arch.names)}")
    spec = arch.layer(layer)  # unknown names raise, listing the valid ones
    return spec.inputs[0] if spec.op == "softmax" else layer


def walk(ctx, arch, start, seed):
    """Carry `seed` (on ctx.plan[start]) from tensor `start` down to the input.

    Layers are visited in reverse topological order, so a tensor's signal is complete (every
    reader has sent its share) before its own layer's rule runs. Returns the signal on
    ctx.plan["data"]: (K, 3, h, w), or None when no signal reaches the input (a unit that
    only sees padding).
    """
    signals = {start: seed}
    for layer in ancestors(arch, start):
        g = signals.pop(layer.name, None)
        if g is None or any(name not in ctx.plan for name in layer.inputs):
            continue                    # nothing arrived here, or it reads only padding below
        for name, g_in in zip(layer.inputs, backward(layer, g, ctx)):
            # a tensor read by several layers receives the sum of their signals
            signals[name] = g_in if name not in signals else tensors.add(signals[name], g_in)
    return signals.get(INPUT)


def _seed(act, units, box):
    """Seed signals (K, C, h, w) or (K, F): the chosen activations, every other one zero.

    act: the layer's forward activations (N, C, H, W) or (N, F), NumPy or device; box: where the
    seed lives (the unit's own 1x1 box on the cropped path, the whole plane on the dense one).
    """
    K, flat = len(units), len(act.shape) == 2
    a = act.reshape(act.shape[0], act.shape[1], 1, 1) if flat else act              # (N, C, H, W)
    y0, y1, x0, x1 = (0, 1, 0, 1) if flat else box
    seed = tensors.zeros((K, a.shape[1], y1 - y0, x1 - x0), act)                      # (K, C, h, w)
    for k, u in enumerate(units):
        c = u.channel
        if u.is_position:       # one activation, at its place in the box
            tensors.assign(seed[k:k + 1, c:c + 1, u.y - y0:u.y - y0 + 1, u.x - x0:u.x - x0 + 1],
                           a[u.image:u.image + 1, c:c + 1, u.y:u.y + 1, u.x:u.x + 1])
        else:                   # the whole map (box = the whole plane), or one unit of a flat layer
            tensors.assign(seed[k:k + 1, c:c + 1], a[u.image:u.image + 1, c:c + 1])
    return seed.reshape(K, a.shape[1]) if flat else seed                              # (K, F) if flat


def project(net, x, layer, units, mode="deconvnet", lrn="identity", crop=True, forward_result=None,
            backend=None):
    """Project units of `layer` back to pixel space with the deconvnet (or guided/gradient).

    net: a zfnet.net.Net; x: (N, 3, H, W) float32, preprocessed as the network expects.
    layer: a layer name (``arch.names``); "prob" projects a class score (see module docstring).
    units: a Unit, or a list of Units (zfnet.deconv.select): Unit(image, channel, y, x) for one
        unit, Unit(image, channel) for a whole map (or a unit of a flat layer).
    mode: "deconvnet" (rectify), "guided" (rectify and forward mask) or "gradient" (mask).
    lrn: "identity" (pass LRN layers through, default) or "gradient" (their exact gradient).
    crop: walk single units on their receptive-field boxes (same result, faster).
    forward_result: a zfnet.net.forward(net, x, keep="all") result to reuse; computed if None.
    Returns (K, 3, H, W) float32, one projection per unit in the given order.

    A unit whose activation is zero projects to zeros; a unit of a map that is all zeros for its
    image also emits a DeadMapWarning saying so.
    """
    mode = _check_options(mode, lrn)
    check_input(net, x)
    arch = shaped_arch(net, x)
    start = seed_tensor(arch, layer)
    units = as_units(units)
    check_units(units, layer, arch.shapes[start], x.shape[0])
    backend, run_x = on_backend(x, backend)
    device = backend == "cuda"
    if forward_result is None:
        forward_result = forward(net, run_x, keep="all", upto=layer, backend=backend)
    outputs, switches = forward_result.outputs, forward_result.switches
    if device:
        outputs, switches = _Uploaded(outputs), _Uploaded(switches)
    act = outputs.get(start)
    if act is None or tuple(act.shape) != (x.shape[0],) + arch.shapes[start]:
        raise ZFNetError(
            f"forward_result does not hold {start!r} for this x (shape {x.shape}); pass "
            f"forward(net, x, keep='all') of the same x, or leave forward_result out"
        )
    warn_dead(act, units, layer)

    def context(plan, images):
        return Context(net, arch.shapes, plan, outputs, switches,
                       np.asarray(images, dtype=np.int64), mode, lrn, backend, device)

    H, W = x.shape[2:]
    out = tensors.zeros((len(units), 3, H, W), run_x)                                # (K, 3, H, W)
    spatial = len(arch.shapes[start]) == 3
    cropped = [k for k, u in enumerate(units) if crop and spatial and u.is_position]
    dense = [k for k in range(len(units)) if k not in set(cropped)]

    # single units: each on its own receptive-field boxes, skipping zeros where the network is a
    # chain (sparse.py: its register-tiled steps are long enough for the thread pool), else by
    # the rules of backward.py on one core (the ops are small: waking worker threads would cost
    # more than they save, see kernels/_threads.py)
    fast = bool(cropped) and not device and sparse.supports(arch, start, mode, lrn)
    with contextlib.nullcontext() if fast else serial():
        for k in cropped:
            u = units[k]
            plan = unit_plan(arch, start, u.y, u.x, lrn)
            if fast:
                signal = sparse.walk_unit(net, arch, plan, start, outputs, switches, u, mode)  # (3, h, w)
                if signal is not None:
                    y0, y1, x0, x1 = plan[INPUT]
                    out[k, :, y0:y1, x0:x1] = signal
                continue
            signal = walk(context(plan, [u.image]), arch, start, _seed(act, [u], plan[start]))
            if signal is not None:
                box = plan[INPUT]
                tensors.assign(out[k:k + 1], paste(signal, box[0], box[2], full_box(arch.input_shape)))

    # whole maps, flat units (and every unit with crop=False): whole planes, CHUNK seeds at a time
    plan = dense_plan(arch, start) if dense else None
    for i in range(0, len(dense), CHUNK):
        ks = dense[i:i + CHUNK]
        chunk = [units[k] for k in ks]
        seed = _seed(act, chunk, plan[start])
        signal = walk(context(plan, [u.image for u in chunk]), arch, start, seed)    # (len(ks), 3, H, W)
        for j, k in enumerate(ks if signal is not None else ()):     # None: nothing reaches the pixels
            tensors.assign(out[k:k + 1], signal[j:j + 1])
    return tensors.to_caller(out, not tensors.is_device(x))


class _Uploaded(dict):
    """{name: device array}: the arrays of `source` (a forward result's dict), each copied to the
    device the first time the walk reads it (device arrays are taken as they are)."""

    def __init__(self, source):
        super().__init__()
        self.source = source

    def __missing__(self, name):
        value = self[name] = tensors.to_device(self.source[name])     # KeyError: not in the result
        return value

    def get(self, name, default=None):
        return self[name] if name in self.source else default
