"""The three projection modes, as data: what each does to a signal crossing a ReLU.

Every walk (backward.py's rules, dense or cropped, and sparse.py's) reads these two fields and
nothing else about a mode. With x the ReLU's forward input and g the signal on its output:

    g_in = max(g, 0) if rectify else g,   then   g_in *= [x > 0] if mask

    deconvnet   rectify, no mask      Zeiler & Fergus, Sec. 2.1: the forward mask is ignored
    guided      rectify and mask      guided back-propagation
    gradient    mask only             the true gradient (saliency)
"""
from dataclasses import dataclass

from zfnet.errors import ZFNetError


@dataclass(frozen=True)
class Mode:
    """A projection mode: rectify the signal at every ReLU? multiply it by the forward mask?"""
    name: str
    rectify: bool
    mask: bool


DECONVNET = Mode("deconvnet", rectify=True, mask=False)
GUIDED = Mode("guided", rectify=True, mask=True)
GRADIENT = Mode("gradient", rectify=False, mask=True)

MODES = (DECONVNET.name, GUIDED.name, GRADIENT.name)
_BY_NAME = {m.name: m for m in (DECONVNET, GUIDED, GRADIENT)}


def as_mode(mode):
    """A Mode from its name (or a Mode, returned as is)."""
    if isinstance(mode, Mode):
        return mode
    try:
        return _BY_NAME[mode]
    except (KeyError, TypeError):
        raise ZFNetError(f"unknown projection mode {mode!r}; choose one of {', '.join(MODES)}") from None
