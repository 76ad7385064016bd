"""The real SqueezeNet v1.0 from each of its four files: one Net, and onnxruntime's outputs.

The four files (caffemodel, onnx, pth, Deep Compression .net) were written by different tools;
converted here they must give the built-in squeezenet1_0 architecture and bit-identical tensors,
and the forward pass must reproduce reference_outputs.npz (onnxruntime 1.32 on the .onnx).
"""
import numpy as np
import pytest

from zfnet.convert import convert
from zfnet.net import forward, get_architecture

FILES = {
    "caffe": "squeezenet1_0.caffemodel",
    "onnx": "squeezenet1_0.onnx",
    "torch_pth": "squeezenet1_0.pth",
    "deep_compression": "compressed_SqueezeNet.net",
}
# sha256 from shared/data/weights/squeezenet1_0/README.md: source_sha256 must be the file's.
SHA256 = {
    "squeezenet1_0.caffemodel": "03670e558687c0784af00dc11dc6f271b74cc5da0feff0d54ac5c03f3e143dc0",
    "squeezenet1_0.onnx": "a22612945d9607f2e47ef30503c42b76b79266a02139c2e3b41f3c8e95eda8dc",
    "squeezenet1_0.pth": "5c0d278b33ed882ac2ac94a8190d7661967f984dd15c390ffd3f9977bf9b50f7",
    "compressed_SqueezeNet.net": "e4ab6960ae8cd81505e1c2136921201507e930966c53deaf15862a395b3a3261",
}
ACTIVATIONS = {"img0_pool1": "pool1", "img0_fire9_concat": "fire9/concat",
               "img0_relu_conv10": "relu_conv10", "img0_pool10": "pool10"}


@pytest.fixture(scope="session")
def squeezenets(squeezenet_dir):
    """{converter: Net}, each converted once per session."""
    return {fmt: convert(squeezenet_dir / name) for fmt, name in FILES.items()}


@pytest.fixture(scope="session")
def squeezenet_outputs(squeezenets, reference_outputs):
    """{converter: ForwardResult} on reference_outputs' six images."""
    keep = list(ACTIVATIONS.values())
    return {fmt: forward(net, reference_outputs["data"], keep=keep) for fmt, net in squeezenets.items()}


@pytest.mark.parametrize("fmt", FILES)
def test_each_file_gives_the_builtin_architecture(squeezenets, fmt):
    net = squeezenets[fmt]
    assert net.arch == get_architecture("squeezenet1_0")
    meta = net.meta
    assert meta["converter"] == fmt
    assert meta["architecture"] == "squeezenet1_0"
    assert meta["input_size"] == [227, 227]
    assert meta["source_file"] == FILES[fmt]
    assert meta["source_sha256"] == SHA256[FILES[fmt]]
    assert meta["converter_version"]
    assert len(net.params) == 52
    n_params = sum(a.size for a in net.params.values())
    assert n_params == 1_248_424                       # README: 1,244,448 weights + 3,976 biases


@pytest.mark.parametrize("fmt", [f for f in FILES if f != "caffe"])
def test_all_four_files_hold_bit_identical_tensors(squeezenets, fmt):
    reference, net = squeezenets["caffe"], squeezenets[fmt]
    assert list(net.params) == list(reference.params)
    for key, a in reference.params.items():
        b = net.params[key]
        assert b.dtype == np.float32 and b.flags.c_contiguous and b.shape == a.shape, key
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), f"{key} differs in {fmt}"


def test_weights_are_the_pruned_deep_compression_model(squeezenets):
    weights = [a for k, a in squeezenets["deep_compression"].params.items() if k.endswith(".weight")]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert 0.66 < zeros < 0.67                         # README: 66.6 % of the weights are 0
    for w in weights:
        assert len(np.unique(w)) <= 256                # one 256-entry codebook per layer


def test_caffe_input_convention_is_recorded(squeezenets):
    for fmt in ("caffe", "deep_compression"):
        meta = squeezenets[fmt].meta
        assert meta["channel_order"] == "BGR" and meta["scale"] == 255.0 and meta["std"] == [1.0] * 3
    assert squeezenets["deep_compression"].meta["mean"] == [104.0, 117.0, 123.0]


@pytest.mark.parametrize("fmt", FILES)
def test_forward_matches_onnxruntime_probabilities(squeezenet_outputs, reference_outputs, fmt):
    prob = squeezenet_outputs[fmt].output
    assert prob.shape == (6, 1000)
    assert np.abs(prob - reference_outputs["prob"]).max() <= 1e-4
    top5 = np.argsort(-prob, axis=1)[:, :5]
    np.testing.assert_array_equal(top5, reference_outputs["top5"])


@pytest.mark.parametrize("key", ACTIVATIONS)
def test_forward_matches_onnxruntime_activations(squeezenet_outputs, reference_outputs, key):
    want = reference_outputs[key]
    got = squeezenet_outputs["caffe"][ACTIVATIONS[key]][0]
    assert got.shape == want.shape
    # float32 summation order: errors grow with the magnitude of the values (up to ~1100 here).
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-4 * scale + 1e-5
    # The other formats' nets are bit-identical, so are their activations.
    for fmt in FILES:
        np.testing.assert_array_equal(squeezenet_outputs[fmt][ACTIVATIONS[key]][0], got)


def test_convert_with_deploy_prototxt_equals_caffemodel_alone(squeezenet_dir, squeezenets):
    net = convert(squeezenet_dir / "squeezenet1_0.caffemodel",
                  prototxt=squeezenet_dir / "deploy.prototxt")
    assert net.arch == squeezenets["caffe"].arch
    assert net.meta["prototxt"] == "deploy.prototxt"
    for key, a in squeezenets["caffe"].params.items():
        assert np.array_equal(a, net.params[key])
