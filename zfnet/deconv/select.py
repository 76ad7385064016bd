"""Which activations to project: units, whole feature maps, the strongest unit, the top maps.

The deconvnet keeps some activations of one layer and zeroes all the others before walking down
(Zeiler & Fergus, Sec. 2.1). What is kept is named explicitly by a ``Unit``:

    Unit(image=0, channel=12, y=3, x=5)   one unit: feature map 12 at row 3, column 5 of image 0
    Unit(image=0, channel=12)             the whole feature map 12 of image 0 (every position)
    Unit(image=0, channel=281)            in a flat layer (fc6, fc8, prob): unit 281

Helpers pick units from a layer's activations `act`, (N, C, H, W) or (N, F):

    strongest_unit(act, image, channel)   the unit with the largest activation in that map
    whole_map(image, channel)             the whole map
    top_maps(act, image, k)               the k maps with the largest single activation,
                                          each as its strongest unit (or whole, whole=True)

Ties go to the first in row-major order (numpy argmax), and between maps to the lower channel.
"""
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net import tensors


class DeadMapWarning(UserWarning):
    """A projected feature map is all zeros for this image: its projection is all zeros."""


@dataclass(frozen=True)
class Unit:
    """An activation to project: image index in the batch, feature map (or flat unit), position.

    y = x = None: the whole feature map (or, in a flat layer, the single unit ``channel``).
    """
    image: int
    channel: int
    y: Optional[int] = None
    x: Optional[int] = None

    @property
    def is_position(self):
        """True for one unit at (y, x); False for a whole map or a unit of a flat layer."""
        return self.y is not None

    @property
    def at(self):
        return None if self.y is None else (self.y, self.x)


def _check_act(act, image):
    if not isinstance(act, np.ndarray) or act.ndim not in (2, 4):
        raise ZFNetError("activations must be a (N, C, H, W) or (N, F) numpy array")
    if not 0 <= image < act.shape[0]:
        raise ZFNetError(f"image index {image} is out of range: the batch holds {act.shape[0]} image(s)")


def strongest_unit(act, image, channel):
    """The unit of feature map `channel` of `image` with the largest activation.

    act: (N, C, H, W) -> Unit(image, channel, y, x) (the first maximum in row-major order);
    act: (N, F) -> Unit(image, channel) (a flat layer has one unit per channel).
    """
    _check_act(act, image)
    if not 0 <= channel < act.shape[1]:
        raise ZFNetError(f"map {channel} is out of range: this layer has {act.shape[1]} maps (0..{act.shape[1] - 1})")
    if act.ndim == 2:
        return Unit(int(image), int(channel))
    y, x = np.unravel_index(int(np.argmax(act[image, channel])), act.shape[2:])
    return Unit(int(image), int(channel), int(y), int(x))


def whole_map(image, channel):
    """The whole feature map `channel` of `image` (every position kept, the other maps zeroed)."""
    return Unit(int(image), int(channel))


def map_strengths(act, image):
    """The largest activation of every map of `image`: (C,). act (N, C, H, W) or (N, F)."""
    _check_act(act, image)
    a = act[image]
    return a.reshape(a.shape[0], -1).max(axis=1)


def top_maps(act, image, k, whole=False):
    """The k feature maps of `image` with the largest single activation, strongest first.

    Returns k Units: each map's strongest unit, or the whole map with whole=True.
    """
    strengths = map_strengths(act, image)
    if not 1 <= k <= strengths.size:
        raise ZFNetError(f"k must be in 1..{strengths.size} (the number of maps), got {k}")
    # stable sort on -strength: equal maps keep channel order
    channels = np.argsort(-strengths, kind="stable")[:k]
    if whole or act.ndim == 2:
        return [whole_map(image, c) if act.ndim == 4 else Unit(int(image), int(c)) for c in channels]
    return [strongest_unit(act, image, int(c)) for c in channels]


def is_dead_map(act, image, channel):
    """True when every activation of map `channel` of `image` is exactly zero."""
    return not np.any(tensors.to_host(act[image, channel]))


def as_units(units):
    """A Unit, a list of Units, or (image, channel[, y, x]) tuples -> a list of Units."""
    if isinstance(units, Unit):
        return [units]
    if isinstance(units, tuple) and units and all(isinstance(v, (int, np.integer)) for v in units):
        units = [units]
    out = []
    for u in units:
        if isinstance(u, Unit):
            out.append(u)
        elif isinstance(u, (tuple, list)) and len(u) in (2, 4):
            out.append(Unit(*(None if v is None else int(v) for v in u)))
        else:
            raise ZFNetError(
                f"a unit must be a Unit(image, channel, y, x) or a tuple (image, channel[, y, x]), got {u!r}"
            )
    if not out:
        raise ZFNetError("no units given: pass at least one Unit(image, channel, y, x)")
    return out


def check_units(units, layer, shape, batch):
    """Every unit must name an image of the batch, a map of `layer` and (if any) a position in it.

    shape: the layer's (C, H, W) or (F,) per example; batch: N.
    """
    for u in units:
        where = f" at ({u.y}, {u.x})" if u.y is not None and u.x is not None else ""
        what = f"{'map' if len(shape) == 3 else 'unit'} {u.channel}{where}" + (f" of image {u.image}" if batch > 1 else "")
        if not 0 <= u.image < batch:
            raise ZFNetError(f"{what}: image index {u.image} is out of range: the batch holds {batch} image(s) (0..{batch - 1})")
        if not 0 <= u.channel < shape[0]:
            raise ZFNetError(
                f"{what}: layer {layer!r} has {shape[0]} {'maps' if len(shape) == 3 else 'units'} "
                f"(0..{shape[0] - 1}), not {u.channel}"
            )
        if (u.y is None) != (u.x is None):
            raise ZFNetError(f"{what}: give both y and x (one unit) or neither (the whole map)")
        if u.y is not None:
            if len(shape) != 3:
                raise ZFNetError(
                    f"{what}: layer {layer!r} is flat ({shape[0]} units, no spatial grid); "
                    f"name a unit by its index alone, without a position"
                )
            if not (0 <= u.y < shape[1] and 0 <= u.x < shape[2]):
                raise ZFNetError(
                    f"{what}: position ({u.y}, {u.x}) is outside layer {layer!r}'s {shape[1]}x{shape[2]} "
                    f"map; y must be in 0..{shape[1] - 1} and x in 0..{shape[2] - 1}"
                )


def warn_dead(act, units, layer):
    """Warn (DeadMapWarning) for every unit whose whole map is zero: its projection is zero."""
    for u in units:
        if len(act.shape) == 4 and is_dead_map(act, u.image, u.channel):
            warnings.warn(
                f"map {u.channel} of layer {layer!r} is all zeros for image {u.image} (a dead map for "
                f"this image): its projection is all zeros; pick another map",
                DeadMapWarning, stacklevel=3,
            )
