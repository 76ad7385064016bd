"""Every built-in architecture equals an independent torch.nn twin, layer by layer.

Each twin below is written by hand from the papers / Caffe definitions (REFERENCE.md), not
generated from zfnet's layer specs: nn.Conv2d, nn.MaxPool2d(ceil_mode=...), nn.LocalResponseNorm,
Caffe's within-channel LRN as avg_pool2d of squares, fire modules, nn.Linear. A twin returns
every intermediate tensor under its Caffe name; the test checks that the names are exactly the
architecture's layers (so no layer goes unchecked) and that every one agrees with zfnet's
forward pass to 1e-4 relative to the layer's largest magnitude.

The weights are Net.random's (He-scaled), shared with torch without copying. Batch 1 at the
real input sizes (VGG-16's 138M parameters once); the NumPy reference backend runs on the
smaller networks.
"""
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from zfnet.net import Net, forward, get_architecture

RTOL = 1e-4


@pytest.fixture(autouse=True)
def _no_grad():
    """The twins only run forward: no autograd graph, for this module's tests alone (a global
    torch.set_grad_enabled(False) at import would switch autograd off for every later test)."""
    with torch.no_grad():
        yield


def _lrn_within_channel(x, size, alpha, beta):
    """Caffe WITHIN_CHANNEL: b = a / (1 + alpha * mean_{n x n}(a^2))^beta, zero-padded, / n*n always."""
    mean_sq = F.avg_pool2d(x * x, size, stride=1, padding=(size - 1) // 2, count_include_pad=True)
    return x / (1.0 + alpha * mean_sq) ** beta


class Twin(nn.Module):
    """Base: modules are named after the Caffe layers ('/' -> '__'); forward records every output."""

    def record(self, outs, name, x):
        outs[name] = x
        return x

    def layer(self, name):
        return getattr(self, name.replace("/", "__"))

    def classifier(self, outs, x, drop_first=False, hidden=(6, 7)):
        x = self.record(outs, "flatten", torch.flatten(x, 1))
        for i in hidden:
            if drop_first:
                x = self.record(outs, f"drop{i}", x)          # dropout: identity at inference
            x = self.record(outs, f"fc{i}", self.layer(f"fc{i}")(x))
            x = self.record(outs, f"relu{i}", F.relu(x))
            if not drop_first:
                x = self.record(outs, f"drop{i}", x)
        x = self.record(outs, "fc8", self.fc8(x))
        return self.record(outs, "prob", F.softmax(x, dim=1))


class ZFNetTwin(Twin):
    """The paper's ZFNet (Fig. 3) with pads 1/0/1 and Caffe-rounded pools; LRN across 5 maps."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 7, stride=2, padding=1)
        self.conv2 = nn.Conv2d(96, 256, 5, stride=2, padding=0)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.fc6, self.fc7, self.fc8 = nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, num_classes)

    def forward(self, x):
        o = OrderedDict()
        for i in (1, 2):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
            x = self.record(o, f"pool{i}", self.pool(x))
            x = self.record(o, f"norm{i}", self.norm(x))
        for i in (3, 4, 5):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
        x = self.record(o, "pool5", self.pool(x))
        self.classifier(o, x)
        return o


class ZFCaffeTwin(Twin):
    """py-faster-rcnn's ZF: within-channel LRN (3, 5e-5, 0.75) before 3/2 pools with pad 1."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 7, stride=2, padding=3)
        self.conv2 = nn.Conv2d(96, 256, 5, stride=2, padding=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1)
        self.pool_pad = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.pool5 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fc6, self.fc7, self.fc8 = nn.Linear(256 * 7 * 7, 4096), nn.Linear(4096, 4096), nn.Linear(4096, num_classes)

    def forward(self, x):
        o = OrderedDict()
        for i in (1, 2):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
            x = self.record(o, f"norm{i}", _lrn_within_channel(x, 3, 5e-5, 0.75))
            x = self.record(o, f"pool{i}", self.pool_pad(x))
        for i in (3, 4, 5):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
        x = self.record(o, "pool5", self.pool5(x))
        self.classifier(o, x)
        return o


class ZFNet512Twin(Twin):
    """ONNX-zoo ZFNet-512: no conv1/conv2 pads, LRN (5, 5e-4, 0.75, k=2) before floor pools, 512 maps."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 7, stride=2)
        self.conv2 = nn.Conv2d(96, 256, 5, stride=2)
        self.conv3 = nn.Conv2d(256, 512, 3, padding=1)
        self.conv4 = nn.Conv2d(512, 512, 3, padding=1)
        self.conv5 = nn.Conv2d(512, 512, 3, padding=1)
        self.norm = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
        self.pool = nn.MaxPool2d(3, 2)
        self.pool5 = nn.MaxPool2d(2, 2)
        self.fc6, self.fc7, self.fc8 = nn.Linear(18432, 4096), nn.Linear(4096, 1024), nn.Linear(1024, num_classes)

    def forward(self, x):
        o = OrderedDict()
        for i in (1, 2):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
            x = self.record(o, f"norm{i}", self.norm(x))
            x = self.record(o, f"pool{i}", self.pool(x))
        for i in (3, 4, 5):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
        x = self.record(o, "pool5", self.pool5(x))
        self.classifier(o, x)
        return o


class AlexNetTwin(Twin):
    """torchvision's AlexNet (64/192/384/256/256, no LRN, floor pools, dropout before fc6/fc7)."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 11, stride=4, padding=2)
        self.conv2 = nn.Conv2d(64, 192, 5, padding=2)
        self.conv3 = nn.Conv2d(192, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 256, 3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2)
        self.fc6, self.fc7, self.fc8 = nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, num_classes)

    def forward(self, x):
        o = OrderedDict()
        for i in (1, 2, 3, 4, 5):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
            if i in (1, 2, 5):
                x = self.record(o, f"pool{i}", self.pool(x))
        # torchvision's AdaptiveAvgPool2d((6, 6)): the identity on pool5's 6x6 maps at 224 input,
        # which is why zfnet's spec leaves it out. Applied here, so the twin is torchvision's model.
        x = F.adaptive_avg_pool2d(x, (6, 6))
        self.classifier(o, x, drop_first=True)
        return o


