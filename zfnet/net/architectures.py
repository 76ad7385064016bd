"""The built-in architectures, each a small function returning layer specs as data.

Layer names follow the Caffe definitions (conv1, relu1, pool1, norm1, ..., fc8, prob; SqueezeNet's
fireN/squeeze1x1 ...), since most pretrained files use them; the converters map other naming
schemes (torchvision's ``features.0`` ...) onto these names explicitly.

Every architecture ends in a Softmax layer called ``prob``; its input (``fc8``, or ``pool10_flat``
for SqueezeNet) holds the class scores.

Shapes (C, H, W) for the default input sizes:

    zfnet         224 -> conv1 110 -> pool1 55 -> conv2 26 -> pool2 13 -> conv5 13 -> pool5 6 (x256 = 9216)
    zf_caffe      224 -> conv1 112 -> pool1 57 -> conv2 29 -> pool2 15 -> conv5 15 -> pool5 7 (x256 = 12544)
    zfnet512      224 -> conv1 109 -> pool1 54 -> conv2 25 -> pool2 12 -> conv5 12 -> pool5 6 (x512 = 18432)
    alexnet       224 -> conv1 55 -> pool1 27 -> conv2 27 -> pool2 13 -> conv5 13 -> pool5 6 (x256 = 9216)
    caffenet      227 -> conv1 55 -> pool1 27 -> conv2 27 -> pool2 13 -> conv5 13 -> pool5 6 (x256 = 9216)
    squeezenet1_0 227 -> conv1 111 -> pool1 55 -> pool4 27 -> pool8 13 -> conv10 15 -> pool10 1
    vgg16         224 -> 112 -> 56 -> 28 -> 14 -> pool5 7 (x512 = 25088)
"""
from zfnet.errors import ZFNetError
from zfnet.net.graph import INPUT, Architecture
from zfnet.net.spec import (LRN, Concat, Conv, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool,
                            ReLU, Softmax)


class _Builder:
    """Appends layers in order, each reading the previous one unless told otherwise."""

    def __init__(self):
        self.layers = []
        self.top = INPUT
        self.channels = None

    def add(self, layer):
        self.layers.append(layer)
        self.top = layer.name
        return layer.name

    def conv(self, name, out_channels, kernel, stride=1, padding=0, groups=1, relu=None, bottom=None):
        bottom = bottom or self.top
        self.add(Conv(name, bottom, self.channels_of(bottom), out_channels, kernel, stride, padding, groups))
        self._ch[name] = out_channels
        if relu:
            self.add(ReLU(relu, name))
            self._ch[relu] = out_channels
        return self.top

    def channels_of(self, name):
        return self._ch[name]

    def pool(self, name, kernel, stride, padding=0, ceil_mode=True):
        ch = self._ch[self.top]
        self.add(MaxPool(name, self.top, kernel, stride, padding, ceil_mode))
        self._ch[name] = ch
        return name

    def lrn(self, name, size, alpha, beta, k=1.0, within_channel=False):
        ch = self._ch[self.top]
        self.add(LRN(name, self.top, size, alpha, beta, k, within_channel))
        self._ch[name] = ch
        return name

    def classifier(self, flat_features, hidden, num_classes=1000, dropout_first=False):
        """flatten -> fc6 -> relu6 -> drop6 -> fc7 -> relu7 -> drop7 -> fc8 -> prob (Caffe order).

        ``dropout_first`` gives torchvision AlexNet's order (dropout before each hidden linear);
        dropout is the identity at inference, so only the names differ.
        """
        self.add(Flatten("flatten", self.top))
        sizes = [flat_features, *hidden]
        for i, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:]), start=6):
            if dropout_first:
                self.add(Dropout(f"drop{i}", self.top))
            self.add(Linear(f"fc{i}", self.top, fin, fout))
            self.add(ReLU(f"relu{i}", self.top))
            if not dropout_first:
                self.add(Dropout(f"drop{i}", self.top))
        last = len(sizes) + 5
        self.add(Linear(f"fc{last}", self.top, sizes[-1], num_classes))
        self.add(Softmax("prob", self.top))


def _builder(in_channels=3):
    b = _Builder()
    b._ch = {INPUT: in_channels}
    return b


