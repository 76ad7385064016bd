"""The streaming top-k scan: equal to brute force, resumable, extendable, robust to bad images."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from topk_support import (brute_force_topk, duplicate, make_bad_images, scan_entries, tiny_net,
                          write_images)
from zfnet import ZFNetError
from zfnet.viz import scan as S
from zfnet.viz.scan import STATE_FILE, TopK, collect_images, image_maxima, parse_maps, scan


# -- maps and collections ------------------------------------------------------------------------
def test_parse_maps_all_first_n_and_lists():
    assert parse_maps("all", 5).tolist() == [0, 1, 2, 3, 4]
    assert parse_maps("3", 5).tolist() == [0, 1, 2]          # N: the first N maps
    assert parse_maps("4,1", 5).tolist() == [1, 4]           # i,j: those maps
    assert parse_maps("2,", 5).tolist() == [2]               # a single map
    assert parse_maps("0-2,4", 5).tolist() == [0, 1, 2, 4]
    assert parse_maps([3, 3, 0], 5).tolist() == [0, 3]
    for bad in ("0", "6", "1,9", "x", "1-", ",", "-3"):
        with pytest.raises(ZFNetError):
            parse_maps(bad, 5)


def test_collect_images_folder_list_and_duplicates(tmp_path, rng):
    paths = write_images(tmp_path / "a", 3, rng)
    sub = tmp_path / "a" / "sub"
    sub.mkdir()
    (sub / "z.PNG").write_bytes(Path(paths[1]).read_bytes())
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "dir.jpg").mkdir()                     # looks like an image: listed, to be reported
    got = collect_images(tmp_path / "a")
    names = [os.path.relpath(p, tmp_path / "a") for p in got]
    assert names == ["dir.jpg", "img_000.jpg", "img_001.png", "img_002.png", os.path.join("sub", "z.PNG")]
    lst = tmp_path / "list.txt"
    lst.write_text(f"# my images\na/img_002.png\n\n{paths[0]}\na/img_002.png\n")
    assert collect_images(lst) == [paths[2], paths[0]]      # list order, duplicates dropped
    assert collect_images(paths[1]) == [paths[1]]
    with pytest.raises(ZFNetError, match="no such folder"):
        collect_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZFNetError, match="no images found"):
        collect_images(tmp_path / "empty")


# -- the merge rule against a plain sort ---------------------------------------------------------
def test_image_maxima_first_max_in_row_major_order():
    a = np.zeros((2, 3, 4, 5), np.float32)
    a[0, 1, 2, 3] = a[0, 1, 3, 0] = 7.0                        # tie: (2, 3) comes first
    a[1, 2] = -1.0
    a[1, 2, 1, 1] = -0.5
    v, y, x = image_maxima(a, np.array([1, 2]))
    assert (v[0, 0], y[0, 0], x[0, 0]) == (7.0, 2, 3)
    assert (v[1, 1], y[1, 1], x[1, 1]) == (-0.5, 1, 1)
    assert (v[1, 0], y[1, 0], x[1, 0]) == (0.0, 0, 0)          # all equal: the first unit


@pytest.mark.parametrize("batch", [1, 3, 7, 50])
def test_topk_merge_equals_sorting_everything(rng, batch):
    # small integer values: many exact ties between images and within them
    n, c, h, w, k = 37, 6, 3, 4, 5
    a = rng.integers(-2, 4, size=(n, c, h, w)).astype(np.float32)
    maps = np.array([0, 2, 3, 5])
    top = TopK(maps, k)
    for s in range(0, n, batch):
        top.add(np.arange(s, min(n, s + batch)), a[s:s + batch])
    for j, m in enumerate(maps):
        cand = []
        for i in range(n):
            flat = a[i, m].ravel()
            f = int(np.argmax(flat))
            cand.append((i, f // w, f % w, float(flat[f])))
        want = sorted(cand, key=lambda e: (-e[3], e[0]))[:k]
        assert top.entries(j) == want


def test_topk_keeps_fewer_than_k_when_few_images():
    top = TopK(np.array([0]), 9)
    top.add(np.array([0, 1]), np.ones((2, 1, 2, 2), np.float32))
    assert [e[0] for e in top.entries(0)] == [0, 1]
    assert TopK.from_dict(json.loads(json.dumps(top.to_dict()))).entries(0) == top.entries(0)


# -- the scan against a forward pass per image -----------------------------------------------------
@pytest.fixture
def collection(tmp_path, rng):
    paths = write_images(tmp_path / "imgs", 13, rng)
    paths.append(duplicate(paths[4], "zz_copy_of_4.png"))    # exact ties between two images
    return paths


@pytest.mark.parametrize("layer,maps", [("relu2", "all"), ("pool1", "0,2,5"), ("conv1", "3")])
def test_scan_equals_brute_force(collection, layer, maps, tmp_path):
    net = tiny_net()
    res = scan(net, collection, layer, maps, k=4, batch_size=5, state_path=tmp_path / "s.json")
    chosen = parse_maps(maps, net.arch.shapes[layer][0]).tolist()
    want = brute_force_topk(net, collection, layer, chosen, 4)
    assert scan_entries(res.state) == want
    assert res.scanned == len(collection) and not res.skipped
    # the duplicate image ties with its original everywhere: the earlier one must come first
    for entries in want.values():
        idx = [e[0] for e in entries]
        if 13 in idx:
            assert 4 in idx and idx.index(4) < idx.index(13)


def test_scan_has_ties_at_zero(collection):
    # the setting of the brute-force test really exercises ties: a dead map keeps images 0..k-1
    net = tiny_net()
    res = scan(net, collection, "relu2", "all", k=3)
    dead = [j for j in range(8) if res.state.topk.value[j].max() == 0]
    assert dead, "tiny_net should have a map that never fires, to test the tie rule"
    for j in dead:
        assert res.state.topk.entries(j) == [(0, 0, 0, 0.0), (1, 0, 0, 0.0), (2, 0, 0, 0.0)]


def test_resume_and_extend_equal_one_scan(collection, tmp_path):
    net = tiny_net()
    one = scan(net, collection, "relu2", "all", k=4, batch_size=4, state_path=tmp_path / "one.json")
    state = tmp_path / "parts.json"
    first = scan(net, collection[:6], "relu2", "all", k=4, batch_size=4, state_path=state)
    assert first.scanned == 6 and not first.resumed
    again = scan(net, collection[:6], "relu2", "all", k=4, batch_size=4, state_path=state)
    assert again.resumed and again.scanned == 0                     # nothing left to do
    more = scan(net, collection, "relu2", "all", k=4, batch_size=3, state_path=state)
    assert more.resumed and more.scanned == len(collection) - 6     # only the new images
    assert scan_entries(more.state) == scan_entries(one.state)
    assert [im["path"] for im in more.state.images] == collection
    # extending with a collection of only the new images gives the same too
    state2 = tmp_path / "parts2.json"
    scan(net, collection[:9], "relu2", "all", k=4, state_path=state2)
    rest = scan(net, collection[9:], "relu2", "all", k=4, state_path=state2)
    assert rest.not_in_collection == 9
    assert scan_entries(rest.state) == scan_entries(one.state)


def test_crash_mid_scan_resumes_from_saved_state(collection, tmp_path):
    net = tiny_net()
    one = scan(net, collection, "relu2", "all", k=4, batch_size=3)
    state = tmp_path / STATE_FILE
    calls = []

    def crashing_load(path, meta, crop):
        calls.append(path)
        if len(calls) == 8:          # in the middle of the third batch
            raise RuntimeError("simulated crash")
        return S.load_input(path, meta, crop)

    with pytest.raises(RuntimeError, match="simulated crash"):
        scan(net, collection, "relu2", "all", k=4, batch_size=3, state_path=state, load=crashing_load)
    saved = json.loads(state.read_text())
    # the batches finished before the crash are saved (the background loader may have been one
    # batch ahead, but only merged batches are recorded)
    assert len(saved["images"]) == 6
    assert [im["path"] for im in saved["images"]] == collection[:6]
    # no half-written state or temporary file is left behind
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    loaded = []

    def counting_load(path, meta, crop):
        loaded.append(path)
        return S.load_input(path, meta, crop)

    res = scan(net, collection, "relu2", "all", k=4, batch_size=3, state_path=state, load=counting_load)
    assert res.resumed and sorted(loaded) == sorted(collection[6:])  # nothing is scanned twice
    assert scan_entries(res.state) == scan_entries(one.state)


def test_interrupt_keeps_state(collection, tmp_path):
    net = tiny_net()
    state = tmp_path / STATE_FILE
    done = []

    def stop_after_two(n, total):
        assert total == len(collection)
        done.append(n)
        if len(done) == 3:           # progress(0, total) first, then once per batch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(net, collection, "relu2", "2", k=2, batch_size=4, state_path=state, progress=stop_after_two)
    assert len(json.loads(state.read_text())["images"]) == 8
    res = scan(net, collection, "relu2", "2", k=2, batch_size=4, state_path=state)
    assert res.scanned == len(collection) - 8
    assert scan_entries(res.state) == brute_force_topk(net, collection, "relu2", [0, 1], 2)


def test_bad_images_are_skipped_with_reasons(collection, tmp_path):
    folder = Path(collection[0]).parent
    bad = make_bad_images(folder, collection[0])
    paths = collect_images(folder)
    assert {Path(p).name for p in paths} >= set(bad)
    net = tiny_net()
    state = tmp_path / STATE_FILE
    res = scan(net, paths, "relu2", "all", k=4, batch_size=4, state_path=state)
    skipped = {Path(s["path"]).name: s["reason"] for s in res.skipped}
    assert set(skipped) == set(bad)
    for name, fragment in bad.items():
        assert fragment in skipped[name], (name, skipped[name])
    assert res.scanned == len(collection)
    # the good images give exactly the result of scanning them alone
    good = [p for p in paths if Path(p).name not in bad]
    assert scan_entries(res.state) == brute_force_topk(net, good, "relu2", list(range(8)), 4)
    saved = json.loads(state.read_text())
    assert {Path(s["path"]).name for s in saved["skipped"]} == set(bad)
    # resuming does not retry unchanged bad files, and the result stands
    again = scan(net, paths, "relu2", "all", k=4, batch_size=4, state_path=state)
    assert again.scanned == 0 and again.skipped == [] and len(again.state.skipped) == len(bad)
    # a bad file that is fixed is picked up by the next run
    fixed = folder / "bad_text.jpg"
    fixed.write_bytes(Path(collection[0]).read_bytes())
    os.utime(fixed, ns=(1, 1))
    third = scan(net, paths, "relu2", "all", k=4, batch_size=4, state_path=state)
    assert third.scanned == 1 and len(third.state.skipped) == len(bad) - 1


def test_resume_refuses_a_different_computation_or_changed_images(collection, tmp_path):
    net = tiny_net()
    state = tmp_path / STATE_FILE
    scan(net, collection[:5], "relu2", "all", k=4, state_path=state)
    with pytest.raises(ZFNetError, match="maps"):
        scan(net, collection, "relu2", "3", k=4, state_path=state)
    with pytest.raises(ZFNetError, match="k 4"):
        scan(net, collection, "relu2", "all", k=5, state_path=state)
    with pytest.raises(ZFNetError, match="layer"):
        scan(net, collection, "conv2", "all", k=4, state_path=state)
    with pytest.raises(ZFNetError, match="model weights"):
        scan(tiny_net(seed=1), collection, "relu2", "all", k=4, state_path=state)
    Path(collection[2]).write_bytes(Path(collection[3]).read_bytes())
    with pytest.raises(ZFNetError, match="changed or disappeared.*--restart"):
        scan(net, collection, "relu2", "all", k=4, state_path=state)
    res = scan(net, collection, "relu2", "all", k=4, state_path=state, restart=True)
    assert not res.resumed and res.scanned == len(collection)
    state.write_text("{not json")
    with pytest.raises(ZFNetError, match="cannot read the scan state"):
        scan(net, collection, "relu2", "all", k=4, state_path=state)


def test_scan_argument_errors(collection):
    net = tiny_net()
    with pytest.raises(ZFNetError, match="no layer"):
        scan(net, collection, "conv9", "all")
    with pytest.raises(ZFNetError, match="k must be"):
        scan(net, collection, "relu2", "all", k=0)
    with pytest.raises(ZFNetError, match="batch size"):
        scan(net, collection, "relu2", "all", batch_size=0)
    with pytest.raises(ZFNetError, match="do not exist"):
        scan(net, collection, "relu2", "1,8")
    net.meta.pop("mean")
    with pytest.raises(ZFNetError, match="lacks mean"):     # not: every image skipped for the same reason
        scan(net, collection, "relu2", "all")
