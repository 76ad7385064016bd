"""The forward plan's steps on the channel-blocked layout NCHW16c (kernels/nchwc.py), without BLAS.

    forward(net, x, layout="nchwc")       # or "auto": LAYOUTS below, per architecture

The same plan (plan.py) as the NCHW walk, the same results to float32 rounding (the convolutions
sum in another order), and per image: every blocked kernel computes one image's outputs from that
image alone, in an order that does not depend on the batch, so an image's result does not depend
on its batch.

Where the layout changes (the one rule): only at convolutions. A convolution not listed in
IM2COL_LAYERS converts its input to NCHW16c if it is not already (the first one converts the
image) and runs conv2d_nchwc (direct_6x16 or pointwise_gemm_6x16, bias and ReLU fused); a listed
one (or one with groups, which conv2d_nchwc lacks) converts its input back to NCHW and runs
kernels.conv2d (im2col + BLAS). Every other op runs in the layout its input is in:

    blocked rule (BLOCKED_RULES)        fallback, on NCHW (forward.apply_layer)
    maxpool   max_pool2d_nchwc          its input is NCHW
    lrn       lrn_nchwc                 within-channel LRN, or an NCHW input
    relu      kernels.relu (elementwise)
    gap       global_avg_pool_nchwc
    concat    np.concatenate of blocks  "unaligned concat": an input (but the last) whose channels
                                        are not a multiple of 16, or an NCHW input
    dropout   passed on
    others (avgpool, flatten, linear, softmax): NCHW, always

A tensor the result keeps, and the output, are converted back to NCHW (the walk keeps using the
blocked one); the max-pools' switches are max_pool2d's, (N, C, H', W') int64 h*W + w indices.
"""
from typing import NamedTuple

import numpy as np

from zfnet import kernels
from zfnet.kernels import nchwc
from zfnet.kernels._backend import choose
from zfnet.kernels._prepared import prepared
from zfnet.kernels.conv2d_nchwc import conv2d_nchwc
from zfnet.kernels.pool_nchwc import global_avg_pool_nchwc, lrn_nchwc, max_pool2d_nchwc, switches_from_nchwc
from zfnet.net.graph import INPUT

# layout="auto": the layout each built-in architecture's forward pass runs in (benchmarks/RESULTS.md,
# "The blocked forward pass"); an architecture not listed runs in NCHW.
LAYOUTS = {
    "zfnet": "nchwc", "zf_caffe": "nchwc", "zfnet512": "nchwc", "alexnet": "nchwc", "vgg16": "nchwc",
    "squeezenet1_0": "nchwc",
    "caffenet": "nchw", "bvlc_alexnet": "nchw",     # grouped convs: conv2d_nchwc has no groups
}

# convolutions that stay on im2col + BLAS inside a blocked pass (layout="auto" only; "nchwc" blocks
# every one), where whole forward passes ran faster so (benchmarks/RESULTS.md, "Which convolutions
# stay on im2col, re-measured quiet"): SqueezeNet's conv1 (7x7 stride 2 on 3 input channels,
# padded to a 16-channel block) and conv10 (1000 filters on 13x13). On the quiet machine every
# conv of zfnet, zf_caffe, zfnet512 and alexnet ran as fast or faster blocked, at batch 1 and 16.
IM2COL_LAYERS = {
    "squeezenet1_0": ("conv1", "conv10"),
}


class Blocked(NamedTuple):
    """An activation in NCHW16c: data (N, CB, H, W, 16), of which the first `channels` are real."""
    data: np.ndarray
    channels: int


def choose_layout(layout, arch_name, backend=None):
    """"nchw" or "nchwc" for forward(layout=...): "auto" looks the architecture up in LAYOUTS;
    the blocked kernels are Numba CPU kernels, so any other backend runs NCHW."""
    if layout not in ("auto", "nchw", "nchwc"):
        raise kernels.ZFNetError(f"layout must be 'auto', 'nchw' or 'nchwc', got {layout!r}")
    if choose(backend) != "cpu":
        return "nchw"
    return LAYOUTS.get(arch_name, "nchw") if layout == "auto" else layout


def as_nchw(v):
    """An activation in NCHW (N, C, H, W), converted if it is Blocked."""
    return nchwc.from_nchwc(v.data, v.channels) if isinstance(v, Blocked) else v