def zfnet(num_classes=1000):
    """ZFNet as in the paper (Fig. 3): pads chosen to give 110/55/26/13/6; Caffe-rounded pools.

    conv1 96 7x7/2 pad 1, pool1 3/2, norm1 (across maps, size 5, alpha 1e-4, beta 0.75, k 1),
    conv2 256 5x5/2, pool2 3/2, norm2, conv3 384, conv4 384, conv5 256 (3x3 pad 1), pool5 3/2,
    fc6 4096, fc7 4096, fc8 1000. Dense connections (no groups).
    """
    b = _builder()
    b.conv("conv1", 96, 7, 2, 1, relu="relu1")
    b.pool("pool1", 3, 2)
    b.lrn("norm1", 5, 1e-4, 0.75)
    b.conv("conv2", 256, 5, 2, 0, relu="relu2")
    b.pool("pool2", 3, 2)
    b.lrn("norm2", 5, 1e-4, 0.75)
    b.conv("conv3", 384, 3, 1, 1, relu="relu3")
    b.conv("conv4", 384, 3, 1, 1, relu="relu4")
    b.conv("conv5", 256, 3, 1, 1, relu="relu5")
    b.pool("pool5", 3, 2)
    b.classifier(256 * 6 * 6, [4096, 4096], num_classes)
    return Architecture("zfnet", b.layers, (3, 224, 224))


def zf_caffe(num_classes=1000):
    """ZF as distributed for Caffe (py-faster-rcnn's ImageNet ``ZF.v2``).

    Within-channel LRN (size 3, alpha 5e-5, beta 0.75) *before* pooling; pools 3/2 pad 1.
    At 224x224 input pool5 is 7x7 here; a converted ZF.v2.caffemodel brings its own fc6 size
    and the converter builds the architecture from the file.
    """
    b = _builder()
    b.conv("conv1", 96, 7, 2, 3, relu="relu1")
    b.lrn("norm1", 3, 5e-5, 0.75, within_channel=True)
    b.pool("pool1", 3, 2, 1)
    b.conv("conv2", 256, 5, 2, 2, relu="relu2")
    b.lrn("norm2", 3, 5e-5, 0.75, within_channel=True)
    b.pool("pool2", 3, 2, 1)
    b.conv("conv3", 384, 3, 1, 1, relu="relu3")
    b.conv("conv4", 384, 3, 1, 1, relu="relu4")
    b.conv("conv5", 256, 3, 1, 1, relu="relu5")
    b.pool("pool5", 3, 2)
    b.classifier(256 * 7 * 7, [4096, 4096], num_classes)
    return Architecture("zf_caffe", b.layers, (3, 224, 224))


def zfnet512(num_classes=1000):
    """ZFNet-512 of the ONNX model zoo (from Caffe2): no pads in conv1/conv2, LRN k=2, 512-wide conv3-5."""
    b = _builder()
    b.conv("conv1", 96, 7, 2, 0, relu="relu1")
    b.lrn("norm1", 5, 5e-4, 0.75, k=2.0)
    b.pool("pool1", 3, 2, ceil_mode=False)
    b.conv("conv2", 256, 5, 2, 0, relu="relu2")
    b.lrn("norm2", 5, 5e-4, 0.75, k=2.0)
    b.pool("pool2", 3, 2, ceil_mode=False)
    b.conv("conv3", 512, 3, 1, 1, relu="relu3")
    b.conv("conv4", 512, 3, 1, 1, relu="relu4")
    b.conv("conv5", 512, 3, 1, 1, relu="relu5")
    b.pool("pool5", 2, 2, ceil_mode=False)
    b.classifier(512 * 6 * 6, [4096, 1024], num_classes)
    return Architecture("zfnet512", b.layers, (3, 224, 224))


def alexnet(num_classes=1000):
    """torchvision's AlexNet (single-GPU variant: 64/192/384/256/256 filters, no LRN, no groups).

    torchvision's AdaptiveAvgPool2d((6, 6)) is the identity at 224x224 input and is left out:
    pool5 is already 6x6 there.
    """
    b = _builder()
    b.conv("conv1", 64, 11, 4, 2, relu="relu1")
    b.pool("pool1", 3, 2, ceil_mode=False)
    b.conv("conv2", 192, 5, 1, 2, relu="relu2")
    b.pool("pool2", 3, 2, ceil_mode=False)
    b.conv("conv3", 384, 3, 1, 1, relu="relu3")
    b.conv("conv4", 256, 3, 1, 1, relu="relu4")
    b.conv("conv5", 256, 3, 1, 1, relu="relu5")
    b.pool("pool5", 3, 2, ceil_mode=False)
    b.classifier(256 * 6 * 6, [4096, 4096], num_classes, dropout_first=True)
    return Architecture("alexnet", b.layers, (3, 224, 224))


