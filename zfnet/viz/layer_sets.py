"""Which layers a scan keeps: ``--layer a,b,c`` or a named set, resolved against a network.

Named sets:

    stages   the last feature-map layer of each stage: a stage is a run of layers at one
             spatial size, ended by a layer that shrinks the maps (a pooling or strided
             layer); the network's last layer with maps larger than 1x1 ends the last stage.
             For SqueezeNet 1.0: relu_conv1, fire4/concat, fire8/concat, relu_conv10.
"""
from zfnet.errors import ZFNetError

NAMED_SETS = ("stages",)


def stage_layers(arch):
    """The last layer of each stage (see the module docstring), in network order."""
    maps = [n for n in arch.names if len(arch.shapes[n]) == 3 and min(arch.shapes[n][1:]) > 1]
    if not maps:
        raise ZFNetError(f"{arch.name} has no layer with feature maps larger than 1x1")
    ends = [a for a, b in zip(maps, maps[1:])
            if arch.shapes[b][1] < arch.shapes[a][1] or arch.shapes[b][2] < arch.shapes[a][2]]
    return ends + ([maps[-1]] if maps[-1] not in ends else [])


def resolve_layers(arch, spec):
    """--layer text (or a list of names) -> the distinct layer names in network order.

    "conv1,fire9/concat" -> those layers; "stages" -> stage_layers(arch). Names are checked
    here: an unknown one is a ZFNetError listing what exists."""
    parts = spec if isinstance(spec, (list, tuple)) else [p.strip() for p in str(spec).split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise ZFNetError(f"--layer {spec!r}: no layer given (a name, a comma-separated list, or one of {NAMED_SETS})")
    names = []
    for p in parts:
        names.extend(stage_layers(arch) if p == "stages" else [arch.layer(p).name])
    return sorted(dict.fromkeys(names), key=arch.index)
