"""The forward plan: the layer specs turned, once, into the list of steps forward() walks.

    p = plan(net.arch, (3, 224, 224), keep=None)      # cached: the same arguments, the same Plan
    print(p)                                          # one line a step: what runs, and how

    pool1 = maxpool(relu(relu1))  drop relu1           the pool rectifies as it reads
    fire2/expand1x1 = conv(fire2/relu_squeeze1x1) +relu -> fire2/concat[:, 0:64]
    fire2/concat = concat(fire2/relu_expand1x1*, ...)  * = already in place, not copied

A step makes one layer's output: its op, its inputs, and where the speed work changes the plain
layer-by-layer pass (fuse=True), always with the same numbers bit for bit:

    fused ReLU    a conv whose only reader is a ReLU computes relu(conv(x)) in one pass
                  (kernels.conv2d(relu=True)); the ReLU step passes the array on (fused_relus)
    ReLU on read  such a ReLU, read only by a max-pool: the conv skips it and the pool rectifies
                  its input as it reads it (kernels.max_pool2d(relu_input=True)) (relus_into_pools)
    into a concat a conv (or its fused ReLU) read only by a concat writes its channels of the
                  concat's output (kernels.conv2d(out=...)); the concat copies the rest (concat_slices)

None of these touches a tensor someone keeps. Every step also lists the tensors no later step
reads (`drop`), so that the walk holds only the live set.
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from zfnet.net.graph import INPUT


class Into(NamedTuple):
    """Channels [first, stop) of a concat's output (N, *shape), written in place by a conv."""
    concat: str
    first: int
    stop: int
    shape: tuple          # the concat's (C, H, W)


@dataclass(frozen=True)
class Step:
    """One layer's forward rule, with the plan's choices for it.

    layer: the spec (zfnet.net.spec) whose output this step makes; it reads ``layer.inputs``.
    relu: conv only: compute relu(conv(x)) (the ReLU above it is a pass-through).
    relu_input: max-pool only: pool relu(x) (the ReLU below it is a pass-through).
    applied_by: a ReLU only: the layer that applies it (its conv, or the pool that reads it); the
        step then passes its input on unchanged.
    into: conv only: write into these channels of a concat's output instead of an array of its own.
    filled: concat only: the inputs already in its output (written there by their convs).
    keep: the result keeps this output.
    drop: the tensors no later step reads, dropped after this one.
    """
    layer: object
    relu: bool = False
    relu_input: bool = False
    applied_by: str = None
    into: Into = None
    filled: tuple = ()
    keep: bool = False
    drop: tuple = ()

    @property
    def name(self):
        return self.layer.name

    @property
    def inputs(self):
        return self.layer.inputs

    def __str__(self):
        """e.g. ``pool1 = maxpool(relu(relu1)) +switches  drop relu1``."""
        args = ", ".join(f"{n}*" if n in self.filled else n for n in self.inputs)
        if self.applied_by is not None:
            text = f"{self.name} = {args}  (the ReLU is applied by {self.applied_by})"
        elif self.relu_input:
            text = f"{self.name} = {self.layer.op}(relu({args}))"
        else:
            text = f"{self.name} = {self.layer.op}({args})" + (" +relu" if self.relu else "")
        if self.into is not None:
            text += f" -> {self.into.concat}[:, {self.into.first}:{self.into.stop}]"
        if self.keep:
            text += "  keep"
        if self.drop:
            text += f"  drop {', '.join(self.drop)}"
        return text


@dataclass(frozen=True)
class Plan:
    """The steps of one forward pass: architecture, input shape (C, H, W), keep, upto, switches."""
    arch_name: str
    input_shape: tuple
    steps: tuple
    keep_input: bool      # the result keeps the input x itself
    switches: bool        # the max-pools record their switches
    fuse: bool

    @property
    def output(self):
        return self.steps[-1].name

    def __str__(self):
        head = (f"forward plan: {self.arch_name} on {self.input_shape}, {len(self.steps)} steps, "
                f"{'fused' if self.fuse else 'unfused'}, switches {'recorded' if self.switches else 'not recorded'}"
                + (", keeps data" if self.keep_input else ""))
        return "\n".join([head] + [f"  {s}" for s in self.steps])


# ----------------------------------------------------------------------------------------------
# The planners: which fusions apply (each one keeps the numbers bit for bit)
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------------------

def keep_set(arch, keep):
    """The tensor names a forward result keeps: keep ("all", a name, names or None) + the output."""
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


def _drops(layers):
    """[(tensors whose last reader is layer i)] for each layer i."""
    last_use = {}
    for i, layer in enumerate(layers):
        for name in layer.inputs:
            last_use[name] = i
    drops = [[] for _ in layers]
    for name, i in last_use.items():
        drops[i].append(name)
    return [tuple(d) for d in drops]


def _steps(arch, layers, keep_names, fuse):
    """The steps of `layers` (arch at the input's shape), fused where fuse allows."""
    fused = fused_relus(layers, keep_names) if fuse else {}
    into_pools = relus_into_pools(layers, keep_names, fused)
    slices = concat_slices(arch, layers, keep_names, fused)
    # a ReLU's applier: the pool that reads it, else the conv below it
    applied_by = {relu: into_pools.get(relu, conv) for conv, relu in fused.items()}
    pooled = set(into_pools.values())             # the max-pools that rectify as they read
    filled = {}                                   # {concat: inputs its convs write in place}
    for conv, (concat, _) in slices.items():
        filled.setdefault(concat, set()).add(fused.get(conv, conv))
    steps = []
    for layer, drop in zip(layers, _drops(layers)):
        name, into = layer.name, None
        if name in slices:
            concat, first = slices[name]
            into = Into(concat, first, first + arch.shapes[name][0], arch.shapes[concat])
        steps.append(Step(
            layer,
            relu=name in fused and fused[name] not in into_pools,
            relu_input=name in pooled,
            applied_by=applied_by.get(name),
            into=into,
            filled=tuple(n for n in layer.inputs if n in filled.get(name, ())),
            keep=name in keep_names,
            drop=drop,
        ))
    return tuple(steps)


def _hashable(keep):
    return tuple(keep) if isinstance(keep, (list, tuple, set, frozenset)) else keep


def plan(arch, input_shape=None, keep=None, upto=None, switches=True, fuse=True):
    """The Plan of forward(net, x, keep, upto, switches, fuse) for x of shape (N, *input_shape).

    arch: an Architecture; input_shape: (C, H, W), arch.input_shape if None. keep: "all", a
    name or list of names, or None (the last layer only); upto: the last layer to run.
    Computed once per distinct arguments (cached).
    """
    shape = arch.input_shape if input_shape is None else tuple(int(v) for v in input_shape)
    return _plan(arch, shape, _hashable(keep), upto, bool(switches), bool(fuse))


@lru_cache(maxsize=256)
def _plan(arch, input_shape, keep, upto, switches, fuse):
    arch = arch if input_shape == arch.input_shape else arch.with_input_shape(input_shape)
    last = arch.index(upto) if upto is not None else len(arch.layers) - 1
    layers = arch.layers[: last + 1]
    keep_names = keep_set(arch, keep) | {layers[-1].name}
    return Plan(arch.name, input_shape, _steps(arch, layers, keep_names, fuse),
                INPUT in keep_names, switches, fuse)