def as_blocked(v):
    """An activation in NCHW16c, converted if it is an NCHW array."""
    return v if isinstance(v, Blocked) else Blocked(nchwc.to_nchwc(np.ascontiguousarray(v)), v.shape[1])


def _conv(step, inputs, net, switches):
    layer = step.layer
    w, b = net.weight(layer.name), net.bias(layer.name)
    w_b = prepared(w, "nchwc_filters", nchwc.filters_to_nchwc)                # (FB, CB, KH, KW, 16, 16)
    b_b = nchwc.bias_to_nchwc(b, w.shape[0])                                  # (FB*16,)
    x = as_blocked(inputs[0])
    y = conv2d_nchwc(x.data, w_b, b_b, layer.stride, layer.padding, relu=step.relu, channels=x.channels)
    return Blocked(y, w.shape[0])


def _maxpool(step, inputs, net, switches):
    layer, x = step.layer, inputs[0]
    y = max_pool2d_nchwc(x.data, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
                         relu_input=step.relu_input, return_switches=switches is not None)
    if switches is None:
        return Blocked(y, x.channels)
    switches[layer.name] = switches_from_nchwc(y[1], x.channels)               # (N, C, H', W') int64
    return Blocked(y[0], x.channels)


def _lrn(step, inputs, net, switches):
    layer, x = step.layer, inputs[0]
    return Blocked(lrn_nchwc(x.data, layer.size, layer.alpha, layer.beta, layer.k), x.channels)


def _relu(step, inputs, net, switches):
    return Blocked(kernels.relu(inputs[0].data), inputs[0].channels)


def _gap(step, inputs, net, switches):
    return Blocked(global_avg_pool_nchwc(inputs[0].data), inputs[0].channels)


def _concat(step, inputs, net, switches):
    # blocks of aligned inputs follow each other: channel c of input k is channel first_k + c
    data = np.concatenate([v.data for v in inputs], axis=1)                   # (N, sum CB, H, W, 16)
    return Blocked(data, sum(v.channels for v in inputs))


def _dropout(step, inputs, net, switches):
    return inputs[0]


BLOCKED_RULES = {"conv": _conv, "maxpool": _maxpool, "lrn": _lrn, "relu": _relu, "gap": _gap,
                 "concat": _concat, "dropout": _dropout}


def runs_blocked(step, inputs, im2col):
    """True where `step` runs its blocked rule on `inputs` (see the module docstring's table)."""
    layer, op = step.layer, step.layer.op
    if op == "conv":
        return layer.groups == 1 and layer.name not in im2col
    all_blocked = op in BLOCKED_RULES and all(isinstance(v, Blocked) for v in inputs)
    if op == "lrn":
        return all_blocked and not layer.within_channel
    if op == "concat":
        return all_blocked and all(v.channels % nchwc.BLOCK == 0 for v in inputs[:-1])
    return all_blocked


def run_step_blocked(step, live, net, switches, im2col):
    """One plan step on `live` ({name: NCHW array or Blocked}); returns its output, either layout."""
    if step.applied_by is not None:
        return live[step.inputs[0]]             # a ReLU its conv or its pool applies
    inputs = [live[n] for n in step.inputs]
    if runs_blocked(step, inputs, im2col):
        return BLOCKED_RULES[step.layer.op](step, inputs, net, switches)
    from zfnet.net.forward import apply_layer   # the NCHW rules (forward imports this module)
    return apply_layer(step.layer, [as_nchw(v) for v in inputs], net, switches, "cpu", relu=step.relu,
                       relu_input=step.relu_input)


def forward_blocked(p, net, x, result, im2col=()):
    """Walk plan `p` on NCHW16c; fills and returns `result` (a ForwardResult), NCHW throughout.

    im2col: the conv names run on im2col + BLAS instead (IM2COL_LAYERS for layout="auto").
    """
    if p.keep_input:
        result.outputs[INPUT] = x
    live = {INPUT: x}
    switches = result.switches if p.switches else None
    for step in p.steps:
        y = live[step.name] = run_step_blocked(step, live, net, switches, im2col)
        if step.keep:
            result.outputs[step.name] = as_nchw(y)
        for name in step.drop:
            live.pop(name, None)
    return result
