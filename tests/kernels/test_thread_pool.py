"""kernels/thread_pool.py: BLAS limited to one thread and given back, Numba's thread count checked."""
import numba
import numpy as np
import pytest

from zfnet.kernels import ZFNetError, conv2d, thread_pool


def test_blas_single_threaded_limits_and_restores():
    before = thread_pool.blas_threads()
    assert before, "numpy's BLAS should be found among the loaded libraries"
    with thread_pool.blas_single_threaded():
        assert set(thread_pool.blas_threads().values()) == {1}
        x = np.ones((1, 3, 8, 8), np.float32)
        assert conv2d(x, np.ones((4, 3, 3, 3), np.float32)).shape == (1, 4, 6, 6)
    assert thread_pool.blas_threads() == before


def test_configure_sets_numba_threads_and_blas_process_wide():
    numba_before, blas_before = numba.get_num_threads(), thread_pool.blas_threads()
    limiter = thread_pool.configure(threads=1)
    try:
        assert thread_pool.threads() == 1
        assert set(thread_pool.blas_threads().values()) == {1}
    finally:
        limiter.restore_original_limits()
        numba.set_num_threads(numba_before)
    assert thread_pool.blas_threads() == blas_before


@pytest.mark.parametrize("bad", [0, -1, numba.config.NUMBA_NUM_THREADS + 1, 1.5, True])
def test_set_threads_rejects_what_the_pool_cannot_do(bad):
    with pytest.raises(ZFNetError, match="NUMBA_NUM_THREADS"):
        thread_pool.set_threads(bad)


def test_configure_reads_zfnet_threads_and_rejects_nonsense(monkeypatch):
    numba_before = numba.get_num_threads()
    monkeypatch.setenv("ZFNET_THREADS", "1")
    limiter = thread_pool.configure()
    try:
        assert thread_pool.threads() == 1
    finally:
        limiter.restore_original_limits()
        numba.set_num_threads(numba_before)
    monkeypatch.setenv("ZFNET_THREADS", "two")
    with pytest.raises(ZFNetError, match="ZFNET_THREADS"):
        thread_pool.configure()


def test_configure_before_the_pool_starts_holds_in_every_thread():
    """What a Dask worker does at its start: configure(1), then tasks on threads of their own."""
    import subprocess
    import sys
    code = ("import threading, numba\n"
            "from zfnet.kernels import thread_pool, conv2d\n"
            "import numpy as np\n"
            "thread_pool.configure(1)\n"
            "seen = []\n"
            "t = threading.Thread(target=lambda: seen.append(numba.get_num_threads()))\n"
            "t.start(); t.join()\n"
            "conv2d(np.ones((1, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32))\n"
            "print(seen[0], set(thread_pool.blas_threads().values()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "1 {1}"


def test_every_command_takes_threads(monkeypatch, capsys):
    from zfnet.cli import build_parser, main
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        assert any("--threads" in a.option_strings for a in command._actions), name
    assert parser.parse_args(["weights", "list", "--threads", "1"]).threads == 1
    assert parser.parse_args(["weights", "--threads", "1", "list"]).threads == 1
    assert not hasattr(parser.parse_args(["weights", "list"]), "threads")
    monkeypatch.setenv("ZFNET_THREADS", "many")
    assert main(["weights", "list"]) == 2
    assert "ZFNET_THREADS" in capsys.readouterr().err


def test_a_command_run_from_python_gives_the_threads_back(capsys):
    """main() configures BLAS on one thread for its run only: called from Python (a test, a
    notebook) it leaves the process as it found it (the full test run once carried a leaked
    one-thread BLAS into later tests, whose exact comparisons against Dask workers then failed)."""
    from zfnet.cli import main
    numba_before, blas_before = numba.get_num_threads(), thread_pool.blas_threads()
    assert main(["weights", "list", "--threads", "1"]) == 0
    assert (numba.get_num_threads(), thread_pool.blas_threads()) == (numba_before, blas_before)
    if max(blas_before.values()) > 1:
        assert main(["weights", "list"]) == 0      # the default: every core for Numba, BLAS on one
        assert thread_pool.blas_threads() == blas_before
