"""The top-k scan on a 2-worker Dask cluster (worker processes): exactly the in-process result,
whatever the sharding or the order of the merges, after a worker is killed, and after a resume.

Batching: the exact comparisons below run every image in a forward pass of its own (batch 1)
on both sides, except test_differently_batched_scans_are_equal, which holds only once an
image's activations do not depend on the other images of its batch (a batch-invariant
forward pass)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scan_dask_support import (all_entries, client, deadline, entries, kill_busy_worker,  # noqa: F401
                               photographs, worker_pids)
from topk_support import tiny_net, write_images
from zfnet import ZFNetError
from zfnet.viz.collect import collect_images
from zfnet.viz.layer_sets import resolve_layers, stage_layers
from zfnet.viz.scan import scan, scan_layers
from zfnet.viz.scan_dask import require_dask, shards_of
from zfnet.viz.scan_state import STATE_FILE
from zfnet.viz.shard import scan_shard_layers
from zfnet.viz.summary import merge

pytestmark = pytest.mark.usefixtures("deadline")

LAYERS = {"relu_conv1": [0, 5, 17, 40], "fire2/concat": list(range(0, 128, 16))}   # an early layer, small maps


@pytest.fixture(scope="module")
def squeezenet():
    from zfnet.weights import load_model
    return load_model("squeezenet1_0", progress=False)


@pytest.fixture
def photos(images_dir, tmp_path):
    return photographs(images_dir, tmp_path)


def test_cluster_scan_equals_in_process_exactly(client, squeezenet, photos):
    here = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=1)
    there = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=1, client=client, shard_size=3)
    assert all_entries(there) == all_entries(here)                  # image, y, x, value of every entry
    for layer, res in there.items():
        assert res.scanned == len(photos) - 1 and res.shards == 3   # 9 paths in shards of 3
        assert [Path(s["path"]).name for s in res.skipped] == ["zz_not_an_image.jpg"]
        assert "not an image" in res.skipped[0]["reason"]           # read (and skipped) on a worker
        assert sorted(im["path"] for im in res.state.images) == sorted(photos[:-1])


def test_differently_batched_scans_are_equal(client, squeezenet, photos):
    # holds only with a batch-invariant forward pass (an image's activations independent of its batch)
    here = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=4)
    there = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=2, client=client, shard_size=3)
    assert all_entries(there) == all_entries(here)


def test_random_shardings_and_merge_orders_agree(client, tmp_path, rng):
    net = tiny_net()
    paths = write_images(tmp_path / "imgs", 14, rng)
    wanted = {"conv1": ([0, 2, 4], 3), "relu2": (list(range(8)), 4)}
    want = scan_layers(net, paths, {l: m for l, (m, _) in wanted.items()}, k=4, batch_size=1)
    for seed in range(3):
        r = np.random.default_rng(seed)
        cuts = np.sort(r.choice(np.arange(1, len(paths)), size=r.integers(1, 6), replace=False))
        parts = [scan_shard_layers(net, [paths[i] for i in idx], wanted, batch_size=1)
                 for idx in np.split(r.permutation(len(paths)), cuts)]
        order = r.permutation(len(parts))
        for layer, (maps, k) in wanted.items():
            merged = merge(*[parts[i][layer] for i in order])
            want_k = scan_layers(net, paths, {layer: maps}, k=k, batch_size=1)[layer]
            assert [merged.key_entries(j) for j in range(len(maps))] == \
                [want_k.state.summary.key_entries(j) for j in range(len(maps))]
    # on the cluster: any shard size, results merged in whatever order they arrive
    for shard_size in (1, 5):
        got = scan_layers(net, paths[::-1], {l: m for l, (m, _) in wanted.items()}, k=4, batch_size=1,
                          client=client, shard_size=shard_size)
        assert all_entries(got) == all_entries(want)
    assert shards_of(paths[::-1], 4) == shards_of(paths, 4)       # shards depend on the set, not the order


def test_renamed_folder_gives_the_same_answer(tmp_path, rng):
    net = tiny_net()
    paths = write_images(tmp_path / "a", 9, rng)
    os.rename(tmp_path / "a", tmp_path / "renamed")
    moved = collect_images(tmp_path / "renamed")
    one = scan(net, [p.replace(str(tmp_path / "a"), str(tmp_path / "renamed")) for p in paths][::-1],
               "relu2", "all", k=3, batch_size=1)
    two = scan(net, moved, "relu2", "all", k=3, batch_size=1)
    assert entries(one) == entries(two)


def test_killed_worker_loses_no_image_and_counts_none_twice(client, squeezenet, photos):
    here = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=1)
    before = worker_pids(client)
    killed = []

    def kill_once(done, total):
        if done == 1 and not killed:                 # the first shard is in; others are running
            killed.append(kill_busy_worker(client))

    there = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=1, client=client, shard_size=1,
                        on_shard=kill_once)
    assert killed and killed[0] is not None, "no worker was busy to kill"
    client.wait_for_workers(2, timeout=120)         # the nanny restarts the killed worker
    assert worker_pids(client) != before
    assert all_entries(there) == all_entries(here)
    for res in there.values():
        assert res.shards == len(photos) and res.scanned == len(photos) - 1
        assert len({im["path"] for im in res.state.images}) == len(res.state.images) == len(photos) - 1


def test_resume_scans_only_the_rest(client, squeezenet, photos, tmp_path):
    paths = {layer: tmp_path / layer.replace("/", "_") / STATE_FILE for layer in LAYERS}
    want = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=1)

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt                   # as Ctrl-C on the client
    with pytest.raises(KeyboardInterrupt):
        scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=1, state_paths=paths, client=client,
                    shard_size=2, on_shard=stop_after_two)
    saved = {layer: json.loads(p.read_text()) for layer, p in paths.items()}
    n_done = {len(s["images"]) + len(s["skipped"]) for s in saved.values()}
    assert n_done == {4}                              # two shards of 2, saved; the rest cancelled
    rest = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=1, state_paths=paths, client=client,
                       shard_size=2)
    for res in rest.values():
        assert res.resumed and res.shards == 3 and res.scanned + len(res.skipped) == len(photos) - 4
    assert all_entries(rest) == all_entries(want)
    again = scan_layers(squeezenet, photos, LAYERS, k=3, batch_size=1, state_paths=paths, client=client)
    assert all(r.scanned == 0 and r.shards == 0 for r in again.values())      # nothing left to do


def test_extending_scans_only_new_images(client, tmp_path, rng):
    net = tiny_net()
    paths = write_images(tmp_path / "imgs", 12, rng)
    state = tmp_path / STATE_FILE
    first = scan(net, paths[:7], "relu2", "all", k=3, batch_size=1, state_path=state, client=client, shard_size=3)
    assert first.scanned == 7
    more = scan(net, paths, "relu2", "all", k=3, batch_size=1, state_path=state, client=client, shard_size=3)
    assert more.resumed and more.scanned == 5 and more.shards == 2
    assert entries(more) == entries(scan(net, paths, "relu2", "all", k=3, batch_size=1))


def test_stages_of_squeezenet(squeezenet):
    assert stage_layers(squeezenet.arch) == ["relu_conv1", "fire4/concat", "fire8/concat", "relu_conv10"]
    assert resolve_layers(squeezenet.arch, "fire9/concat, conv1,stages") == \
        ["conv1", "relu_conv1", "fire4/concat", "fire8/concat", "fire9/concat", "relu_conv10"]
    with pytest.raises(ZFNetError, match="no layer 'fire99'"):
        resolve_layers(squeezenet.arch, "conv1,fire99")


def test_base_install_does_not_import_dask():
    code = ("import sys; import zfnet.viz.scan, zfnet.viz.topk, zfnet.cli.topk, zfnet.cli.filters; "
            "print('distributed' in sys.modules or 'dask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_clear_errors_without_dask_or_cluster(monkeypatch, tmp_path, rng):
    import zfnet.viz.scan_dask as sd
    from zfnet.cli import main
    monkeypatch.setitem(sys.modules, "distributed", None)               # as if not installed
    with pytest.raises(ZFNetError, match=r"--workers needs Dask.*zfnet\[dask\]"):
        require_dask("--workers")
    paths = write_images(tmp_path / "imgs", 2, rng)
    args = ["topk", "--images", str(tmp_path / "imgs"), "--layer", "conv1", "--out", str(tmp_path / "o")]
    from zfnet.weights import save_net
    save_net(tiny_net(), tmp_path / "tiny.safetensors")
    args += ["--model", str(tmp_path / "tiny.safetensors")]
    assert main(args + ["--scheduler", "tcp://127.0.0.1:9"]) == 2
    monkeypatch.delitem(sys.modules, "distributed")
    monkeypatch.setattr(sd, "CONNECT_TIMEOUT", "1s")
    assert main(args + ["--scheduler", "tcp://127.0.0.1:9"]) == 2                 # nothing listens there
    assert main(args + ["--workers", "0"]) == 2
    assert main(args + ["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert main(args + ["--shard-size", "0"]) == 2
    filters = ["filters", "--images", str(tmp_path / "imgs"), "--filter", "1", "--out", str(tmp_path / "f"),
               "--model", str(tmp_path / "tiny.safetensors")]
    assert main(filters + ["--scheduler", "tcp://127.0.0.1:9"]) == 2                # filters scans on Dask too
    assert len(paths) == 2


def test_cli_on_a_running_cluster(client, tmp_path, rng, capsys):
    from zfnet.cli import main
    from zfnet.weights import save_net
    save_net(tiny_net(), tmp_path / "tiny.safetensors")
    write_images(tmp_path / "imgs", 5, rng)
    common = ["topk", "--model", str(tmp_path / "tiny.safetensors"), "--images", str(tmp_path / "imgs"),
              "--layer", "relu2", "--maps", "all", "--k", "3", "--batch", "1", "--scan-only", "--json"]
    assert main(common + ["--out", str(tmp_path / "here")]) == 0
    here = json.loads(capsys.readouterr().out)
    assert main(common + ["--out", str(tmp_path / "there"), "--scheduler", client.scheduler.address,
                          "--shard-size", "2"]) == 0
    captured = capsys.readouterr()
    assert f"Dask cluster {client.scheduler.address}: 2 worker(s)" in captured.err
    assert "3 shard(s)" in captured.err
    assert json.loads(captured.out)["maps"] == here["maps"]
    assert client.status == "running"                       # the command closed its own client only


def test_cli_on_local_workers_equals_in_process(tmp_path, rng, capsys):
    from zfnet.cli import main
    from zfnet.weights import save_net
    save_net(tiny_net(), tmp_path / "tiny.safetensors")
    write_images(tmp_path / "imgs", 7, rng)
    common = ["topk", "--model", str(tmp_path / "tiny.safetensors"), "--images", str(tmp_path / "imgs"),
              "--layer", "conv1,relu2", "--maps", "3", "--k", "4", "--batch", "1", "--cell", "16", "--json"]
    assert main(common + ["--out", str(tmp_path / "here")]) == 0
    here = json.loads(capsys.readouterr().out)
    assert main(common + ["--out", str(tmp_path / "there"), "--workers", "2", "--shard-size", "3"]) == 0
    captured = capsys.readouterr()
    there = json.loads(captured.out)
    assert "Dask cluster" in captured.err and "2 worker(s)" in captured.err and "dashboard" in captured.err

    def without_time(d):
        return [{k: v for k, v in layer.items() if k != "scan_seconds"} for layer in d["layers"]]
    assert without_time(there) == without_time(here) and [l["layer"] for l in here["layers"]] == ["conv1", "relu2"]
    html = (tmp_path / "there" / "index.html").read_text()
    assert html.index("conv1") < html.index("relu2") and "relu2/index.html" in html
    for slug in ("conv1", "relu2"):
        assert (tmp_path / "there" / slug / "index.html").exists() and (tmp_path / "there" / slug / STATE_FILE).exists()
        # the same cells (the image table's order, hence the input file names, follows the merges)
        a, b = ([{k: v for k, v in c.items() if k not in ("image", "input_png")} for e in
                 json.loads((tmp_path / d / slug / "index.json").read_text())["results"] for c in e["cells"]]
                for d in ("here", "there"))
        assert a == b
