"""The forward pass: walk the layer specs in order, on the kernels.

    result = forward(net, x, keep="all")      # x: (N, C, H, W) float32, preprocessed
    result.outputs["conv5"]                    # (N, F, H', W')
    result.switches["pool5"]                   # (N, F, H', W') int64 flat indices into pool5's input plane
    result.output                              # the last layer's output, e.g. (N, 1000) probabilities

Every max-pool's switches are recorded (the deconvnet needs them) unless switches=False;
activations are kept only for the names in ``keep`` ("all", a list of names, or None for the last
layer alone), and a tensor is dropped as soon as no later layer reads it, so memory stays at the
live set.

forward() walks a plan (plan.py): the layer specs turned once into steps, where a conv may apply
the ReLU above it, a max-pool the ReLU below it, and a conv may write straight into its concat's
output: the same numbers bit for bit. fuse=False walks the layers one at a time, the reference.
Every step runs through one function, run_step -> apply_layer (one layer's rule on the kernels).

On the GPU (backend="cuda", or a device array x) the same plan runs on device arrays: x is
copied up once (a NumPy x), the weights are uploaded once per network (Net.device_param), every
activation and switch stays on the device, and only the result crosses back. The rule: the
result (kept activations, switches) is where x was: NumPy for a NumPy x, device arrays for a
device x (numba's; a CuPy array or PyTorch CUDA tensor is viewed without a copy). The steps that
are not ops (concat, flatten, global average pool) run through zfnet/net/tensors.py.
"""
from dataclasses import dataclass, field

from zfnet import kernels
from zfnet.errors import ZFNetError
from zfnet.kernels import check_array
from zfnet.kernels._backend import choose
from zfnet.net import blocked, tensors
from zfnet.net.graph import INPUT
from zfnet.net.plan import plan


@dataclass
class ForwardResult:
    outputs: dict = field(default_factory=dict)    # {tensor name: (N, ...) array} for kept names
    switches: dict = field(default_factory=dict)   # {maxpool name: (N, C, H', W') int64}
    output_name: str = ""

    @property
    def output(self):
        return self.outputs[self.output_name]

    def __getitem__(self, name):
        try:
            return self.outputs[name]
        except KeyError:
            raise ZFNetError(
                f"activation {name!r} was not kept; pass keep=[{name!r}] or keep='all' to forward()"
            ) from None


def _fill(layer, inputs, out, filled):
    # concat into `out` (N, C, H, W): copy each input not already in its channels
    first = 0
    for name, x in zip(layer.inputs, inputs):
        c = x.shape[1]
        if name not in filled:
            tensors.assign(out[:, first:first + c], x)
        first += c
    return out


def _concat(layer, inputs):
    # (N, C_1 + C_2 + ..., H, W), where the inputs live
    x = inputs[0]
    shape = (x.shape[0], sum(a.shape[1] for a in inputs)) + tuple(x.shape[2:])
    return _fill(layer, inputs, tensors.empty(shape, x), ())


def _param(net, layer, tensor, device):
    # a weight or bias (None: no bias): the NumPy array, or its device copy (uploaded once)
    key = f"{layer.name}.{tensor}"
    if key not in net.params:
        return None
    return net.device_param(key) if device else net.params[key]


def apply_layer(layer, inputs, net, switches=None, backend=None, relu=False, out=None, relu_input=False,
                filled=()):
    """One layer's forward rule. `inputs` are the arrays named by ``layer.inputs``, batched.

    For a max-pool, its switches are stored in ``switches[layer.name]`` when a dict is given (and
    not recorded at all when switches is None).
    relu=True (conv only): return relu(conv(x)), the ReLU above it fused into the same pass.
    out (conv, concat): write the result into this array (see kernels.conv2d) and return it.
    relu_input=True (max-pool only): pool relu(x), the ReLU below it applied as x is read.
    filled (concat with out): the inputs already in `out` (their convs wrote there); the others
    are copied in.
    """
    op, device = layer.op, tensors.is_device(inputs[0])
    if op == "conv":
        (x,) = inputs
        return kernels.conv2d(x, _param(net, layer, "weight", device), _param(net, layer, "bias", device), layer.stride,
                              layer.padding, layer.groups, backend=backend, relu=relu, out=out)
    if op == "relu":
        return kernels.relu(inputs[0], backend=backend)
    if op == "maxpool":
        y = kernels.max_pool2d(inputs[0], layer.kernel_size, layer.stride, layer.padding,
                               layer.ceil_mode, backend=backend, relu_input=relu_input,
                               return_switches=switches is not None)
        if switches is None:
            return y
        y, switches[layer.name] = y
        return y
    if op == "avgpool":
        return kernels.avg_pool2d(inputs[0], layer.kernel_size, layer.stride, layer.padding,
                                  layer.ceil_mode, layer.count_include_pad, backend=backend)
    if op == "gap":
        return tensors.gap(inputs[0])
    if op == "lrn":
        return kernels.lrn(inputs[0], layer.size, layer.alpha, layer.beta, layer.k,
                           layer.within_channel, backend=backend)
    if op == "concat":
        return _concat(layer, inputs) if out is None else _fill(layer, inputs, out, filled)
    if op == "dropout":
        return inputs[0]
    if op == "flatten":
        return tensors.flat(inputs[0])                          # (N, C*H*W)
    if op == "linear":
        return kernels.linear(inputs[0], _param(net, layer, "weight", device), _param(net, layer, "bias", device),
                              backend=backend)
    if op == "softmax":
        return kernels.softmax(inputs[0], axis=1, backend=backend)
    raise ZFNetError(f"layer {layer.name!r}: no forward rule for op {op!r}")


