"""How Numba's CPU code generator is tuned for zfnet's micro-kernels on AVX-512 machines.

A blocked micro-kernel (conv2d_nchwc.py) updates a tile of 6 pixels x 16 channels per input
channel. Written as plain loops, it relies on LLVM to vectorise across the 16 channels of a block
(see _registers.py). On a CPU with AVX-512, LLVM's cost model takes gathers and scatters to be
cheap, and once the tile's small loops are unrolled its loop vectoriser picks the wrong loop: it
vectorises across the tile's pixels, with a gather and a scatter (vgatherqps, vscatterqps) around
every FMA on the tile, and pointwise_gemm_6x16 ran several times slower than direct_6x16 on the
same 1x1 layer (benchmarks/RESULTS.md, "AVX-512 hosts"). LLVM's tuning for these CPUs also prefers
256-bit vectors, so a 16-float block took two registers where one holds it.

So, on a host with AVX-512 (avx512f), zfnet compiles with the host's features plus

    +prefer-no-gather,+prefer-no-scatter   the vectoriser never builds a tile out of gathers
    -prefer-256-bit                        a block of 16 floats is one 512-bit register

unless the user has chosen NUMBA_CPU_FEATURES or NUMBA_CPU_NAME (or numba.config's) themselves.
The setting is process-wide: Numba has one code generator, and every function compiled in this
process (the user's own Numba code too) gets these features. It is set in numba.config only, not
in the environment: a changed NUMBA_* variable makes Numba re-read its whole config from the
environment at the next compile, which would undo settings the user made in numba.config. Child
processes (Dask workers) import zfnet and tune themselves. Numba's cache keys its entries by the
features, so code compiled without them is never reused with them.

It must happen before Numba compiles anything in the process: `tune_codegen()` runs when zfnet's
kernels are imported; if Numba's CPU code generator already exists (some Numba function ran before
`import zfnet`), it changes nothing and says so in `codegen_status()`. Hosts without AVX-512 are left
as they are (AVX2's gathers are costed high, and the kernels vectorise as intended there).
"""
import os
import warnings

import numba
from numba.core import config, registry

# (feature, what it does) added on AVX-512 hosts; LLVM knows the prefer-no-* features from version 17
AVX512_TUNING = ("+prefer-no-gather", "+prefer-no-scatter", "-prefer-256-bit")
MIN_LLVM = (17, 0, 0)

_status = {"tuned": False, "reason": "not run"}


def tuned_features(host_features, llvm_version):
    """The feature string to compile with, or None to leave Numba's default.

    host_features: LLVM's flattened host feature string ("+avx2,+avx512f,-amx-tile,..."); a host
    without "+avx512f" is left alone, as is an LLVM older than MIN_LLVM (it would ignore the
    features with a warning on every compile)."""
    features = host_features.split(",")
    if "+avx512f" not in features or tuple(llvm_version) < MIN_LLVM:
        return None
    wanted = {f[1:] for f in AVX512_TUNING}
    kept = [f for f in features if f and f[1:] not in wanted]
    return ",".join(kept + list(AVX512_TUNING))


def _codegen_exists():
    """True once Numba's CPU target context (and with it its code generator) has been built."""
    return "_toplevel_target_context" in vars(registry.cpu_target)


def tune_codegen():
    """Apply tuned_features to Numba's CPU code generator if nobody else chose; returns codegen_status()."""
    if os.environ.get("NUMBA_CPU_FEATURES") is not None or config.CPU_FEATURES is not None:
        _status.update(tuned=False, reason="NUMBA_CPU_FEATURES set by the user: left as it is")
        return codegen_status()
    if os.environ.get("NUMBA_CPU_NAME") is not None or config.CPU_NAME is not None:
        _status.update(tuned=False, reason="NUMBA_CPU_NAME set by the user: left as it is")
        return codegen_status()
    import llvmlite.binding as ll
    from numba.core.codegen import get_host_cpu_features, initialize_llvm
    initialize_llvm()
    features = tuned_features(get_host_cpu_features(), ll.llvm_version_info)
    if features is None:
        _status.update(tuned=False, reason="no AVX-512 (or LLVM older than 17): Numba's default features")
        return codegen_status()
    if _codegen_exists():
        _status.update(tuned=False, reason="Numba compiled code before zfnet was imported: its features are "
                                           "fixed for this process (import zfnet first, or set NUMBA_CPU_FEATURES)")
        warnings.warn("zfnet: Numba compiled code before zfnet was imported, so its AVX-512 code generation "
                      "could not be set; its 1x1 convolutions may run several times slower in this process. "
                      "Import zfnet before other Numba code, or set NUMBA_CPU_FEATURES to the host's features "
                      "plus " + ",".join(AVX512_TUNING) + " (see zfnet.kernels.codegen_status())",
                      RuntimeWarning, stacklevel=3)
        return codegen_status()
    config.CPU_FEATURES = features
    _status.update(tuned=True, reason="AVX-512 host: " + ",".join(AVX512_TUNING))
    return codegen_status()


def wide_vectors():
    """True when Numba compiles for 512-bit vectors in this process (one register holds a block of
    16 floats): conv2d_nchwc's tiles of two filter blocks (12 accumulator registers) fit then."""
    return "-prefer-256-bit" in (config.CPU_FEATURES or "").split(",")


def codegen_status():
    """{"tuned": bool, "reason": str, "features": what Numba compiles with (None: its default)}."""
    return dict(_status, features=config.CPU_FEATURES, numba=numba.__version__)
