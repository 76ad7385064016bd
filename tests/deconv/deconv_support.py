"""An independent deconvnet: PyTorch autograd with every ReLU's backward rule replaced.

Zeiler & Fergus's projection equals back-propagation in which each ReLU's backward is swapped
(REFERENCE.md section 6):

    deconvnet   grad_in = relu(grad_out)                 (forward mask ignored)
    guided      grad_in = relu(grad_out) * [x > 0]
    gradient    grad_in = grad_out * [x > 0]              (plain autograd)

and max-pooling's gradient routes through the switches, summing where windows overlap. This
module builds the network from the same layer specs in torch ops (conv2d, max_pool2d,
local_response_norm, ...) and lets autograd do every adjoint: transposed convolutions, the
branch sums of SqueezeNet, the split at concatenations, fully connected transposes, the LRN
gradient (lrn="gradient"; lrn="identity" replaces it by the identity).

The discrete decisions of the forward pass (each ReLU's mask, each max-pool's switches) are
taken from zfnet's forward pass, so that float rounding near a tie cannot flip one of them and
make the two projections differ for a reason that has nothing to do with the walk; torch's own
decisions are returned too, so tests check they agree with zfnet's.
"""
import numpy as np
import torch
import torch.nn.functional as F

from zfnet.net.graph import INPUT


class ModeReLU(torch.autograd.Function):
    """y = relu(x); backward by the deconvnet/guided/gradient rule, with a given forward mask.

    `rule` is a dict whose "mode" is read at backward time, so one graph serves all three modes.
    """

    @staticmethod
    def forward(ctx, x, mask, rule):
        ctx.save_for_backward(mask)
        ctx.rule = rule
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        mode = ctx.rule["mode"]
        if mode == "deconvnet":
            return g.clamp(min=0), None, None
        if mode == "guided":
            return g.clamp(min=0) * mask, None, None
        return g * mask, None, None


class SwitchMaxPool(torch.autograd.Function):
    """y = x at the given switches; backward scatter-ADDS the gradient into the switches."""

    @staticmethod
    def forward(ctx, x, switches):
        n, c, h, w = x.shape
        ctx.save_for_backward(switches)
        ctx.hw = (h, w)
        return x.reshape(n, c, h * w).gather(2, switches.reshape(n, c, -1)).reshape(switches.shape)

    @staticmethod
    def backward(ctx, g):
        (switches,) = ctx.saved_tensors
        n, c = g.shape[:2]
        h, w = ctx.hw
        gx = torch.zeros(n, c, h * w, dtype=g.dtype)
        gx.scatter_add_(2, switches.reshape(n, c, -1), g.reshape(n, c, -1))
        return gx.reshape(n, c, h, w), None


class IdentityBackward(torch.autograd.Function):
    """Forward: a precomputed value (the LRN output); backward: the identity."""

    @staticmethod
    def forward(ctx, x, y):
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        return g, None


def _lrn(layer, x):
    if layer.within_channel:
        # b = a / (k + alpha * mean_{n x n}(a^2))^beta, zero-padded window, always / n*n
        r = (layer.size - 1) // 2
        d = layer.k + layer.alpha * F.avg_pool2d(x * x, layer.size, 1, r, count_include_pad=True)
        return x / d ** layer.beta
    return F.local_response_norm(x, layer.size, layer.alpha, layer.beta, layer.k)


