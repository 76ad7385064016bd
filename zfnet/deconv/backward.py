"""One backward rule per layer type: how the deconvnet carries a signal down through each layer.

Shape legend: K = projections walked together (seeds), C/F = channels below/above the layer,
(H, W) a full plane, (h, w) the part of it in the current box (see crop.py; dense = whole plane).

Each rule takes the signal g on its layer's output, (K, F, h', w') or (K, F), and returns one
signal per input, each on that input's box. The three modes differ only at ReLUs, where x is
the ReLU's forward input; modes.py holds them as data (rectify? mask?):

    deconvnet   g_in = max(g, 0)                 rectify the signal, ignore the forward mask
                                                 (Zeiler & Fergus, Sec. 2.1)
    guided      g_in = max(g, 0) * [x > 0]       rectify AND mask (guided back-propagation)
    gradient    g_in = g * [x > 0]               mask only: the true gradient (saliency)

Everything else is the adjoint (transpose) of the forward op, i.e. what back-propagation does:

    conv        g_in = W^T * g        transposed convolution with the same w, stride, padding,
                                      groups (kernels.conv_transpose2d), no bias: "filter"
    maxpool     g_in = unpool(g)      each value back at its switch, overlaps summed: "unpool"
    avgpool     g_in = avg_pool^T g   each value spread evenly over its window (same divisor)
    gap         g_in = g / (H*W)      spread over the whole map
    lrn         identity (lrn="identity", the usual deconvnet choice: the paper does not say) or
                the exact LRN gradient (lrn="gradient", kernels/lrn.py lrn_backward)
    concat      g split by channel ranges, one piece per branch
    dropout     identity (dropout is the identity at inference)
    flatten     (K, C*H*W) -> (K, C, H, W)
    linear      g_in = g W            (K, O) @ (O, I): the transposed fully connected layer
    softmax     only at the top: projecting from "prob" projects the chosen class score from the
                softmax's input (see project.py); a softmax below the top has no rule.

Where a tensor feeds several layers (SqueezeNet's squeeze output feeds both expand
convolutions) the walk sums the signals the branches send back, as back-propagation does.

On the GPU (ctx.device) the signals, activations and switches are device arrays: the ops run on
the CUDA kernels, the weights come from Net.device_param, and the array steps in between (crop,
paste, mask, sums, the pooling adjoints) go through zfnet/net/tensors.py, whose NumPy branch is
what the rules below did on the host.
"""
from dataclasses import dataclass

import numpy as np

from zfnet import kernels
from zfnet.errors import ZFNetError
from zfnet.net import tensors
from zfnet.deconv.crop import box_shape, crop, expand, full_box, local_switches, paste
from zfnet.deconv.modes import DECONVNET, Mode

LRN_RULES = ("identity", "gradient")


@dataclass
class Context:
    """What the rules read besides the signal: weights, the plan of boxes, the forward pass.

    images: (K,) index into the forward batch of the image each seed came from.
    """
    net: object
    shapes: dict          # {tensor: (C, H, W) or (F,)} for this input size
    plan: dict            # {tensor: box (y0, y1, x0, x1) or None for flat tensors}
    outputs: dict         # forward activations {tensor: (N, ...)}
    switches: dict        # forward switches {maxpool: (N, C, H', W') int64}
    images: np.ndarray
    mode: Mode = DECONVNET  # modes.py: rectify? mask?
    lrn: str = "identity"
    backend: object = None
    device: bool = False  # the signals and forward tensors are CUDA device arrays

    def weight(self, layer, transposed=False):
        """`layer`'s weight: the NumPy array, or its device copy (uploaded once per network)."""
        if self.device:
            return self.net.device_param(f"{layer}.weight", transposed)
        return self.net.weight(layer)

    def is_full(self, name):
        return self.plan[name] == full_box(self.shapes[name])

    def _gather(self, table, name, what):
        try:
            a = table[name]
        except KeyError:
            raise ZFNetError(
                f"the forward result has no {what} {name!r}; run forward(net, x, keep='all') "
                f"(project() does this when no forward_result is given)"
            ) from None
        # one image for every seed: a (1, ...) view that broadcasts; else one row per seed
        if np.all(self.images == self.images[0]):
            i = int(self.images[0])
            return a[i:i + 1]
        return tensors.take(a, [int(i) for i in self.images])

    def forward(self, name, box):
        """The forward activation `name` for the seeds' images, cut to `box`: (K or 1, C, h, w)."""
        return crop(self._gather(self.outputs, name, "activation"), box)

    def forward_switches(self, pool, box, k):
        """Switches of max-pool `pool` for the seeds' images on its output `box`: (k, C, h', w')."""
        switches = crop(self._gather(self.switches, pool, "switches of max-pool"), box)
        return tensors.repeat(switches, k)


