"""Receptive fields: hand-computed values, clipping, and agreement with what projections touch."""
import numpy as np
import pytest
import torch

from deconv_support import real_squeezenet
from zfnet import ZFNetError
from zfnet.deconv import Unit, project
from zfnet.deconv.crop import unit_plan
from zfnet.net import (Architecture, AvgPool, Concat, Conv, Net, ReLU, forward, get_architecture)
from zfnet.net.receptive import RF, receptive_field, receptive_fields, unit_box


def _triples(arch, names):
    rfs = receptive_fields(arch)
    return {n: (rfs[n].size[0], rfs[n].stride[0], rfs[n].offset[0]) for n in names}


def test_zfnet_by_hand():
    # r' = r + (k-1) j, j' = j s, o' = o - p j, from data (1, 1, 0):
    # conv1 7/2 pad 1 -> (7, 2, -1); pool1 3/2 -> (7+2*2, 4, -1); conv2 5/2 -> (11+4*4, 8, -1);
    # pool2 3/2 -> (27+2*8, 16, -1); conv3-5 3/1 pad 1 -> +32 each, offset -16 each; pool5 3/2.
    want = {
        "conv1": (7, 2, -1), "relu1": (7, 2, -1), "pool1": (11, 4, -1), "norm1": (11, 4, -1),
        "conv2": (27, 8, -1), "pool2": (43, 16, -1), "norm2": (43, 16, -1), "conv3": (75, 16, -17),
        "conv4": (107, 16, -33), "conv5": (139, 16, -49), "pool5": (171, 32, -49),
    }
    arch = get_architecture("zfnet")
    assert _triples(arch, want) == want
    for name in want:  # square kernels, square fields
        rf = receptive_field(arch, name)
        assert rf.size[0] == rf.size[1] and rf.stride[0] == rf.stride[1] and rf.spatial
    # fully connected layers see the union of pool5's 6x6 fields: 171 + 5*32 = 331 from -49
    fc = receptive_field(arch, "fc6")
    assert (fc.size, fc.offset, fc.spatial) == ((331, 331), (-49, -49), False)
    assert receptive_field(arch, "prob") == fc


def test_squeezenet_by_hand_concat_is_the_union():
    # conv1 7/2 no pad, pool1 3/2; in a fire module expand3x3 (pad 1) adds 2*j and moves the
    # offset by -j, and the concat's field is the union = the 3x3 branch's
    want = {
        "conv1": (7, 2, 0), "pool1": (11, 4, 0), "fire2/squeeze1x1": (11, 4, 0),
        "fire2/expand1x1": (11, 4, 0), "fire2/expand3x3": (19, 4, -4), "fire2/concat": (19, 4, -4),
        "fire3/concat": (27, 4, -8), "fire4/concat": (35, 4, -12), "pool4": (43, 8, -12),
        "fire5/concat": (59, 8, -20), "fire8/concat": (107, 8, -44), "pool8": (123, 16, -44),
        "fire9/concat": (155, 16, -60), "drop9": (155, 16, -60), "conv10": (155, 16, -76),
    }
    arch = get_architecture("squeezenet1_0")
    assert _triples(arch, want) == want
    gap = receptive_field(arch, "pool10")      # 15x15 conv10 grid: 155 + 14*16 = 379 from -76
    assert (gap.size, gap.offset, gap.spatial) == ((379, 379), (-76, -76), False)
    assert unit_box(arch, "pool10", None, None) == (0, 227, 0, 227)


def test_within_channel_lrn_widens_the_field():
    # zf_caffe: conv1 7/2 pad 3 -> (7, 2, -3); norm1 (within channel, n=3) acts as 3/1 pad 1
    want = {"conv1": (7, 2, -3), "norm1": (11, 2, -5), "pool1": (15, 4, -7), "conv2": (31, 8, -15),
            "norm2": (47, 8, -23), "pool2": (63, 16, -31)}
    assert _triples(get_architecture("zf_caffe"), want) == want


def test_unit_box_clips_to_the_image():
    arch = get_architecture("zfnet")
    assert unit_box(arch, "conv5", 6, 6) == (47, 186, 47, 186)          # -49 + 6*16 = 47, +139
    assert unit_box(arch, "conv5", 0, 0) == (0, 90, 0, 90)              # [-49, 90) clipped
    assert unit_box(arch, "conv5", 12, 0) == (143, 224, 0, 90)          # [143, 282) clipped
    assert unit_box(arch, "conv1", 0, 109) == (0, 6, 217, 224)          # [-1, 6) x [217, 224)
    assert unit_box(arch, "data", 5, 7) == (5, 6, 7, 8)
    assert RF((3, 3), (2, 2), (-1, -1)).box(2, 0) == (3, 6, -1, 2)
    # another input size: the same field, clipped to the new image
    sq = get_architecture("squeezenet1_0")
    assert unit_box(sq, "fire9/concat", 0, 0, input_hw=(131, 131)) == (0, 95, 0, 95)


def test_unit_box_errors_name_the_valid_range():
    arch = get_architecture("zfnet")
    with pytest.raises(ZFNetError, match="0..12"):
        unit_box(arch, "conv5", 13, 0)
    with pytest.raises(ZFNetError, match="has no layer 'conv9'.*conv5"):
        unit_box(arch, "conv9", 0, 0)
    with pytest.raises(ZFNetError, match="give a position"):
        unit_box(arch, "conv5", None, None)
    with pytest.raises(ZFNetError, match="no spatial grid"):
        unit_box(arch, "fc6", 1, 2)