def torch_forward(arch, params, x, fwd, rule, lrn):
    """Run `arch` in torch on x (a leaf requiring grad). Returns ({tensor: torch tensor}, decisions).

    fwd: zfnet's forward result on the same x (masks and switches are taken from it);
    rule: {"mode": ...}, read by every ReLU's backward;
    decisions: {("relu", input name): torch's mask x > 0, ("pool", name): torch's indices}.
    """
    P = {k: torch.from_numpy(np.array(v)) for k, v in params.items()}
    t = {INPUT: x}
    own = {}
    for layer in arch.layers:
        ins = [t[i] for i in layer.inputs]
        op = layer.op
        if op == "conv":
            b = P.get(f"{layer.name}.bias")
            y = F.conv2d(ins[0], P[f"{layer.name}.weight"], b, layer.stride, layer.padding, groups=layer.groups)
        elif op == "relu":
            ours = torch.from_numpy(fwd.outputs[layer.inputs[0]] > 0).to(ins[0].dtype)
            own[("relu", layer.inputs[0])] = ins[0].detach() > 0
            y = ModeReLU.apply(ins[0], ours, rule)
        elif op == "maxpool":
            _, idx = F.max_pool2d(ins[0].detach(), layer.kernel_size, layer.stride, layer.padding,
                                  ceil_mode=layer.ceil_mode, return_indices=True)
            own[("pool", layer.name)] = idx
            y = SwitchMaxPool.apply(ins[0], torch.from_numpy(fwd.switches[layer.name]))
        elif op == "avgpool":
            y = F.avg_pool2d(ins[0], layer.kernel_size, layer.stride, layer.padding, ceil_mode=layer.ceil_mode,
                             count_include_pad=layer.count_include_pad)
        elif op == "gap":
            y = ins[0].mean(dim=(2, 3), keepdim=True)
        elif op == "lrn":
            if lrn == "gradient":
                y = _lrn(layer, ins[0])
            else:
                with torch.no_grad():
                    value = _lrn(layer, ins[0])
                y = IdentityBackward.apply(ins[0], value)
        elif op == "concat":
            y = torch.cat(ins, dim=1)
        elif op == "dropout":
            y = ins[0]
        elif op == "flatten":
            y = ins[0].reshape(ins[0].shape[0], -1)
        elif op == "linear":
            y = F.linear(ins[0], P[f"{layer.name}.weight"], P.get(f"{layer.name}.bias"))
        elif op == "softmax":
            y = F.softmax(ins[0], dim=1)
        else:
            raise AssertionError(op)
        t[layer.name] = y
    return t, own


def torch_project(net, x, layer, units, fwd, modes=("deconvnet",), lrn="identity"):
    """Projections of `units` of `layer` by autograd: {mode: (K, 3, H, W) float32}, torch's decisions.

    The seed of each unit is zfnet's activation there (all other activations of the layer zero);
    from "prob" the seed sits on the softmax's input (the class score), as in zfnet.deconv.
    One torch forward pass serves every mode (the ReLUs read the mode when going backward).
    """
    threads = torch.get_num_threads()
    # torch's OpenMP pool spins and fights Numba's and OpenBLAS's on a small machine: one thread
    torch.set_num_threads(1)
    try:
        return _torch_project(net, x, layer, units, fwd, modes, lrn)
    finally:
        torch.set_num_threads(threads)


def _torch_project(net, x, layer, units, fwd, modes, lrn):
    arch = net.arch if tuple(x.shape[1:]) == net.arch.input_shape else net.arch.with_input_shape(x.shape[1:])
    spec = arch.layer(layer)
    start = spec.inputs[0] if spec.op == "softmax" else layer
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    rule = {"mode": None}
    t, own = torch_forward(arch, net.params, xt, fwd, rule, lrn)
    y = t[start]
    act = fwd.outputs[start]
    out = {}
    for mode in modes:
        rule["mode"] = mode
        grads = []
        for u in units:
            seed = np.zeros(y.shape, np.float32)
            if u.y is not None:
                seed[u.image, u.channel, u.y, u.x] = act[u.image, u.channel, u.y, u.x]
            else:
                seed[u.image, u.channel] = act[u.image, u.channel]
            (gx,) = torch.autograd.grad(y, xt, torch.from_numpy(seed), retain_graph=True)
            grads.append(gx[u.image].numpy())
        out[mode] = np.stack(grads)
    return out, own


def rel_err(ours, ref):
    """max |ours - ref| / max |ref| (0 when both are all zero)."""
    scale = float(np.abs(ref).max())
    diff = float(np.abs(ours - ref).max())
    return diff / scale if scale > 0 else diff


# ------------------------------------------------------------------------------------------------
# Networks for the tests
# ------------------------------------------------------------------------------------------------

def truncated(arch, last, hw):
    """`arch`'s layers up to `last` on a (3, *hw) input: small, fast nets with the real structure."""
    from zfnet.net import Architecture
    return Architecture(arch.name, arch.layers[: arch.index(last) + 1], (3, *hw))