class CaffeAlexNetTwin(Twin):
    """BVLC AlexNet (norm then pool) / CaffeNet (pool then norm): 2 groups in conv2, conv4, conv5."""

    def __init__(self, num_classes, norm_first):
        super().__init__()
        self.norm_first = norm_first
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.fc6, self.fc7, self.fc8 = nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, num_classes)

    def forward(self, x):
        o = OrderedDict()
        for i in (1, 2):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
            steps = [("norm", self.norm), ("pool", self.pool)]
            for kind, op in (steps if self.norm_first else steps[::-1]):
                x = self.record(o, f"{kind}{i}", op(x))
        for i in (3, 4, 5):
            x = self.record(o, f"conv{i}", self.layer(f"conv{i}")(x))
            x = self.record(o, f"relu{i}", F.relu(x))
        x = self.record(o, "pool5", self.pool(x))
        self.classifier(o, x)
        return o


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze1x1 = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)


class SqueezeNetTwin(Twin):
    """SqueezeNet v1.0 in Caffe semantics: round-up pools, conv10 with pad 1, global average."""

    FIRES = ((2, 96, 16, 64), (3, 128, 16, 64), (4, 128, 32, 128), (5, 256, 32, 128),
             (6, 256, 48, 192), (7, 384, 48, 192), (8, 384, 64, 256), (9, 512, 64, 256))

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 7, stride=2)
        self.fires = nn.ModuleDict({str(n): Fire(c, s, e) for n, c, s, e in self.FIRES})
        self.conv10 = nn.Conv2d(512, num_classes, 1, padding=1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)

    def layer(self, name):
        if name.startswith("fire"):
            n, part = name[4:].split("/")
            return getattr(self.fires[n], part)
        return getattr(self, name)

    def forward(self, x):
        o = OrderedDict()
        x = self.record(o, "conv1", self.conv1(x))
        x = self.record(o, "relu_conv1", F.relu(x))
        x = self.record(o, "pool1", self.pool(x))
        for n, *_ in self.FIRES:
            fire, p = self.fires[str(n)], f"fire{n}/"
            s = self.record(o, p + "squeeze1x1", fire.squeeze1x1(x))
            s = self.record(o, p + "relu_squeeze1x1", F.relu(s))
            e1 = self.record(o, p + "expand1x1", fire.expand1x1(s))
            e1 = self.record(o, p + "relu_expand1x1", F.relu(e1))
            e3 = self.record(o, p + "expand3x3", fire.expand3x3(s))
            e3 = self.record(o, p + "relu_expand3x3", F.relu(e3))
            x = self.record(o, p + "concat", torch.cat([e1, e3], dim=1))
            if n in (4, 8):
                x = self.record(o, f"pool{n}", self.pool(x))
        x = self.record(o, "drop9", x)
        x = self.record(o, "conv10", self.conv10(x))
        x = self.record(o, "relu_conv10", F.relu(x))
        x = self.record(o, "pool10", F.adaptive_avg_pool2d(x, 1))
        x = self.record(o, "pool10_flat", torch.flatten(x, 1))
        self.record(o, "prob", F.softmax(x, dim=1))
        return o


