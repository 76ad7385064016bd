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