def _caffe_alexnet(name, norm_first, num_classes):
    b = _builder()
    b.conv("conv1", 96, 11, 4, 0, relu="relu1")
    first, second = (("norm1", "pool1"), ("norm2", "pool2"))
    for norm, pool in ((first[0], first[1]), (second[0], second[1])):
        if norm_first:
            b.lrn(norm, 5, 1e-4, 0.75)
            b.pool(pool, 3, 2)
        else:
            b.pool(pool, 3, 2)
            b.lrn(norm, 5, 1e-4, 0.75)
        if norm == "norm1":
            b.conv("conv2", 256, 5, 1, 2, groups=2, relu="relu2")
    b.conv("conv3", 384, 3, 1, 1, relu="relu3")
    b.conv("conv4", 384, 3, 1, 1, groups=2, relu="relu4")
    b.conv("conv5", 256, 3, 1, 1, groups=2, relu="relu5")
    b.pool("pool5", 3, 2)
    b.classifier(256 * 6 * 6, [4096, 4096], num_classes)
    return Architecture(name, b.layers, (3, 227, 227))


def caffenet(num_classes=1000):
    """BVLC reference CaffeNet: pool before norm, 2 groups in conv2/4/5, 227x227 input."""
    return _caffe_alexnet("caffenet", norm_first=False, num_classes=num_classes)


def bvlc_alexnet(num_classes=1000):
    """BVLC AlexNet (Caffe, ONNX zoo): norm before pool, 2 groups in conv2/4/5, 227x227 input."""
    return _caffe_alexnet("bvlc_alexnet", norm_first=True, num_classes=num_classes)


def _fire(b, n, squeeze, expand):
    """fireN: squeeze1x1 -> ReLU -> [expand1x1 -> ReLU, expand3x3 (pad 1) -> ReLU] -> concat."""
    p = f"fire{n}/"
    b.conv(p + "squeeze1x1", squeeze, 1, relu=p + "relu_squeeze1x1")
    s = b.top
    e1 = b.conv(p + "expand1x1", expand, 1, bottom=s, relu=p + "relu_expand1x1")
    e3 = b.conv(p + "expand3x3", expand, 3, 1, 1, bottom=s, relu=p + "relu_expand3x3")
    b.add(Concat(p + "concat", (e1, e3)))
    b._ch[p + "concat"] = 2 * expand


def squeezenet1_0(num_classes=1000):
    """SqueezeNet v1.0 in Caffe semantics (the real weights here are Caffe's).

    conv10 has pad 1 as in the original prototxt (13x13 -> 15x15; the 56 border outputs are
    ReLU(bias) and enter the global average). Pools round up (Caffe).
    """
    b = _builder()
    b.conv("conv1", 96, 7, 2, 0, relu="relu_conv1")
    b.pool("pool1", 3, 2)
    for n, s, e in ((2, 16, 64), (3, 16, 64), (4, 32, 128)):
        _fire(b, n, s, e)
    b.pool("pool4", 3, 2)
    for n, s, e in ((5, 32, 128), (6, 48, 192), (7, 48, 192), (8, 64, 256)):
        _fire(b, n, s, e)
    b.pool("pool8", 3, 2)
    _fire(b, 9, 64, 256)
    b.add(Dropout("drop9", b.top))
    b._ch["drop9"] = 512
    b.conv("conv10", num_classes, 1, 1, 1, relu="relu_conv10")
    b.add(GlobalAvgPool("pool10", b.top))
    b.add(Flatten("pool10_flat", b.top))
    b.add(Softmax("prob", b.top))
    return Architecture("squeezenet1_0", b.layers, (3, 227, 227))


def vgg16(num_classes=1000):
    """VGG-16 (torchvision/Caffe layout): 13 conv 3x3 pad 1, floor-rounded 2x2 pools, 3 fc."""
    b = _builder()
    for block, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for i in range(1, convs + 1):
            b.conv(f"conv{block}_{i}", width, 3, 1, 1, relu=f"relu{block}_{i}")
        b.pool(f"pool{block}", 2, 2, ceil_mode=False)
    b.classifier(512 * 7 * 7, [4096, 4096], num_classes)
    return Architecture("vgg16", b.layers, (3, 224, 224))


ARCHITECTURES = {
    "zfnet": zfnet,
    "zf_caffe": zf_caffe,
    "zfnet512": zfnet512,
    "alexnet": alexnet,
    "caffenet": caffenet,
    "bvlc_alexnet": bvlc_alexnet,
    "squeezenet1_0": squeezenet1_0,
    "vgg16": vgg16,
}


def get_architecture(name, **kwargs):
    """The built-in architecture called `name` (see ARCHITECTURES)."""
    try:
        return ARCHITECTURES[name](**kwargs)
    except KeyError:
        raise ZFNetError(
            f"unknown architecture {name!r}; built-in ones are: {', '.join(ARCHITECTURES)}"
        ) from None
