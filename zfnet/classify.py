"""Top-k classification: the network's class probabilities, sorted, with their labels.

    net = load_model()
    x = load_batch(["cat.jpg"], net.meta)               # (N, 3, H, W)
    preds = classify(net, x, k=5)                       # [[Prediction(285, "Egyptian cat", 0.815), ...]]

Every built-in architecture ends in a Softmax called ``prob``, so the forward pass's output is
already (N, classes) probabilities. Ties in probability go to the lower class index.
"""
from dataclasses import asdict, dataclass

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.forward import forward
from zfnet.weights.classes import class_names


@dataclass(frozen=True)
class Prediction:
    index: int      # class index (the row of the network's output)
    label: str      # class_names(net)[index]
    prob: float     # softmax probability

    def to_dict(self):
        return asdict(self)


def probabilities(net, x, batch_size=16, backend=None):
    """x (N, 3, H, W) float32 -> (N, classes) float32 probabilities, `batch_size` images at a time."""
    if batch_size < 1:
        raise ZFNetError(f"batch_size must be >= 1, got {batch_size}")
    out = [forward(net, np.ascontiguousarray(x[i:i + batch_size]), backend=backend, switches=False).output
           for i in range(0, len(x), batch_size)]
    prob = np.concatenate(out, axis=0)                       # (N, classes)
    if prob.ndim != 2:
        raise ZFNetError(f"{net.arch.name}'s output has shape {prob.shape[1:]}, not (classes,)")
    if not np.all(np.isfinite(prob)):
        bad = int(np.argmax(~np.all(np.isfinite(prob), axis=1)))
        raise ZFNetError(_non_finite_message(net, x[bad:bad + 1], backend))
    return prob


def _non_finite_message(net, x, backend):
    """Words naming the first layer whose output is NaN or infinite for image x (1, 3, H, W)."""
    outputs = forward(net, np.ascontiguousarray(x), keep="all", backend=backend, switches=False).outputs
    layer = next((layer.name for layer in net.arch.layers
                  if layer.name in outputs and not np.all(np.isfinite(outputs[layer.name]))), net.arch.output)
    model = net.meta.get("model") or net.meta.get("source_file") or net.arch.name
    return (f"{model}: the network computes NaN or infinite values, first in layer {layer!r}; its "
            f"weights are damaged or out of range: convert the original file again")


def top_k(prob, labels, k=5):
    """(N, classes) probabilities -> for each row, the k most probable classes, best first."""
    k = min(int(k), prob.shape[1])
    # Stable sort of -p: equal probabilities keep their index order (lower index first).
    order = np.argsort(-prob, axis=1, kind="stable")[:, :k]  # (N, k)
    return [[Prediction(int(c), labels[c], float(p[c])) for c in row] for p, row in zip(prob, order)]


def classify(net, x, k=5, batch_size=16, backend=None):
    """x (N, 3, H, W) preprocessed images -> N lists of the k best Predictions."""
    return top_k(probabilities(net, x, batch_size, backend), class_names(net), k)