def _repeat(a, k):
    # (1, ...) -> (k, ...) where a kernel needs matching batch sizes
    return tensors.repeat(a, k)


def _moved(g, layer, name, ctx):
    # an elementwise rule's result, on the input's box (larger when the input has other readers)
    box, target = ctx.plan[layer.name], ctx.plan[name]
    return g if box is None or box == target else paste(g, box[0], box[2], target)


# ----------------------------------------------------------------------------------------------
# The rules, one per op
# ----------------------------------------------------------------------------------------------

def conv_back(layer, g, ctx):
    """Filter: g_in = conv_transpose2d(g, w) with the forward conv's stride, padding and groups.

    g (K, F, h', w') -> (K, C, h, w). Dense: output_size = the input's (H, W). Cropped: the
    transposed conv of the box without padding covers input rows [a*sy - py, (b-1)*sy - py + KH);
    the part on the input's box is kept (the rest lies in the padding).
    """
    (name,) = layer.inputs
    w = ctx.weight(layer.name)
    if ctx.is_full(layer.name) and ctx.is_full(name):
        H, W = ctx.shapes[name][1:]
        return [kernels.conv_transpose2d(g, w, layer.stride, layer.padding, layer.groups,
                                         output_size=(H, W), backend=ctx.backend)]   # (K, C, H, W)
    (sy, sx), (py, px) = layer.stride, layer.padding
    a, _, c, _ = ctx.plan[layer.name]
    z = kernels.conv_transpose2d(g, w, layer.stride, 0, layer.groups, backend=ctx.backend)
    return [paste(z, a * sy - py, c * sx - px, ctx.plan[name])]                        # (K, C, h, w)


def relu_back(layer, g, ctx):
    """g_in = max(g, 0) if the mode rectifies, times [x > 0] if it masks (modes.py)."""
    (name,) = layer.inputs
    out = kernels.relu(g, backend=ctx.backend) if ctx.mode.rectify else g
    if ctx.mode.mask:
        # the forward mask [x > 0] of this ReLU's input, on the signal's box
        out = tensors.mask_positive(out, ctx.forward(name, ctx.plan[layer.name]))
    return [_moved(tensors.contiguous(out), layer, name, ctx)]


def maxpool_back(layer, g, ctx):
    """Unpool: every value goes back to the input position its switch recorded (overlaps add).

    g (K, C, h', w') -> (K, C, h, w). Switches are flat indices into the full input plane; on a
    cropped box they are re-expressed in the box (crop.local_switches).
    """
    (name,) = layer.inputs
    in_box = ctx.plan[name]
    switches = ctx.forward_switches(layer.name, ctx.plan[layer.name], g.shape[0])
    if not ctx.is_full(name):
        switches = local_switches(switches, in_box, ctx.shapes[name][2])
    return [kernels.max_unpool2d(g, switches, box_shape(in_box), backend=ctx.backend)]  # (K, C, h, w)


def avgpool_back(layer, g, ctx):
    """The adjoint of average pooling: each output's signal / D added over its window.

    Windows and divisors D exactly as kernels/avg_pool2d.py (clipped to the padding, then to the
    image; D counts the padding iff count_include_pad). g (K, C, h', w') -> (K, C, h, w).
    """
    (name,) = layer.inputs
    H, W = ctx.shapes[name][1:]
    (KH, KW), (sy, sx), (py, px) = layer.kernel_size, layer.stride, layer.padding
    a, b, c, d = ctx.plan[layer.name]
    if ctx.device:
        from zfnet.kernels.cuda.tensors import avgpool_back as on_device
        return [on_device(g, (KH, KW, sy, sx, py, px, H, W, a, c, layer.count_include_pad), ctx.plan[name])]
    y0, y1, x0, x1 = ctx.plan[name]
    dx = np.zeros(g.shape[:2] + (y1 - y0, x1 - x0), np.float32)                       # (K, C, h, w)
    for i in range(a, b):
        # window rows [top, bottom) with the padding, [top_in, bottom_in) on the image
        top = i * sy - py
        bottom = min(top + KH, H + py)
        top_in, bottom_in = max(top, 0), min(bottom, H)
        for j in range(c, d):
            left = j * sx - px
            right = min(left + KW, W + px)
            left_in, right_in = max(left, 0), min(right, W)
            D = ((bottom - top) * (right - left) if layer.count_include_pad
                 else (bottom_in - top_in) * (right_in - left_in))
            # output (i, j) spreads g / D evenly over the real inputs of its window
            dx[:, :, top_in - y0:bottom_in - y0, left_in - x0:right_in - x0] += (
                g[:, :, i - a, j - c] / np.float32(D))[:, :, None, None]
    return [dx]