def check_input(net, x):
    """x must be (N, C, H, W) float32 with the architecture's channel count (NumPy or device)."""
    if tensors.is_device(x):
        from zfnet.kernels.cuda._device import check_device_array
        check_device_array(tensors.to_device(x), "x", 4)
    else:
        check_array(x, "x", 4)
    c = net.arch.input_shape[0]
    if x.shape[1] != c:
        raise ZFNetError(f"{net.arch.name} takes {c}-channel input, got x of shape {x.shape}")
    return x


def run_step(step, live, net, switches=None, backend=None):
    """Run one plan step (plan.Step) on the tensors in `live`; return its output.

    live: {tensor name: (N, ...) array}; a concat's output being filled in place by its convs
    also lives there, under the concat's name, until the concat step completes it.
    switches: the dict the max-pools' switches go to, or None (not recorded).
    """
    if step.applied_by is not None:
        return live[step.inputs[0]]             # a ReLU its conv or its pool applies
    inputs = [live[n] for n in step.inputs]
    out = None
    if step.into is not None:
        # this conv's channels of the concat's output, allocated by the first conv that writes there
        concat, first, stop, shape = step.into
        if concat not in live:
            live[concat] = tensors.empty((inputs[0].shape[0], *shape), inputs[0])  # (N, C, H, W)
        out = live[concat][:, first:stop]                                          # (N, F, H', W')
    elif step.filled:
        out = live[step.name]
    return apply_layer(step.layer, inputs, net, switches, backend, relu=step.relu, out=out,
                       relu_input=step.relu_input, filled=step.filled)


def forward(net, x, keep=None, upto=None, backend=None, switches=True, fuse=True, layout="auto"):
    """Run `net` on a batch. x: (N, C, H, W) float32; any H, W the layers accept.

    keep: "all", a name or list of names, or None (the last layer only).
    upto: stop after this layer (saves the work above it); it becomes the result's output.
    switches=False: do not record the max-pools' switches (``result.switches`` stays empty): a
    faster pass for classifying and scanning, which never project back.
    fuse=True: walk the fused plan (plan.py: a conv applies the ReLU above it, a max-pool the ReLU
    below it, convs write into their concat's output; never for a kept tensor). fuse=False: one
    layer at a time, the reference; both give the same bits. ``print(plan(net.arch, ...))``
    shows the steps.
    layout: "nchwc" walks the plan on the channel-blocked layout (blocked.py), "nchw" on NCHW,
    "auto" (default) as blocked.LAYOUTS says for the architecture; the results are NCHW either way.
    """
    check_input(net, x)
    backend, run_x = on_backend(x, backend)
    p = plan(net.arch, tuple(x.shape[1:]), keep, upto, switches, fuse)
    result = ForwardResult(output_name=p.output)
    if blocked.choose_layout(layout, p.arch_name, backend) == "nchwc":
        im2col = blocked.IM2COL_LAYERS.get(p.arch_name, ()) if layout == "auto" else ()
        return blocked.forward_blocked(p, net, x, result, im2col)
    live = {INPUT: run_x}
    for step in p.steps:
        y = live[step.name] = run_step(step, live, net, result.switches if p.switches else None, backend)
        if step.keep:
            result.outputs[step.name] = y
        for name in step.drop:
            live.pop(name, None)
    host = not tensors.is_device(x)
    result.outputs = {n: tensors.to_caller(a, host) for n, a in result.outputs.items()}
    result.switches = {n: tensors.to_caller(a, host) for n, a in result.switches.items()}
    if p.keep_input:
        result.outputs = {INPUT: x, **result.outputs}
    return result


def on_backend(x, backend):
    """(the backend name, x where it runs): a NumPy x copied to the device once for 'cuda'; a
    device x runs on 'cuda' (another explicit backend is an error)."""
    name = choose("cuda" if backend is None and tensors.is_device(x) else backend)
    if tensors.is_device(x) and name != "cuda":
        raise ZFNetError(f"x is a CUDA device array: run it with backend='cuda', not {name!r} "
                         f"(or pass a NumPy array)")
    return name, (tensors.to_device(x) if name == "cuda" else x)
