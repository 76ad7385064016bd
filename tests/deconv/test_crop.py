"""The receptive-field-cropped walk gives the dense walk's projection (to 1e-6 relative).

Units in the four corners, on the edges and in the centre of every spatial layer, for networks
with every layer type, in all three modes and both LRN rules. The two walks differ only in their
boxes (zfnet/deconv/crop.py): sliced forward masks, switches re-expressed in a box, transposed
convolutions without padding pasted into a box, LRN gradients on a margin. Where they differ in
the last bits it is BLAS: a 1-unit box is a matrix-vector product, summed in another order.
"""
import numpy as np
import pytest

from deconv_support import kitchen_sink, real_squeezenet, rel_err, truncated
from zfnet.deconv import MODES, Unit, project
from zfnet.deconv.crop import unit_plan
from zfnet.net import Net, forward, get_architecture

TOL = 1e-6


def _positions(h, w):
    # four corners, two edges, the centre
    return sorted({(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, w // 2), (h // 2, w - 1),
                   (h // 2, w // 2)})


def _units(act, image=0):
    """Every position above, each in the map that is strongest there (zero units too, if any)."""
    return [Unit(image, int(np.argmax(act[image, :, y, x])), y, x) for y, x in _positions(*act.shape[2:])]


MODES_ONLY = [(mode, "identity") for mode in MODES]
WITH_LRN = MODES_ONLY + [("deconvnet", "gradient"), ("gradient", "gradient")]


def _check_layers(net, x, layers, combos=MODES_ONLY):
    fwd = forward(net, x, keep="all")
    worst, identical, total = 0.0, 0, 0
    for layer in layers:
        units = _units(fwd[layer], image=x.shape[0] - 1)
        for mode, lrn in combos:
            cropped = project(net, x, layer, units, mode=mode, lrn=lrn, crop=True, forward_result=fwd)
            dense = project(net, x, layer, units, mode=mode, lrn=lrn, crop=False, forward_result=fwd)
            for k, u in enumerate(units):
                e = rel_err(cropped[k], dense[k])
                assert e <= TOL, (layer, mode, lrn, u, e)
                worst = max(worst, e)
                identical += int(np.array_equal(cropped[k], dense[k]))
                total += 1
    # How many come out bit-equal depends on the BLAS kernel's summation order (CPU-specific),
    # so only the tolerance above is the contract; the count is returned for information.
    return worst, identical, total


def _spatial(arch, ops=("conv", "relu", "maxpool", "avgpool", "lrn", "concat", "dropout")):
    return [layer.name for layer in arch.layers if layer.op in ops and len(arch.shapes[layer.name]) == 3]


def test_zfnet_every_layer():
    net = Net.random(truncated(get_architecture("zfnet"), "pool5", (99, 91)), 1)
    x = np.random.default_rng(1).standard_normal((2, 3, 99, 91)).astype(np.float32)
    _check_layers(net, x, _spatial(net.arch), WITH_LRN)


def test_zf_caffe_within_channel_lrn_margins():
    net = Net.random(truncated(get_architecture("zf_caffe"), "pool5", (83, 91)), 2)
    x = np.random.default_rng(2).standard_normal((1, 3, 83, 91)).astype(np.float32)
    _check_layers(net, x, ["relu1", "norm1", "pool1", "norm2", "pool2", "conv4", "pool5"], WITH_LRN)


def test_caffenet_grouped():
    net = Net.random(truncated(get_architecture("caffenet"), "pool5", (131, 131)), 3)
    x = np.random.default_rng(3).standard_normal((1, 3, 131, 131)).astype(np.float32)
    _check_layers(net, x, ["conv2", "pool2", "conv4", "relu5", "pool5"])


def test_squeezenet_every_layer_type():
    net = Net.random(get_architecture("squeezenet1_0"), 4)
    x = np.random.default_rng(4).standard_normal((1, 3, 83, 83)).astype(np.float32)
    fire = ("squeeze1x1", "relu_squeeze1x1", "expand1x1", "relu_expand1x1", "expand3x3", "relu_expand3x3", "concat")
    layers = ["conv1", "relu_conv1", "pool1", *(f"fire2/{n}" for n in fire), "pool4", "fire6/concat",
              "pool8", *(f"fire9/{n}" for n in fire), "drop9", "conv10", "relu_conv10"]
    _check_layers(net, x, layers)


def test_every_layer_type():
    net = Net.random(kitchen_sink(), 5)
    x = np.random.default_rng(5).standard_normal((2, 3, 31, 25)).astype(np.float32)
    _check_layers(net, x, _spatial(net.arch), WITH_LRN)


@pytest.mark.slow
def test_zfnet_full_size_conv5():
    net = Net.random(truncated(get_architecture("zfnet"), "pool5", (224, 224)), 6)
    x = np.random.default_rng(6).standard_normal((1, 3, 224, 224)).astype(np.float32)
    _check_layers(net, x, ["conv1", "pool1", "conv2", "conv5", "pool5"], [("deconvnet", "identity"), ("gradient", "gradient")])


@pytest.mark.slow
def test_real_squeezenet(squeezenet_dir, reference_outputs):
    net = real_squeezenet(squeezenet_dir)
    x = np.ascontiguousarray(reference_outputs["data"][2:3])
    _check_layers(net, x, ["relu_conv1", "fire2/concat", "fire4/expand1x1", "fire7/relu_squeeze1x1", "fire9/concat"],
                  [("deconvnet", "identity"), ("guided", "identity")])


def test_padding_only_units_project_to_zero():
    # SqueezeNet's conv10 (1x1, pad 1): its border units read only padding; the cropped walk
    # stops at once, the dense walk carries zeros; both give an all-zero projection
    net = Net.random(get_architecture("squeezenet1_0"), 7)
    x = np.random.default_rng(7).standard_normal((1, 3, 99, 99)).astype(np.float32)
    fwd = forward(net, x, keep="all")
    h, w = fwd["conv10"].shape[2:]
    assert "data" not in unit_plan(net.arch.with_input_shape((3, 99, 99)), "conv10", 0, w - 1)
    units = [Unit(0, 3, 0, w - 1), Unit(0, 3, h - 1, 2)]
    for crop in (True, False):
        assert not project(net, x, "conv10", units, crop=crop, forward_result=fwd).any()
    assert project(net, x, "conv10", [Unit(0, 3, 1, 1)], forward_result=fwd).any()


def test_cropped_walks_run_on_one_core_and_restore_the_pools():
    # project() runs single units inside kernels._threads.serial(): Numba and OpenBLAS on one
    # thread (their small ops cost more to wake workers for than to do), restored afterwards
    import numba

    from zfnet.kernels._threads import _openblas_set_threads_local, serial
    blas = _openblas_set_threads_local()
    if "openblas" in np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]:
        assert blas is not None                    # numpy's OpenBLAS (>= 0.3.27) has the thread-local switch
    before_numba = numba.get_num_threads()
    before_blas = blas(before_numba) if blas else None
    if blas:
        blas(before_blas)
    seen = {}
    with serial():
        seen["numba"] = numba.get_num_threads()
        seen["blas"] = blas(1) if blas else 1
    assert seen == {"numba": 1, "blas": 1}
    assert numba.get_num_threads() == before_numba
    if blas:
        assert blas(before_blas) == before_blas
