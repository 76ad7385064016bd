"""Regenerate every figure in the README, from the real SqueezeNet and the shared photographs.

    ZFNET_WEIGHTS=../shared/data/weights python docs/figures/make_all.py

Runs, one after the other, each `make_*.py` beside this file (each also runs on its own and says
in its docstring what it draws) and prints how long each took.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["make_fig2.py", "make_modes.py", "make_strip.py", "make_analyses.py"]


def main():
    if not os.environ.get("ZFNET_WEIGHTS"):
        sys.exit("set ZFNET_WEIGHTS to the folder holding squeezenet1_0/ (e.g. ../shared/data/weights)")
    for name in SCRIPTS:
        t = time.perf_counter()
        print(f"== {name}", flush=True)
        # each script in its own process, as when run by hand (they import docs/figures/_common.py)
        subprocess.run([sys.executable, str(HERE / name)], check=True)
        print(f"== {name}: {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