@pytest.mark.parametrize("name", ["zfnet", "squeezenet1_0", "zf_caffe", "caffenet"])
def test_crop_plan_reaches_exactly_the_receptive_field(name):
    # the boxes the cropped walk uses, carried down to the pixels, are the unit's field
    # (within-channel LRN widens it only when its gradient is taken: lrn="gradient")
    arch = get_architecture(name)
    H, W = arch.input_shape[1:]
    rfs = receptive_fields(arch)
    for layer in arch.layers:
        shape = arch.shapes[layer.name]
        if len(shape) != 3 or not rfs[layer.name].spatial:
            continue
        h, w = shape[1:]
        for y, x in {(0, 0), (h - 1, w - 1), (0, w - 1), (h // 2, w // 3)}:
            box = unit_box(arch, layer.name, y, x)
            plan = unit_plan(arch, layer.name, y, x, lrn="gradient")
            if "data" not in plan:
                # a unit whose window lies in the padding (SqueezeNet conv10's border) sees no
                # pixel at all; the formula still gives the field it would have
                assert layer.name in ("conv10", "relu_conv10") and (y, x) != (h // 2, w // 3)
                continue
            assert plan["data"] == box, (layer.name, y, x)
            loose = unit_plan(arch, layer.name, y, x, lrn="identity")["data"]
            assert box[0] <= loose[0] <= loose[1] <= box[1] and box[2] <= loose[2] <= loose[3] <= box[3]
            if name != "zf_caffe":
                assert loose == box


def _positive_pyramid():
    # convolutions and average pools only (every input in a window matters), with a branch
    layers = [
        Conv("c1", "data", 2, 3, 3, 2, 1), ReLU("r1", "c1"),
        AvgPool("p1", "r1", 3, 2, 1, ceil_mode=True, count_include_pad=False),
        Conv("c2a", "p1", 3, 2, 1), Conv("c2b", "p1", 3, 2, 5, 1, 2),
        Concat("cat", ("c2a", "c2b")), Conv("c3", "cat", 4, 2, 3, 2, 0),
    ]
    return Architecture("pyramid", layers, (2, 31, 29))


def _support(x, unit):
    # rows/columns of the input where d unit / d x is nonzero, as a half-open box
    (g,) = torch.autograd.grad(unit, x, retain_graph=True)
    rows = np.flatnonzero(g[0].abs().sum(dim=(0, 2)).numpy())
    cols = np.flatnonzero(g[0].abs().sum(dim=(0, 1)).numpy())
    return (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)


def test_gradient_support_is_the_box_exactly():
    # With positive weights, biases and inputs every ReLU is on and the gradient of a unit with
    # respect to the input (torch autograd, independent of zfnet) is nonzero on exactly its field.
    arch = _positive_pyramid()
    net = Net.random(arch, 3)
    params = {k: torch.from_numpy(np.abs(v) + 0.05) for k, v in net.params.items()}
    x = torch.rand(1, 2, 31, 29, dtype=torch.float64) + 0.5
    x.requires_grad_(True)
    import torch.nn.functional as F

    def run(x):
        c1 = F.relu(F.conv2d(x, params["c1.weight"].double(), params["c1.bias"].double(), 2, 1))
        p1 = F.avg_pool2d(c1, 3, 2, 1, ceil_mode=True, count_include_pad=False)
        a = F.conv2d(p1, params["c2a.weight"].double(), params["c2a.bias"].double())
        b = F.conv2d(p1, params["c2b.weight"].double(), params["c2b.bias"].double(), 1, 2)
        return {"c1": c1, "p1": p1, "cat": torch.cat([a, b], 1),
                "c3": F.conv2d(torch.cat([a, b], 1), params["c3.weight"].double(), params["c3.bias"].double(), 2)}

    out = run(x)
    for layer, t in out.items():
        assert t.shape[1:] == arch.shapes[layer]
        h, w = t.shape[2:]
        for y, xx in {(0, 0), (h - 1, w - 1), (h // 2, 0), (1, w // 2)}:
            box = unit_box(arch, layer, y, xx)
            # the last map comes from the widest branch (c2b at the concat): its field is the box
            assert _support(x, t[0, -1, y, xx]) == box, (layer, y, xx)
            # the concat's first map (the 1x1 branch) sees less: inside the box
            s = _support(x, t[0, 0, y, xx])
            assert box[0] <= s[0] < s[1] <= box[1] and box[2] <= s[2] < s[3] <= box[3]


def test_real_squeezenet_patch_holds_every_nonzero_pixel(squeezenet_dir, reference_outputs):
    net = real_squeezenet(squeezenet_dir)
    x = np.ascontiguousarray(reference_outputs["data"][:1])
    fwd = forward(net, x, keep="all")
    checked = 0
    for layer, (y, xx) in (("relu_conv1", (40, 70)), ("fire3/concat", (0, 54)), ("pool4", (13, 13)),
                           ("fire7/concat", (26, 0)), ("fire9/concat", (6, 6))):
        c = int(np.argmax(fwd.outputs[layer][0, :, y, xx]))
        for mode in ("deconvnet", "guided", "gradient"):
            p = project(net, x, layer, [Unit(0, c, y, xx)], mode=mode, crop=False, forward_result=fwd)[0]
            y0, y1, x0, x1 = unit_box(net.arch, layer, y, xx)
            outside = np.abs(p).sum(axis=0)
            assert outside.max() > 0, (layer, mode)
            outside[y0:y1, x0:x1] = 0
            assert not outside.any(), (layer, mode)
            checked += 1
    assert checked == 15
