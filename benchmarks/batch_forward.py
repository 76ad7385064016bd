"""Forward-pass time at batch 1 and 16 (random weights), min of several runs: the cost of the
batch-invariant kernels (benchmarks/RESULTS.md, "Batch invariance").

    python benchmarks/batch_forward.py [--repeat 5] [--arch zfnet squeezenet1_0] [--old DIR]

--old DIR: a copy of an earlier kernels/ folder (e.g. `mkdir /tmp/old && git archive COMMIT kernels
| tar -x -C /tmp/old`, then --old /tmp/old/kernels): its conv2d and linear are loaded under another
package name and timed in alternation with the current ones in this same process, so a loaded
machine slows both alike.
"""
import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from zfnet import kernels
from zfnet.net.architectures import get_architecture
from zfnet.net.forward import forward
from zfnet.net.graph import Net


def old_kernels(folder):
    """(conv2d, linear) of the kernels/ copy in `folder`, imported as the package `old_kernels`."""
    root = tempfile.mkdtemp()
    shutil.copytree(folder, os.path.join(root, "old_kernels"))
    sys.path.insert(0, root)
    mod = importlib.import_module("old_kernels")
    return mod.conv2d, mod.linear


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--arch", nargs="+", default=["squeezenet1_0", "zfnet"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--old", help="an earlier kernels/ folder to time against")
    args = ap.parse_args()
    variants = {"new": (kernels.conv2d, kernels.linear)}
    if args.old:
        variants["old"] = old_kernels(args.old)
    print(f"load average before: {os.getloadavg()}")
    for name in args.arch:
        arch = get_architecture(name)
        net = Net.random(arch, seed=0)
        for n in args.batch:
            x = np.random.default_rng(0).standard_normal((n, *arch.input_shape)).astype(np.float32)
            best = {}
            for r in range(args.repeat + 1):                     # the first round warms up
                for label, (conv2d, linear) in variants.items():
                    kernels.conv2d, kernels.linear = conv2d, linear
                    t0 = time.perf_counter()
                    forward(net, x, switches=False)
                    t = time.perf_counter() - t0
                    if r:
                        best[label] = min(best.get(label, t), t)
            kernels.conv2d, kernels.linear = variants["new"]
            line = "  ".join(f"{k} {v * 1e3:8.1f} ms" for k, v in best.items())
            ratio = f"  new/old {best['new'] / best['old']:.3f}" if "old" in best else ""
            print(f"{name:14s} batch {n:3d}: {line}{ratio}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
