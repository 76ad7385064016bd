"""The pipeline on the GPU: forward() and project() with backend="cuda" equal the CPU's.

One tiny network with every layer type the pipeline has (strided and grouped convs, a Caffe-
rounded max-pool, LRN, a fire module whose convs write into their concat, average pooling,
global average pooling, flatten, dropout, fc layers, softmax), on a 13x11 input: the simulator
runs each GPU thread in Python, so the shapes are as small as the layers allow.

Runs where numba.cuda can: a real GPU, or Numba's simulator, which test_cuda_simulator.py starts in
a subprocess (NUMBA_ENABLE_CUDASIM=1); skipped elsewhere. Every test name holds 'cuda'.
"""
import numpy as np
import pytest

from zfnet.kernels._backend import cuda_problem
from zfnet.net import (LRN, Architecture, AvgPool, Concat, Conv, Dropout, Flatten, GlobalAvgPool, Linear,
                       MaxPool, Net, ReLU, Softmax, forward)
from zfnet.deconv import Unit, project

pytestmark = pytest.mark.skipif(
    cuda_problem() is not None,
    reason="no CUDA GPU here: test_cuda_simulator.py runs these in Numba's simulator")


def tiny_net():
    layers = [
        Conv("conv1", "data", 3, 4, 3, 2, 1),
        ReLU("relu1", "conv1"),
        LRN("norm1", "relu1", 3, 0.5, 0.75, 1.0),
        MaxPool("pool1", "norm1", 3, 2, 0, ceil_mode=True),
        Conv("squeeze", "pool1", 4, 3, 1),
        ReLU("relu_squeeze", "squeeze"),
        Conv("expand1", "relu_squeeze", 3, 2, 1),
        ReLU("relu_expand1", "expand1"),
        Conv("expand3", "relu_squeeze", 3, 4, 3, 1, 1, groups=1),
        ReLU("relu_expand3", "expand3"),
        Concat("concat", ("relu_expand1", "relu_expand3")),
        AvgPool("apool", "concat", 2, 1, 0, ceil_mode=False, count_include_pad=False),
        Conv("conv2", "apool", 6, 4, 1, groups=2),
        ReLU("relu2", "conv2"),
        GlobalAvgPool("gap", "relu2"),
        Dropout("drop", "gap"),
        Flatten("flat", "drop"),
        Linear("fc1", "flat", 4, 5),
        ReLU("relu_fc1", "fc1"),
        Linear("fc2", "relu_fc1", 5, 3),
        Softmax("prob", "fc2"),
    ]
    return Net.random(Architecture("tiny_pipeline", layers, (3, 13, 11)), seed=3)


@pytest.fixture(scope="module")
def setup():
    net = tiny_net()
    x = np.random.default_rng(0).standard_normal((2, 3, 13, 11)).astype(np.float32)
    return net, x, forward(net, x, keep="all", backend="cpu")


def _close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(want).max())),
                               err_msg=what)


def test_cuda_forward_equals_cpu_numpy_in_numpy_out(setup):
    net, x, cpu = setup
    gpu = forward(net, x, keep="all", backend="cuda")
    assert set(gpu.outputs) == set(cpu.outputs) and set(gpu.switches) == set(cpu.switches) == {"pool1"}
    for name, want in cpu.outputs.items():
        assert isinstance(gpu.outputs[name], np.ndarray), name
        _close(gpu.outputs[name], want, name)
    np.testing.assert_array_equal(gpu.switches["pool1"], cpu.switches["pool1"])
    # the fused plan (convs into their concat, the ReLU applied by the pool) on the device too
    fused = forward(net, x, backend="cuda")
    _close(fused.output, cpu.output, "prob (fused plan)")


