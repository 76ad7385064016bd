"""The forward pass: walk the layer specs in order, on the kernels.

    result = forward(net, x, keep="all")      # x: (N, C, H, W) float32, preprocessed
    result.outputs["conv5"]                    # (N, F, H', W')
    result.switches["pool5"]                   # (N, F, H', W') int64 flat indices into pool5's input plane
    result.output                              # the last layer's output, e.g. (N, 1000) probabilities

Every max-pool's switches are always recorded (the deconvnet needs them); activations are kept
only for the names in ``keep`` ("all", a list of names, or None for the last layer alone), and
a tensor is dropped as soon as no later layer reads it, so memory stays at the live set.
"""
from dataclasses import dataclass, field

import numpy as np

from zfnet import kernels
from zfnet.errors import ZFNetError
from zfnet.kernels._checks import check_array
from zfnet.net.graph import INPUT


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


def _gap(x):
    # (N, C, H, W) -> (N, C, 1, 1): mean over each feature map, accumulated in float64 then cast.
    return x.mean(axis=(2, 3), dtype=np.float64, keepdims=True).astype(np.float32)


def apply_layer(layer, inputs, net, switches=None, backend=None, relu=False, out=None, relu_input=False):
    """One layer's forward rule. `inputs` are the arrays named by ``layer.inputs``, batched.

    For a max-pool, its switches are stored in ``switches[layer.name]`` when a dict is given (and
    not recorded at all when switches is None).
    relu=True (conv only): return relu(conv(x)), the ReLU above it fused into the same pass.
    out (conv only): write the result into this array (see kernels.conv2d) and return it.
    relu_input=True (max-pool only): pool relu(x), the ReLU below it applied as x is read.
    """
    op = layer.op
    if op == "conv":
        (x,) = inputs
        return kernels.conv2d(x, net.weight(layer.name), net.bias(layer.name), layer.stride,
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
        return _gap(inputs[0])
    if op == "lrn":
        return kernels.lrn(inputs[0], layer.size, layer.alpha, layer.beta, layer.k,
                           layer.within_channel, backend=backend)
    if op == "concat":
        return np.concatenate(inputs, axis=1)
    if op == "dropout":
        return inputs[0]
    if op == "flatten":
        x = inputs[0]
        return np.ascontiguousarray(x.reshape(x.shape[0], -1))   # (N, C*H*W)
    if op == "linear":
        return kernels.linear(inputs[0], net.weight(layer.name), net.bias(layer.name), backend=backend)
    if op == "softmax":
        return kernels.softmax(inputs[0], axis=1, backend=backend)
    raise ZFNetError(f"layer {layer.name!r}: no forward rule for op {op!r}")


def readers_of(layers):
    """{tensor name: [the layers that read it]}."""
    readers = {}
    for layer in layers:
        for name in layer.inputs:
            readers.setdefault(name, []).append(layer)
    return readers


def fused_relus(layers, keep_names):
    """{conv name: relu name} for every conv whose only reader is a ReLU and that nobody keeps.

    Such a conv's pre-ReLU output is never seen, so the conv computes relu(conv(x)) in one pass
    (kernels.conv2d(relu=True), bit-for-bit the same numbers) and the ReLU passes it on.
    """
    readers = readers_of(layers)
    fused = {}
    for layer in layers:
        r = readers.get(layer.name, [])
        if (layer.op == "conv" and layer.name not in keep_names and len(r) == 1 and r[0].op == "relu"
                and list(r[0].inputs) == [layer.name]):
            fused[layer.name] = r[0].name
    return fused


def relus_into_pools(layers, keep_names, fused):
    """{relu name: pool name} for every fused ReLU (see fused_relus) whose only reader is a max-pool
    and that nobody keeps.

    Its conv then skips the ReLU and the pool rectifies its input as it reads it
    (kernels.max_pool2d(relu_input=True): the same numbers and switches as pooling relu(x)). Where
    the conv's bias is folded into its GEMM (a wide first layer) this saves a whole pass over the
    largest activation of the network.
    """
    readers = readers_of(layers)
    moved = {}
    for relu in fused.values():
        r = readers.get(relu, [])
        if relu not in keep_names and len(r) == 1 and r[0].op == "maxpool":
            moved[relu] = r[0].name
    return moved


def concat_slices(arch, layers, keep_names, fused):
    """{conv name: (concat name, first channel)} for every conv that writes straight into a concat.

    A concat input qualifies when it is a conv's output (or its fused ReLU's, see fused_relus) that
    only the concat reads and nobody keeps: the conv then writes its channels of the concat's
    output (kernels.conv2d(out=...)) and the concat copies nothing. Kept activations stay arrays
    of their own; the concat copies those.
    """
    readers = readers_of(layers)
    producer = {relu: conv for conv, relu in fused.items()}
    producer.update({layer.name: layer.name for layer in layers if layer.op == "conv" and layer.name not in fused})
    slices = {}
    for layer in layers:
        if layer.op != "concat":
            continue
        first = 0
        for name in layer.inputs:
            if (name in producer and name not in keep_names and producer[name] not in keep_names
                    and len(readers[name]) == 1):
                slices[producer[name]] = (layer.name, first)
            first += arch.shapes[name][0]
    return slices


def _keep_set(arch, keep):
    if keep is None:
        return {arch.output}
    if keep == "all":
        return {INPUT, *arch.names}
    if isinstance(keep, str):
        keep = [keep]
    names = set(keep)
    for n in names:
        if n != INPUT:
            arch.layer(n)  # raises with the list of valid names
    return names | {arch.output}


def check_input(net, x):
    """x must be (N, C, H, W) float32 with the architecture's channel count."""
    check_array(x, "x", 4)
    c = net.arch.input_shape[0]
    if x.shape[1] != c:
        raise ZFNetError(f"{net.arch.name} takes {c}-channel input, got x of shape {x.shape}")
    return x


def forward(net, x, keep=None, upto=None, backend=None, switches=True):
    """Run `net` on a batch. x: (N, C, H, W) float32; any H, W the layers accept.

    keep: "all", a name or list of names, or None (the last layer only).
    upto: stop after this layer (saves the work above it); it becomes the result's output.
    switches=False: do not record the max-pools' switches (``result.switches`` stays empty): a
    faster pass for classifying and scanning, which never project back.
    """
    check_input(net, x)
    arch = net.arch if tuple(x.shape[1:]) == net.arch.input_shape else net.arch.with_input_shape(x.shape[1:])
    last = arch.index(upto) if upto is not None else len(arch.layers) - 1
    layers = arch.layers[: last + 1]
    keep_names = _keep_set(arch, keep) | {layers[-1].name}
    # The last reader of each tensor, so that tensors nobody needs any more can be dropped.
    last_use = {}
    for i, layer in enumerate(layers):
        for name in layer.inputs:
            last_use[name] = i
    fused = fused_relus(layers, keep_names)
    rectified = set(fused.values())
    into_pools = relus_into_pools(layers, keep_names, fused)
    pooled_relu = set(into_pools.values())
    slices = concat_slices(arch, layers, keep_names, fused)
    concat_out = {}                          # {concat name: its (N, C, H, W) output, being filled}
    in_place = set()                         # tensors already in their concat's output
    live = {INPUT: x}
    result = ForwardResult(output_name=layers[-1].name)
    if INPUT in keep_names:
        result.outputs[INPUT] = x
    for i, layer in enumerate(layers):
        if layer.name in rectified:
            # its conv already applied it (fused_relus), or its pool will (relus_into_pools)
            y = live[layer.inputs[0]]
        elif layer.name in slices:
            # write this conv's channels of the concat's output (concat_slices)
            concat, first = slices[layer.name]
            if concat not in concat_out:
                concat_out[concat] = np.empty((x.shape[0], *arch.shapes[concat]), np.float32)
            out = concat_out[concat][:, first:first + arch.shapes[layer.name][0]]   # (N, F, H', W')
            y = apply_layer(layer, [live[layer.inputs[0]]], net, backend=backend,
                            relu=layer.name in fused, out=out)
            in_place.add(fused.get(layer.name, layer.name))
        elif layer.name in concat_out:
            # the convs wrote their channels already; copy the rest (kept or not a conv's output)
            y, first = concat_out.pop(layer.name), 0
            for name in layer.inputs:
                c = live[name].shape[1]
                if name not in in_place:
                    y[:, first:first + c] = live[name]
                first += c
        else:
            y = apply_layer(layer, [live[n] for n in layer.inputs], net,
                            result.switches if switches else None, backend,
                            relu=layer.name in fused and fused[layer.name] not in into_pools,
                            relu_input=layer.name in pooled_relu)
        live[layer.name] = y
        if layer.name in keep_names:
            result.outputs[layer.name] = y
        for name in layer.inputs:
            if last_use[name] == i:
                live.pop(name, None)
    return result
