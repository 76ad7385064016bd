"""PyTorch equivalents of zfnet's layer specs, for benchmarks and tests only (never the library).

`torch_forward(net, x)` walks the same layer specs as zfnet.net.forward, each with the matching
torch.nn.functional op, so a benchmark times the same network in both. Within-channel LRN, which
PyTorch lacks, is written from its definition (average pooling of squares).

`torch_project(net, x, layer, channel, y, x, mode)` is the deconvnet as autograd: back-propagation
from one unit with every ReLU's backward rule replaced (deconvnet: rectify the incoming signal;
guided: rectify and mask; gradient: mask only) and LRN passed through, as zfnet's default.
"""
import numpy as np
import torch
import torch.nn.functional as F


class _ModifiedReLU(torch.autograd.Function):
    """Forward: max(x, 0). Backward: the deconvnet / guided / gradient rule.

    Written in the setup_context form with generate_vmap_rule, so one recorded forward pass can be
    back-propagated from many seeds at once (torch.autograd.grad(..., is_grads_batched=True)).
    """
    generate_vmap_rule = True

    @staticmethod
    def forward(x, mode):
        return x.clamp(min=0)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, mode = inputs
        ctx.mode = mode
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if ctx.mode == "deconvnet":
            return g.clamp(min=0), None
        if ctx.mode == "guided":
            return g.clamp(min=0) * (x > 0), None
        return g * (x > 0), None


class _PassThrough(torch.autograd.Function):
    """Forward: f(x) precomputed. Backward: identity (LRN passed through on the way down)."""
    generate_vmap_rule = True

    @staticmethod
    def forward(x, y):
        return y

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return g, None


def _lrn(layer, x):
    if not layer.within_channel:
        return F.local_response_norm(x, layer.size, layer.alpha, layer.beta, layer.k)
    # b = a / (k + alpha * mean_{n x n}(a^2))^beta, zero-padded window, always divided by n*n
    r = (layer.size - 1) // 2
    mean_sq = F.avg_pool2d(x * x, layer.size, stride=1, padding=r, count_include_pad=True)
    return x / (layer.k + layer.alpha * mean_sq) ** layer.beta


def apply_layer(layer, inputs, params, mode=None, lrn_identity=False):
    op = layer.op
    if op == "conv":
        (x,) = inputs
        return F.conv2d(x, params[f"{layer.name}.weight"], params.get(f"{layer.name}.bias"),
                        layer.stride, layer.padding, 1, layer.groups)
    if op == "relu":
        return _ModifiedReLU.apply(inputs[0], mode) if mode else F.relu(inputs[0])
    if op == "maxpool":
        return F.max_pool2d(inputs[0], layer.kernel_size, layer.stride, layer.padding,
                            ceil_mode=layer.ceil_mode)
    if op == "avgpool":
        return F.avg_pool2d(inputs[0], layer.kernel_size, layer.stride, layer.padding,
                            ceil_mode=layer.ceil_mode, count_include_pad=layer.count_include_pad)
    if op == "gap":
        return inputs[0].mean(dim=(2, 3), keepdim=True)
    if op == "lrn":
        y = _lrn(layer, inputs[0])
        return _PassThrough.apply(inputs[0], y.detach()) if lrn_identity else y
    if op == "concat":
        return torch.cat(inputs, dim=1)
    if op == "dropout":
        return inputs[0]
    if op == "flatten":
        return inputs[0].flatten(1)
    if op == "linear":
        return F.linear(inputs[0], params[f"{layer.name}.weight"], params.get(f"{layer.name}.bias"))
    if op == "softmax":
        return F.softmax(inputs[0], dim=1)
    raise ValueError(f"no torch rule for {op}")


def torch_params(net):
    # copies: a Net's arrays are read-only, torch tensors are writeable
    return {k: torch.from_numpy(np.array(v)) for k, v in net.params.items()}


def torch_forward(net, x, params=None, upto=None, mode=None, lrn_identity=False, keep=()):
    """x: torch (N, C, H, W). Returns the output of `upto` (default: the last layer), plus kept ones."""
    params = torch_params(net) if params is None else params
    live = {"data": x}
    kept = {}
    for layer in net.arch.layers:
        live[layer.name] = apply_layer(layer, [live[i] for i in layer.inputs], params, mode, lrn_identity)
        if layer.name in keep:
            kept[layer.name] = live[layer.name]
        if layer.name == upto:
            break
    out = live[upto or net.arch.output]
    return (out, kept) if keep else out


def torch_project(net, x, layer, channel, y, x_, mode="deconvnet", params=None):
    """Deconvnet projection of unit (channel, y, x_) of `layer` for image 0 of x (numpy or torch)."""
    params = torch_params(net) if params is None else params
    with torch.enable_grad():
        xt = torch.as_tensor(x).clone().requires_grad_(True)
        out = torch_forward(net, xt, params, upto=layer, mode=mode, lrn_identity=True)
        seed = torch.zeros_like(out)
        if out.ndim == 4:
            seed[0, channel, y, x_] = out[0, channel, y, x_].detach()
        else:
            seed[0, channel] = out[0, channel].detach()
        out.backward(seed)
    return xt.grad[:1].cpu().numpy()


def torch_project_graph(net, x, layer, mode="deconvnet", params=None):
    """Record the forward pass of x (torch (N, 3, H, W)) up to `layer` once, for many projections.

    Returns (xt, out): seed `out` and call torch.autograd.grad(out, xt, seed, retain_graph=True),
    or with a batch of seeds and is_grads_batched=True. That is what a PyTorch user projecting
    several units of one image runs: one forward with autograd, one backward per (batch of) seed(s).
    """
    params = torch_params(net) if params is None else params
    with torch.enable_grad():        # whatever the caller's grad mode (some tests switch it off)
        xt = torch.as_tensor(x).clone().requires_grad_(True)
        return xt, torch_forward(net, xt, params, upto=layer, mode=mode, lrn_identity=True)


def as_numpy(t):
    """A result as NumPy: a tensor (CPU or CUDA), a CUDA device array, or an array."""
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    if hasattr(t, "copy_to_host"):
        return t.copy_to_host()
    return np.asarray(t)