def test_cuda_forward_device_in_device_out_weights_uploaded_once(setup):
    from numba import cuda
    net, x, cpu = setup
    first = net.device_param("conv1.weight")
    got = forward(net, cuda.to_device(x), keep=["concat"], upto="concat")       # a device x picks 'cuda'
    assert not isinstance(got["concat"], np.ndarray) and not isinstance(got.switches["pool1"], np.ndarray)
    _close(got["concat"].copy_to_host(), cpu["concat"], "concat")
    np.testing.assert_array_equal(got.switches["pool1"].copy_to_host(), cpu.switches["pool1"])
    assert net.device_param("conv1.weight") is first                  # kept, not uploaded again


@pytest.mark.parametrize("mode", ["deconvnet", "guided", "gradient"])
def test_cuda_project_equals_cpu_dense_and_cropped(setup, mode):
    """One unit (the cropped walk), a whole map (dense), through the fire module's concat; with
    no forward_result (deconvnet) project runs the forward pass on the device itself."""
    net, x, cpu = setup
    units = [Unit(1, 3, 1, 0), Unit(0, 2)]
    want = project(net, x, "conv2", units, mode=mode, forward_result=cpu, backend="cpu")
    handed = None if mode == "deconvnet" else cpu        # a NumPy forward result is uploaded as read
    got = project(net, x, "conv2", units, mode=mode, forward_result=handed, backend="cuda")
    assert isinstance(got, np.ndarray) and np.abs(want).max() > 0
    _close(got, want, mode)


def test_cuda_project_fc_layers_and_lrn_gradient(setup):
    """From the class score (fc2, fc1, gap, the avg-pool, concat, LRN's gradient) to the pixels;
    a device x gives device projections. (The forward pass on the device is tested above; here
    the CPU's forward result is handed over and uploaded as the walk reads it: faster in the
    simulator.)"""
    from numba import cuda
    net, x, cpu = setup
    units = [Unit(0, 1), Unit(1, 2)]
    want = project(net, x, "prob", units, lrn="gradient", forward_result=cpu, backend="cpu")
    got = project(net, x, "prob", units, lrn="gradient", forward_result=cpu, backend="cuda")
    _close(got, want, "prob")
    on_device = project(net, cuda.to_device(x), "prob", units[:1], lrn="gradient", forward_result=cpu)
    assert not isinstance(on_device, np.ndarray)
    _close(on_device.copy_to_host(), want[:1], "prob, device x")


def test_cuda_topk_scan_equals_cpu():
    """The top-k scan (zfnet.viz.scan) with the process-wide backend set to 'cuda', as
    ``zfnet topk --device cuda`` sets it: NumPy images in, the same kept units as on the CPU."""
    from zfnet import kernels
    from zfnet.viz.scan import scan
    net = tiny_net()
    images = np.random.default_rng(5).standard_normal((5, 3, 13, 11)).astype(np.float32)
    by_name = {f"i{i}.png": a for i, a in enumerate(images)}

    def top():
        t = scan(net, list(by_name), "concat", k=2, batch_size=2, load=lambda p, meta, crop: by_name[p]).state.topk
        return t.value, t.image, t.y, t.x
    with kernels.use_backend("cuda"):
        got = top()
    for g, w in zip(got, top()):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_cuda_occlusion_analysis_equals_cpu():
    """An analysis (Fig. 7's occlusion maps) with the process-wide backend set to 'cuda', as
    ``zfnet occlusion --device cuda`` sets it: the same maps as on the CPU."""
    from zfnet import kernels
    from zfnet.viz.occlusion import occlusion_maps
    net = tiny_net()
    x = np.random.default_rng(6).standard_normal((3, 13, 11)).astype(np.float32)

    def maps():
        r = occlusion_maps(net, x, layer="concat", size=5, stride=4, batch_size=3)
        return r.feature_map, r.target, r.activation, r.probability, r.top_class
    with kernels.use_backend("cuda"):
        got = maps()
    want = maps()
    assert got[:2] == want[:2]
    for g, w in zip(got[2:], want[2:]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
