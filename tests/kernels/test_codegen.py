"""_codegen.py: on AVX-512 hosts Numba compiles without gathers and with 512-bit vectors; the user's
own choice of features wins; a code generator that already exists is left alone."""
import platform
import re
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from zfnet.kernels import _codegen, codegen_status
from zfnet.kernels import conv2d_nchwc as conv_module
from zfnet.kernels._registers import call_vectorized

AVX2_HOST = "+64bit,+avx,+avx2,+fma,-avx512f,+sse4.2"
AVX512_HOST = "+64bit,+avx,+avx2,+fma,+avx512f,+avx512bw,+avx512vl,-amx-tile"


def test_avx512_host_gets_the_three_tuning_features():
    features = _codegen.tuned_features(AVX512_HOST, (22, 1, 0)).split(",")
    assert features[:len(AVX512_HOST.split(","))] == AVX512_HOST.split(",")
    assert features[-3:] == ["+prefer-no-gather", "+prefer-no-scatter", "-prefer-256-bit"]


def test_a_host_feature_of_the_same_name_is_replaced_not_doubled():
    features = _codegen.tuned_features(AVX512_HOST + ",+prefer-256-bit", (22, 1, 0)).split(",")
    assert [f for f in features if f.endswith("prefer-256-bit")] == ["-prefer-256-bit"]


@pytest.mark.parametrize("host, llvm", [(AVX2_HOST, (22, 1, 0)), (AVX512_HOST, (15, 0, 7)), ("", (22, 1, 0))])
def test_other_hosts_and_old_llvm_are_left_alone(host, llvm):
    assert _codegen.tuned_features(host, llvm) is None


def _status_in_fresh_process(code, **env):
    import os
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU_")}
    run_env.update(env)
    out = subprocess.run([sys.executable, "-c", code + "\nfrom zfnet import kernels\n"
                          "s = kernels.codegen_status(); import numba\n"
                          "print(s['tuned'], '|', s['reason'], '|', numba.config.CPU_FEATURES)"],
                         capture_output=True, text=True, timeout=300, env=run_env)
    assert out.returncode == 0, out.stderr
    tuned, reason, features = (part.strip() for part in out.stdout.strip().split("|"))
    return tuned == "True", reason, features


def test_the_users_features_win():
    tuned, reason, features = _status_in_fresh_process("", NUMBA_CPU_FEATURES="+avx2,+fma")
    assert not tuned and "set by the user" in reason and features == "+avx2,+fma"


def test_code_compiled_before_import_keeps_numbas_features():
    code = ("import warnings\nimport numba\nnumba.njit(lambda x: x + 1)(1)\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            "    import zfnet.kernels\n"
            "warned = any('could not be set' in str(w.message) for w in seen)")
    out = subprocess.run([sys.executable, "-c", code + "\nprint(warned, zfnet.kernels.codegen_status()['reason'])"],
                         capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in __import__("os").environ.items() if not k.startswith("NUMBA_CPU_")})
    assert out.returncode == 0, out.stderr
    warned, reason = out.stdout.strip().split(" ", 1)
    assert "compiled code before" in reason or "no AVX-512" in reason
    # on an AVX-512 host the user is told, once, at import
    assert (warned == "True") == ("compiled code before" in reason)


def test_this_process_reports_what_it_compiles_with():
    status = codegen_status()
    assert status["tuned"] == (status["features"] is not None and "+prefer-no-gather" in status["features"])


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="checks x86 SIMD mnemonics")
@pytest.mark.skipif(not codegen_status()["tuned"], reason="not an AVX-512 host: nothing tuned")
def test_pointwise_kernel_has_no_gathers_and_uses_512_bit_registers():
    """The kernel that ran at 9 GFLOP/s untuned: its tile updates were vgatherqps / vscatterqps."""
    kernel = njit(fastmath=True, cache=False)(conv_module._pointwise_gemm_6x16.py_func)     # serial, inspectable
    N, CB, P, FB = 1, 2, 12, 2
    x = np.ones(N * CB * P * 16, np.float32)
    w = np.ones(FB * CB * 256, np.float32)
    b, y = np.zeros(FB * 16, np.float32), np.empty(N * FB * P * 16, np.float32)
    call_vectorized(kernel, x, w, b, y, N, CB, 4, P, FB, False, FB, 0, 4, P, 0, 0)      # planes 3 x 4, unpadded
    np.testing.assert_array_equal(y, 32.0)
    asm = "\n".join(kernel.inspect_asm().values())
    assert not re.search(r"\bv(p?gather|p?scatter)\w*", asm), "the tile is built from gathers again"
    assert re.search(r"\bvfmadd\d+ps\s+[^\n]*zmm", asm), "no 512-bit FMA"
