"""The top-k scan on a Dask cluster (``dask.distributed``): the same shard and merge functions
as the in-process scan, run as tasks.

    shards_of(todo, n)    the images still to scan, sorted by path, cut every n: the shards are
                          a function of the set of images, not of the order they were listed in
    scan_on_cluster       one task per shard (zfnet.viz.shard.scan_shard_layers: load, forward
                          in batches, reduce to {layer: Summary}); the client merges each
                          finished shard into the states and saves them (the checkpoint)
    map_images            one task per image (the projections of a render, zfnet.viz.topk)
    connect               a Client for --scheduler ADDRESS or a local cluster of --workers N

Why the result is exact and fault-tolerant: a task is a pure function of its shard, and merging
summaries is associative, commutative and idempotent (zfnet.viz.summary). Dask reruns the tasks
of a worker that dies; the client merges each shard's result once, as it arrives, so no image is
lost or counted twice. The client holds the states ((M, k) arrays per layer and the table of
scanned images) and the futures of unfinished shards, never images or activations.

Workers read the images by path: every worker must see the same files at the same paths (a
shared filesystem). The network is sent to every worker once (Client.scatter).

Dask is an optional dependency (``pip install 'zfnet[dask]'``): it is imported only here, and
only when a cluster is asked for.
"""
import contextlib
import os

from zfnet.errors import ZFNetError
from zfnet.viz.shard import scan_shard_layers

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CONNECT_TIMEOUT = "20s"


def require_dask(option):
    """The distributed module, or a ZFNetError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ZFNetError(f"{option} needs Dask: install it with pip install 'zfnet[dask]' "
                         f"(dask[distributed]), or drop {option} to scan in this process") from None
    return distributed


def dashboard_available():
    """Dask's dashboard needs bokeh; without it the cluster runs with the dashboard off."""
    try:
        import bokeh  # noqa: F401
        return True
    except ImportError:
        return False


def shards_of(todo, shard_size):
    """[[path, ...], ...]: todo sorted by path, shard_size paths a shard (the last may be shorter)."""
    paths = sorted(todo)
    return [paths[i:i + shard_size] for i in range(0, len(paths), shard_size)]


def worker_env(n_workers, cores=None):
    """Thread counts for one-thread workers: the machine's cores shared out, so N workers with
    Numba/BLAS pools of their own do not oversubscribe the cores."""
    threads = max(1, (cores or os.cpu_count() or 1) // n_workers)
    return {name: str(threads) for name in THREAD_VARIABLES}


def local_cluster(n_workers, threads=None):
    """A LocalCluster of n_workers worker processes on this machine, one thread each (Dask's),
    each with `threads` Numba/BLAS threads (default: the cores shared out, worker_env)."""
    distributed = require_dask("--workers")
    import dask
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ZFNetError(f"--workers must be a positive number of worker processes, got {n_workers!r}")
    env = worker_env(n_workers) if threads is None else worker_env(1, threads)
    # The nanny sets its pre-spawn variables (by default OPENBLAS/OMP_NUM_THREADS=1, and values
    # already in this process's environment win) before it starts a worker: BLAS reads them
    # once, at import, so ours must be among them.
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        pre = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **env}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": pre}):
            return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                            dashboard_address=":0", env=env, silence_logs=40)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def connect(scheduler=None, workers=None):
    """A Client of the cluster at `scheduler` (tcp://HOST:PORT), or of a local cluster of
    `workers` processes that is closed on exit; None when neither is given (scan in process)."""
    if scheduler is None and workers is None:
        yield None
        return
    if scheduler is not None and workers is not None:
        raise ZFNetError("--scheduler and --workers exclude each other: use a running cluster, or start a local one")
    distributed = require_dask("--scheduler" if scheduler is not None else "--workers")
    cluster = None
    try:
        if scheduler is not None:
            try:
                client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as e:
                raise ZFNetError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({e}); start one "
                                 f"with 'dask scheduler' and workers with 'dask worker {scheduler}'") from None
        else:
            cluster = local_cluster(workers)
            client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def describe(client):
    """One line: the cluster's workers and threads, and the dashboard's address (or that it is off)."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    board = (f"dashboard {client.dashboard_link}" if dashboard_available() or client.cluster is None
             else "dashboard off (pip install bokeh to watch the cluster)")
    return f"Dask cluster {info.get('address', '?')}: {len(workers)} worker(s), {threads} thread(s); {board}"


def scan_on_cluster(client, net, shards, wanted, batch_size, crop, load, run):
    """Scan shards (lists of paths) on the cluster: one task per shard; run.add merges each
    result as it arrives and saves the states. Ctrl-C (or any error) cancels the tasks still
    pending; the shards merged so far are saved."""
    from distributed import as_completed
    if not shards:
        run.start()
        return
    net_f = client.scatter(net, broadcast=True, hash=False)   # a key of its own per scan
    pending = {}
    for paths in shards:
        f = client.submit(scan_shard_layers, net_f, paths, wanted, batch_size, crop, load, pure=True)
        pending[f.key] = (f, len(paths))
    run.start()
    try:
        for f in as_completed([f for f, _ in pending.values()]):
            _, n = pending.pop(f.key)
            run.add(f.result(), n)
            f.release()
    finally:
        if pending:
            client.cancel([f for f, _ in pending.values()])


def map_images(client, func, net, jobs):
    """Yield (index, func(net, *job)) over jobs as their tasks finish: one task per job."""
    from distributed import as_completed
    if not jobs:
        return
    net_f = client.scatter(net, broadcast=True, hash=False)   # a key of its own per scan
    index = {}
    for i, job in enumerate(jobs):
        f = client.submit(func, net_f, *job, pure=True)
        index[f.key] = (i, f)
    try:
        for f in as_completed([f for _, f in index.values()]):
            i, _ = index.pop(f.key)
            yield i, f.result()
            f.release()
    finally:
        if index:
            client.cancel([f for _, f in index.values()])