class VGG16Twin(Twin):
    """VGG-16 (configuration D): 13 convs 3x3 pad 1 in 5 blocks, 2x2 floor pools, 3 fc."""

    BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))

    def __init__(self, num_classes):
        super().__init__()
        cin = 3
        for b, (width, n) in enumerate(self.BLOCKS, start=1):
            for i in range(1, n + 1):
                setattr(self, f"conv{b}_{i}", nn.Conv2d(cin, width, 3, padding=1))
                cin = width
        self.fc6, self.fc7, self.fc8 = nn.Linear(25088, 4096), nn.Linear(4096, 4096), nn.Linear(4096, num_classes)

    def forward(self, x):
        o = OrderedDict()
        for b, (_, n) in enumerate(self.BLOCKS, start=1):
            for i in range(1, n + 1):
                x = self.record(o, f"conv{b}_{i}", getattr(self, f"conv{b}_{i}")(x))
                x = self.record(o, f"relu{b}_{i}", F.relu(x))
            x = self.record(o, f"pool{b}", F.max_pool2d(x, 2, 2))
        self.classifier(o, x)
        return o


TWINS = {
    "zfnet": ZFNetTwin,
    "zf_caffe": ZFCaffeTwin,
    "zfnet512": ZFNet512Twin,
    "alexnet": AlexNetTwin,
    "caffenet": lambda n: CaffeAlexNetTwin(n, norm_first=False),
    "bvlc_alexnet": lambda n: CaffeAlexNetTwin(n, norm_first=True),
    "squeezenet1_0": SqueezeNetTwin,
    "vgg16": VGG16Twin,
}
BIG = {"vgg16", "zfnet512"}   # real shapes once, Numba backend only


def test_every_builtin_architecture_has_a_twin():
    from zfnet.net import ARCHITECTURES
    assert set(TWINS) == set(ARCHITECTURES)


def load_twin(name, net):
    """The twin of `name` holding exactly net's tensors (shared memory; shapes checked by torch)."""
    twin = TWINS[name](net.arch.shapes[net.arch.output][0]).eval()
    theirs = {n for n, _ in twin.named_parameters()}
    used = set()
    for key, value in net.params.items():
        layer, kind = key.rsplit(".", 1)
        module = twin.layer(layer)
        param = getattr(module, kind)
        assert tuple(param.shape) == value.shape, f"{key}: twin {tuple(param.shape)} vs zfnet {value.shape}"
        setattr(module, kind, nn.Parameter(torch.from_numpy(np.array(value)), requires_grad=False))
        used.update(n for n, p in twin.named_parameters() if p is getattr(module, kind))
    assert used == theirs, f"twin parameters not set from the Net: {sorted(theirs - used)}"
    return twin


def _compare(name, backend):
    arch = get_architecture(name)
    net = Net.random(arch, seed=7)
    x = np.random.default_rng(3).standard_normal((1, *arch.input_shape)).astype(np.float32)
    ours = forward(net, x, keep="all", backend=backend).outputs
    theirs = load_twin(name, net)(torch.from_numpy(x))
    assert list(theirs) == arch.names, "the twin must produce every layer, in the architecture's order"
    for layer, t in theirs.items():
        t = t.numpy()
        o = ours[layer]
        assert o.shape == t.shape, f"{name}/{layer}: shape {o.shape} vs torch {t.shape}"
        scale = max(float(np.abs(t).max()), 1e-12)
        err = float(np.abs(o - t).max()) / scale
        assert err <= RTOL, f"{name}/{layer} ({backend}): max error {err:.2e} of max |torch| {scale:.3g}"
    # The prediction itself, as a user sees it.
    assert np.argmax(ours["prob"]) == int(theirs["prob"].argmax())


@pytest.mark.parametrize("name", sorted(set(TWINS) - BIG))
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_forward_matches_torch_twin(name, backend):
    _compare(name, backend)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BIG))
def test_big_forward_matches_torch_twin(name):
    _compare(name, "cpu")


def test_twin_tolerance_is_not_vacuous():
    """A twin with one wrong hyper-parameter (conv10 without its pad) must fail the comparison."""
    arch = get_architecture("squeezenet1_0")
    net = Net.random(arch, seed=7)
    twin = load_twin("squeezenet1_0", net)
    twin.conv10.padding = (0, 0)
    x = np.random.default_rng(3).standard_normal((1, *arch.input_shape)).astype(np.float32)
    ours = forward(net, x, keep=["pool10_flat"]).outputs["pool10_flat"]
    theirs = twin(torch.from_numpy(x))["pool10_flat"].numpy()
    assert np.abs(ours - theirs).max() / np.abs(theirs).max() > RTOL