def gap_back(layer, g, ctx):
    """Global average pool: g (K, C, 1, 1) -> g / (H*W) at every position, (K, C, H, W)."""
    (name,) = layer.inputs
    C, H, W = ctx.shapes[name]
    return [tensors.spread(g, (H, W))]


def lrn_back(layer, g, ctx):
    """LRN: passed through (lrn="identity") or its exact gradient (lrn="gradient").

    The gradient at a box needs the forward input around it: within-channel LRN mixes an
    r = (n-1)/2 neighbourhood, so the input is read on the box grown by r, where the
    normalisers of every position the signal touches are exact (see kernels/lrn.py).
    """
    (name,) = layer.inputs
    if ctx.lrn == "identity":
        return [_moved(g, layer, name, ctx)]
    box = ctx.plan[layer.name]
    r = (layer.size - 1) // 2 if layer.within_channel else 0
    grown = expand(box, r, ctx.shapes[name][1:])
    x = _repeat(ctx.forward(name, grown), g.shape[0])                                   # (K, C, h+2r, w+2r)
    dy = paste(g, box[0], box[2], grown)
    dx = kernels.lrn_backward(x, dy, layer.size, layer.alpha, layer.beta, layer.k, layer.within_channel,
                      backend=ctx.backend)
    return [paste(dx, grown[0], grown[2], ctx.plan[name])]


def concat_back(layer, g, ctx):
    """Concat: the signal split back to the branches by their channel ranges."""
    out, c0 = [], 0
    for name in layer.inputs:
        c1 = c0 + ctx.shapes[name][0]
        piece = tensors.contiguous(g[:, c0:c1])                                          # (K, C_i, h, w)
        out.append(_moved(piece, layer, name, ctx))
        c0 = c1
    return out


def dropout_back(layer, g, ctx):
    """Dropout is the identity at inference, and so is its rule."""
    return [_moved(g, layer, layer.inputs[0], ctx)]


def flatten_back(layer, g, ctx):
    """(K, C*H*W) -> (K, C, H, W), the inverse of the forward reshape."""
    (name,) = layer.inputs
    return [tensors.contiguous(g).reshape((g.shape[0],) + tuple(ctx.shapes[name]))]


def linear_back(layer, g, ctx):
    """The transposed fully connected layer: (K, O) @ w (O, I) -> (K, I). No bias."""
    w_t = ctx.weight(layer.name, transposed=True) if ctx.device else None           # (I, O) on the GPU
    return [tensors.matmul_wt(g, ctx.weight(layer.name), w_t)]                          # (K, I)


def softmax_back(layer, g, ctx):
    raise ZFNetError(
        f"softmax {layer.name!r} lies below the projected layer; the deconvnet has no rule for a "
        f"softmax inside a network (project from a layer above it or from its input instead)"
    )


RULES = {
    "conv": conv_back,
    "relu": relu_back,
    "maxpool": maxpool_back,
    "avgpool": avgpool_back,
    "gap": gap_back,
    "lrn": lrn_back,
    "concat": concat_back,
    "dropout": dropout_back,
    "flatten": flatten_back,
    "linear": linear_back,
    "softmax": softmax_back,
}


def backward(layer, g, ctx):
    """Apply `layer`'s rule: signal on its output -> list of signals on its inputs."""
    try:
        rule = RULES[layer.op]
    except KeyError:
        raise ZFNetError(f"layer {layer.name!r}: the deconvnet has no rule for op {layer.op!r}") from None
    return rule(layer, g, ctx)
