"""The streaming top-k scan: equal to brute force, independent of order and sharding, resumable,
extendable, robust to bad images."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from topk_support import (assert_topk_close, brute_force_topk, content_key, duplicate, make_bad_images,
                          scan_entries, tiny_net, write_images)
from zfnet import ZFNetError
from zfnet.viz.collect import collect_images, image_record
from zfnet.viz.scan import scan
from zfnet.viz.scan_state import STATE_FILE, ScanState
from zfnet.viz.shard import (choose_maps, load_input, load_shard, scan_shard, summarize_layers,
                             summarize_shard)
from zfnet.viz.summary import TopK, image_maxima, merge, summarize


# -- maps and collections ------------------------------------------------------------------------
def test_choose_maps_all_or_indices():
    assert choose_maps("all", 5).tolist() == [0, 1, 2, 3, 4]
    assert choose_maps([3, 3, 0], 5).tolist() == [0, 3]
    for bad, message in (([5], "do not exist"), ([], "no maps"), ("0,2", "list of map indices"), ([1.5], "list")):
        with pytest.raises(ZFNetError, match=message):
            choose_maps(bad, 5)


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
    rec = image_record(paths[0])
    assert (rec["sha256"], rec["path"]) == content_key(paths[0]) and rec["size"] == Path(paths[0]).stat().st_size


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


def fake_records(n, rng):
    """n image records whose content hashes collide in pairs (so the path decides some ties)."""
    shas = [f"{int(v):064x}" for v in rng.integers(0, n // 2 + 1, size=n)]
    return [{"path": f"/img/{i:03d}.png", "size": 1, "mtime_ns": 1, "sha256": shas[i]} for i in range(n)]


def sorted_by_rule(records, a, maps, k):
    """Per chosen map, the k best (sha256, path, y, x, value) by a plain sort of every image."""
    w = a.shape[3]
    out = []
    for m in maps:
        cand = []
        for rec, am in zip(records, a[:, m]):
            f = int(np.argmax(am.ravel()))
            cand.append((rec["sha256"], rec["path"], f // w, f % w, float(am.ravel()[f])))
        out.append(sorted(cand, key=lambda e: (-e[4], e[0], e[1]))[:k])
    return out


@pytest.mark.parametrize("seed", range(4))
def test_merge_of_any_sharding_in_any_order_equals_sorting_everything(seed):
    # small integer values: many exact ties between images and within them
    rng = np.random.default_rng(seed)
    n, c, h, w, k = 37, 6, 3, 4, 5
    a = rng.integers(-2, 4, size=(n, c, h, w)).astype(np.float32)
    records, maps = fake_records(n, rng), np.array([0, 2, 3, 5])
    want = sorted_by_rule(records, a, maps, k)
    perm = rng.permutation(n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(1, 8), replace=False))
    shards = [summarize([records[i] for i in part], a[part], maps, k) for part in np.split(perm, cuts)]
    order = rng.permutation(len(shards))
    flat = merge(*[shards[i] for i in order])
    nested = merge(merge(*shards[: len(shards) // 2]), merge(*shards[len(shards) // 2:]))  # another grouping
    for s in (flat, nested, summarize(records, a, maps, k)):
        assert [s.key_entries(j) for j in range(len(maps))] == want
        assert sorted(r["path"] for r in s.images) == sorted(r["path"] for r in records)
    # an image met twice (a shard scanned again) counts once
    again = merge(flat, shards[0], shards[0])
    assert [again.key_entries(j) for j in range(len(maps))] == want and len(again.images) == n


def test_merge_refuses_other_maps_and_keeps_skips_of_unscanned_images_only():
    rng = np.random.default_rng(0)
    recs, a = fake_records(4, rng), np.ones((4, 3, 2, 2), np.float32)
    bad = {"path": recs[3]["path"], "size": 1, "mtime_ns": 0, "reason": "damaged"}
    s = merge(summarize(recs[:2], a[:2], [0, 1], 2, [bad]), summarize(recs[2:], a[2:], [0, 1], 2))
    assert s.skipped == []                           # skipped once, scanned later (a fixed file)
    with pytest.raises(ZFNetError, match="different maps"):
        merge(s, summarize(recs[:1], a[:1], [0], 2))


def test_topk_keeps_fewer_than_k_when_few_images():
    rng = np.random.default_rng(0)
    s = summarize(fake_records(2, rng), np.ones((2, 1, 2, 2), np.float32), [0], 9)
    assert len(s.topk.entries(0)) == 2 and s.topk.image[0, 2:].tolist() == [-1] * 7
    assert TopK.from_dict(json.loads(json.dumps(s.topk.to_dict()))).entries(0) == s.topk.entries(0)


# -- the scan against a forward pass per image -----------------------------------------------------
@pytest.fixture
def collection(tmp_path, rng):
    paths = write_images(tmp_path / "imgs", 13, rng)
    paths.append(duplicate(paths[4], "zz_copy_of_4.png"))    # exact ties between two images
    return paths


@pytest.mark.parametrize("layer,maps", [("relu2", "all"), ("pool1", [0, 2, 5]), ("conv1", [0, 1, 2])])
def test_scan_equals_brute_force(collection, layer, maps, tmp_path):
    net = tiny_net()
    # batch 1 runs every image alone, as the brute force does: the same bits, so exactly equal
    res = scan(net, collection, layer, maps, k=4, batch_size=1, state_path=tmp_path / "s.json")
    chosen = choose_maps(maps, net.arch.shapes[layer][0]).tolist()
    want = brute_force_topk(net, collection, layer, chosen, 4)
    assert scan_entries(res.state) == want
    assert res.scanned == len(collection) and not res.skipped
    # the duplicate image ties with its original everywhere: same content hash, so the path decides
    for entries in scan_entries(res.state).values():
        idx = [e[0] for e in entries]
        if collection[13] in idx:
            assert collection[4] in idx and idx.index(collection[4]) < idx.index(collection[13])
    batched = scan(net, collection, layer, maps, k=4, batch_size=5)
    assert_topk_close(scan_entries(batched.state), want)


def test_scan_result_does_not_depend_on_image_order_or_batches(collection):
    net = tiny_net()
    one = scan(net, collection, "relu2", "all", k=4, batch_size=1)
    other = scan(net, collection[::-1], "relu2", "all", k=4, batch_size=1)
    assert scan_entries(other.state) == scan_entries(one.state)
    # shards scanned on their own (as a distributed scan's workers do) and merged in another order
    shards = [scan_shard(net, collection[i::3], "relu2", one.state.maps, 4) for i in range(3)]
    merged = ScanState.new(net, "relu2", one.state.maps, 4, True)
    merged.summary = merge(shards[2], shards[0], shards[1])
    assert_topk_close(scan_entries(merged), scan_entries(one.state))
    assert sorted(im["path"] for im in merged.images) == sorted(collection)


def test_scan_has_ties_at_zero(collection):
    # the setting of the brute-force test really exercises ties: a dead map keeps the images
    # with the smallest (content hash, path)
    net = tiny_net()
    res = scan(net, collection, "relu2", "all", k=3)
    dead = [j for j in range(8) if res.state.topk.value[j].max() == 0]
    assert dead, "tiny_net should have a map that never fires, to test the tie rule"
    first = sorted(collection, key=content_key)[:3]
    for j in dead:
        assert scan_entries(res.state)[j] == [(p, 0, 0, 0.0) for p in first]


def test_one_pass_serves_several_layers(collection):
    net = tiny_net()
    loaded = load_shard(collection[:6], net.meta)
    both = summarize_layers(net, {"conv1": ([0, 3], 2), "relu2": (list(range(8)), 3)}, loaded)
    for layer, maps, k in (("conv1", [0, 3], 2), ("relu2", list(range(8)), 3)):
        alone = summarize_shard(net, layer, maps, k, loaded)
        assert [both[layer].key_entries(j) for j in range(len(maps))] == \
            [alone.key_entries(j) for j in range(len(maps))]


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
    assert_topk_close(scan_entries(more.state), scan_entries(one.state))
    assert [im["path"] for im in more.state.images] == collection
    # extending with a collection of only the new images gives the same too
    state2 = tmp_path / "parts2.json"
    scan(net, collection[:9], "relu2", "all", k=4, state_path=state2)
    rest = scan(net, collection[9:], "relu2", "all", k=4, state_path=state2)
    assert rest.not_in_collection == 9
    assert_topk_close(scan_entries(rest.state), scan_entries(one.state))


def test_crash_mid_scan_resumes_from_saved_state(collection, tmp_path):
    net = tiny_net()
    one = scan(net, collection, "relu2", "all", k=4, batch_size=3)
    state = tmp_path / STATE_FILE
    calls = []

    def crashing_load(path, meta, crop):
        calls.append(path)
        if len(calls) == 8:          # in the middle of the third batch
            raise RuntimeError("simulated crash")
        return load_input(path, meta, crop)

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
        return load_input(path, meta, crop)

    res = scan(net, collection, "relu2", "all", k=4, batch_size=3, state_path=state, load=counting_load)
    assert res.resumed and sorted(loaded) == sorted(collection[6:])  # nothing is scanned twice
    assert scan_entries(res.state) == scan_entries(one.state)          # batched alike: the same bits


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
        scan(net, collection, "relu2", [0, 1], k=2, batch_size=4, state_path=state, progress=stop_after_two)
    assert len(json.loads(state.read_text())["images"]) == 8
    res = scan(net, collection, "relu2", [0, 1], k=2, batch_size=4, state_path=state)
    assert res.scanned == len(collection) - 8
    assert_topk_close(scan_entries(res.state), brute_force_topk(net, collection, "relu2", [0, 1], 2))


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
    assert_topk_close(scan_entries(res.state), brute_force_topk(net, good, "relu2", list(range(8)), 4))
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
        scan(net, collection, "relu2", [0, 1, 2], k=4, state_path=state)
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
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "version": 1}))          # an older format: no content hashes
    with pytest.raises(ZFNetError, match="version 1.*--restart"):
        scan(net, collection, "relu2", "all", k=4, state_path=state)
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
        scan(net, collection, "relu2", [1, 8])
    with pytest.raises(ZFNetError, match="list of map indices"):
        scan(net, collection, "relu2", "1,2")
    net.meta.pop("mean")
    with pytest.raises(ZFNetError, match="lacks mean"):     # not: every image skipped for the same reason
        scan(net, collection, "relu2", "all")


# -- the weights' digest (what a saved state was computed with) -----------------------------------
def test_weights_digest_is_kept_only_while_the_same_read_only_tensors_are_there():
    import hashlib

    from zfnet.viz.scan_state import weights_digest
    net = tiny_net()

    def hashed(net, layer):                     # the digest's definition, computed afresh
        h = hashlib.sha256()
        for spec in net.arch.layers[: net.arch.index(layer) + 1]:
            for key in sorted(spec.param_shapes()):
                a = net.params[f"{spec.name}.{key}"]
                h.update(f"{spec.name}.{key}{a.shape}".encode())
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()
    layer = net.arch.names[-1]
    first = weights_digest(net, layer)
    assert first == hashed(net, layer) and weights_digest(net, layer) == first      # kept, the same
    name = next(iter(net.params))
    changed = net.params[name].copy()
    changed.flat[0] += 1
    net.params[name] = changed                  # another tensor (writeable): hashed, not kept
    assert weights_digest(net, layer) == hashed(net, layer) != first
    changed.flat[0] += 1                        # changed in place: seen, since it was not kept
    assert weights_digest(net, layer) == hashed(net, layer)