def kitchen_sink():
    """Every layer type and option the deconvnet has a rule for, in one small network.

    Grouped and strided convolutions, within-channel LRN with a strong alpha (so its gradient is
    far from the identity), Caffe-rounded padded max-pool, across-channel LRN, both average-pool
    divisors with ceil_mode, a fire-like branch point + concat, global average pooling next to a
    flattened branch, dropout, linear layers and a softmax.
    """
    from zfnet.net import (LRN, Architecture, AvgPool, Concat, Conv, Dropout, Flatten, GlobalAvgPool,
                           Linear, MaxPool, ReLU, Softmax)
    layers = [
        Conv("conv1", "data", 3, 8, 5, 2, 1),
        ReLU("relu1", "conv1"),
        LRN("norm1", "relu1", 3, 0.5, 0.75, 1.0, within_channel=True),
        MaxPool("pool1", "norm1", 3, 2, 1, ceil_mode=True),
        Conv("conv2", "pool1", 8, 12, 3, 1, 1, groups=2),
        ReLU("relu2", "conv2"),
        LRN("norm2", "relu2", 5, 0.8, 0.75, 2.0),
        AvgPool("apool", "norm2", 3, 2, 1, ceil_mode=True, count_include_pad=False),
        Conv("squeeze", "apool", 12, 6, 1),
        ReLU("relu_squeeze", "squeeze"),
        Conv("expand1", "relu_squeeze", 6, 5, 1),
        ReLU("relu_expand1", "expand1"),
        Conv("expand3", "relu_squeeze", 6, 7, 3, 1, 1),
        ReLU("relu_expand3", "expand3"),
        Concat("concat", ("relu_expand1", "relu_expand3")),
        AvgPool("apool2", "concat", 2, 2, 0, ceil_mode=True, count_include_pad=True),
        Dropout("drop", "apool2"),
        Flatten("flatten", "drop"),
    ]
    hw = (31, 25)
    flat = Architecture("kitchen_sink", layers, (3, *hw)).shapes["flatten"][0]
    layers += [
        Linear("fc1", "flatten", flat, 20),
        ReLU("relu_fc1", "fc1"),
        Linear("fc2", "relu_fc1", 20, 10),
        Softmax("prob", "fc2"),
    ]
    return Architecture("kitchen_sink", layers, (3, *hw))


def gap_sink():
    """A SqueezeNet-like tail: conv with pad on a 1x1-kernel, ReLU, global average pool, flatten."""
    from zfnet.net import Architecture, Conv, Flatten, GlobalAvgPool, MaxPool, ReLU, Softmax
    layers = [
        Conv("conv1", "data", 3, 6, 3, 2, 0),
        ReLU("relu1", "conv1"),
        MaxPool("pool1", "relu1", 3, 2, 0, ceil_mode=True),
        Conv("conv10", "pool1", 6, 4, 1, 1, 1),
        ReLU("relu10", "conv10"),
        GlobalAvgPool("gap", "relu10"),
        Flatten("flat", "gap"),
        Softmax("prob", "flat"),
    ]
    return Architecture("gap_sink", layers, (3, 20, 17))


# torchvision squeezenet1_0 names -> Caffe names (the shared .pth; see its README)
_FIRES = {3: 2, 4: 3, 5: 4, 7: 5, 8: 6, 9: 7, 10: 8, 12: 9}


def real_squeezenet(squeezenet_dir):
    """The real SqueezeNet v1.0 weights, read from the shared .pth with torch (test-only loader).

    Independent of zfnet's converters on purpose; the caller checks it against the onnxruntime
    reference probabilities. Caffe preprocessing metadata (BGR, 0-255, mean 104/117/123).
    """
    from zfnet.net import Net, get_architecture
    sd = torch.load(squeezenet_dir / "squeezenet1_0.pth", weights_only=True)
    names = {"features.0": "conv1", "classifier.1": "conv10"}
    for idx, fire in _FIRES.items():
        for part, caffe in (("squeeze", "squeeze1x1"), ("expand1x1", "expand1x1"), ("expand3x3", "expand3x3")):
            names[f"features.{idx}.{part}"] = f"fire{fire}/{caffe}"
    params = {}
    for key, value in sd.items():
        module, kind = key.rsplit(".", 1)
        params[f"{names[module]}.{kind}"] = value.numpy()
    meta = {"model": "squeezenet1_0", "architecture": "squeezenet1_0", "input_size": [227, 227],
            "channel_order": "BGR", "scale": 255, "mean": [104.0, 117.0, 123.0], "std": [1.0, 1.0, 1.0]}
    return Net(get_architecture("squeezenet1_0"), params, meta)


def decisions_disagree(own, fwd):
    """How many of torch's own forward decisions differ from zfnet's: (ReLU mask flips, switch flips)."""
    relu = pool = 0
    for (kind, name), value in own.items():
        if kind == "relu":
            relu += int((value.numpy() != (fwd.outputs[name] > 0)).sum())
        else:
            pool += int((value.numpy() != fwd.switches[name]).sum())
    return relu, pool
