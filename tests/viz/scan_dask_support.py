"""Shared by the Dask scan tests: a 2-worker local cluster (always closed), a deadline that
stops a hanging test, the shared photographs, and exact comparison of summaries."""
import os
import shutil
import signal
from pathlib import Path

import pytest

from zfnet.viz.collect import collect_images

TEST_SECONDS = 240        # no Dask test may run longer: a hang fails instead of blocking CI


@pytest.fixture
def deadline():
    """Fail the test (TimeoutError raised in the main thread) if it runs past TEST_SECONDS."""
    def expired(signum, frame):
        raise TimeoutError(f"Dask test ran over {TEST_SECONDS} s (a hang?)")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def client():
    """A Client of a LocalCluster of 2 worker processes, one Dask thread each; closed after the module.

    The workers get as many BLAS threads as this process has now, held there for the module:
    OpenBLAS's GEMM changes in the last bits with its thread count (it splits the columns among
    its threads, and its edge kernels sum in another order), so the exact comparisons need the
    same count on both sides until the forward pass is invariant to it."""
    from distributed import Client

    from zfnet.kernels import thread_pool
    from zfnet.viz.scan_dask import local_cluster
    blas = max(thread_pool.blas_threads().values())
    with thread_pool.blas_limited(blas):
        cluster = local_cluster(2, threads=blas)
        c = Client(cluster)
        try:
            c.wait_for_workers(2, timeout=120)
            assert set(c.run(lambda: max(thread_pool.blas_threads().values())).values()) == {blas}
            yield c
        finally:
            c.close()
            cluster.close()


def photographs(images_dir, tmp_path, n=8, bad=True):
    """n of the shared photographs copied into tmp_path/photos (plus an unreadable one)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in collect_images(images_dir)[:n]:
        shutil.copyfile(p, folder / Path(p).name)
    if bad:
        (folder / "zz_not_an_image.jpg").write_text("not an image\n")
    return collect_images(folder)


def entries(result):
    """{map: [(path, y, x, value), ...]}: every kept entry of a ScanResult, exactly."""
    state = result.state
    return {m: [(state.image_path(i), y, x, v) for i, y, x, v in state.topk.entries(j)]
            for j, m in enumerate(state.maps.tolist())}


def all_entries(results):
    """{layer: entries} over a scan_layers result, with the skipped paths."""
    return {layer: (entries(r), sorted(s["path"] for s in r.state.skipped)) for layer, r in results.items()}


def worker_pids(client):
    return client.run(os.getpid)


def kill_busy_worker(client):
    """SIGKILL the process of a worker that is running a task now; returns its address or None."""
    pids = worker_pids(client)
    for addr, keys in client.processing().items():
        if keys and addr in pids:
            os.kill(pids[addr], signal.SIGKILL)
            return addr
    return None
