"""Fig. 2 figures: patches are receptive fields holding the projection; files, cache, resume."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from topk_support import tiny_net, write_images
from zfnet import ZFNetError
from zfnet.deconv import Unit, project
from zfnet.image import load_image, preprocess, to_display
from zfnet.net.receptive import unit_box
from zfnet.viz import grid
from zfnet.viz import topk as T
from zfnet.viz.scan import scan
from zfnet.viz.scan_state import STATE_FILE, load_state
from zfnet.viz.summary import TopK


@pytest.fixture
def scanned(tmp_path, rng):
    paths = write_images(tmp_path / "imgs", 12, rng)
    net = tiny_net()
    out = tmp_path / "out"
    res = scan(net, paths, "relu2", "all", k=4, batch_size=5, state_path=out / STATE_FILE)
    return net, res.state, paths, out


def _nonzero_bbox(p):
    """Half-open (y0, y1, x0, x1) of the nonzero pixels of a (3, H, W) projection."""
    ys, xs = np.nonzero(np.any(p != 0, axis=0))
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


@pytest.mark.filterwarnings("ignore::zfnet.deconv.DeadMapWarning")
def test_patches_are_receptive_fields_holding_the_projection(scanned):
    net, state, paths, _ = scanned
    arch = net.arch
    rf = T.receptive_field(arch, "relu2")
    units = [u for us in T.top_units(state, arch) for u in us]
    # plus the corner and edge units of image 0, whose fields are clipped by the border
    h, w = arch.shapes["relu2"][1:]
    for m in (0, 3):
        for y, x in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, 0)):
            field = rf.box(y, x)
            box = (max(field[0], 0), min(field[1], 32), max(field[2], 0), min(field[3], 32))
            units.append(T.TopUnit(m, 0, 0, paths[0], y, x, 1.0, box, field))
    checked = clipped = 0
    for i in sorted({u.image for u in units}):
        x = preprocess(load_image(state.image_path(i)), net.meta)[None]
        mine = [u for u in units if u.image == i]
        p = project(net, x, "relu2", [Unit(0, u.map, u.y, u.x) for u in mine], crop=False)   # dense walk
        for u, proj in zip(mine, p):
            # the patch box is the unit's receptive field, clipped (zfnet.net.receptive.unit_box)
            assert u.box == unit_box(arch, "relu2", u.y, u.x, (32, 32))
            clipped += u.box != u.field
            if np.any(proj != 0):
                y0, y1, x0, x1 = _nonzero_bbox(proj)
                b = u.box
                assert b[0] <= y0 and y1 <= b[1] and b[2] <= x0 and x1 <= b[3], (u, (y0, y1, x0, x1))
                checked += 1
    assert checked >= 20 and clipped >= 10


def test_cell_frames_place_clipped_patches_where_they_belong(scanned):
    net, state, paths, _ = scanned
    x = preprocess(load_image(paths[0]), net.meta)
    shown = to_display(x, net.meta)
    rf = T.receptive_field(net.arch, "relu2")                 # size 17, stride 4, offset -6
    assert (rf.size, rf.stride, rf.offset) == ((17, 17), (4, 4), (-6, -6))
    field = rf.box(0, 2)                                      # rows -6..11: 6 rows off the image
    box = (0, field[1], field[2], field[3])
    u = T.TopUnit(0, 0, 0, paths[0], 0, 2, 1.0, box, field)
    framed = T.place_in_field(np.ascontiguousarray(shown[box[0]:box[1], box[2]:box[3]]), u, (32, 32))
    assert framed.shape == (17, 17, 3)
    assert np.all(framed[:6] == grid.EMPTY)
    assert np.array_equal(framed[6:], shown[0:11, field[2]:field[3]])
    proj_cell, patch_cell = T.unit_cells(shown, np.ones((3, 32, 32), np.float32), u, net.meta, 34)
    assert proj_cell.shape == patch_cell.shape == (34, 34, 3)
    assert np.array_equal(patch_cell[12:], np.repeat(np.repeat(shown[0:11, field[2]:field[3]], 2, 0), 2, 1))


def test_render_topk_writes_blocks_sheets_index_and_page(scanned):
    net, state, paths, out = scanned
    index = T.render_topk(net, state, out, cell=20, maps_per_sheet=3)
    rows, cols, block_hw, proj_xy, patch_xy = T.block_geometry(4, 20)
    assert (rows, cols) == (2, 2) and block_hw == (42, 2 * 42 + 10)
    assert len(index["results"]) == 8 and index["sheets"] == ["topk_relu2.png", "topk_relu2_002.png", "topk_relu2_003.png"]
    for j, e in enumerate(index["results"]):
        block = np.asarray(Image.open(out / e["png"]))
        assert block.shape == (*block_hw, 3)
        want = state.topk.entries(j)
        assert [(c["image"], c["y"], c["x"], c["value"]) for c in e["cells"]] == want
        for c in e["cells"]:
            assert (out / c["input_png"]).is_file()
            y, x, h, w = c["patch_cell"]
            patch = block[y:y + h, x:x + w]
            assert patch.std() > 0                        # a real image patch, not a blank cell
            y, x, h, w = c["projection_cell"]
            if c["value"] > 0:
                assert block[y:y + h, x:x + w].std() > 0  # the projection shows something
    # map 1 never fires: its projections are flat mid-grey (a zero signal), its patches still shown
    dead = index["results"][1]
    y, x, h, w = dead["cells"][0]["projection_cell"]
    cell = np.asarray(Image.open(out / dead["png"]))[y:y + h, x:x + w].reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(cell, axis=0)}
    assert (128, 128, 128) in colours and colours <= {(128, 128, 128), grid.EMPTY}   # (0, 0): partly off the image
    for s in index["sheets"]:
        assert np.asarray(Image.open(out / s)).shape[1] > block_hw[1]
    # a later render of fewer maps leaves no figure of the earlier one behind
    state.topk = TopK(state.topk.maps[:2], state.k, state.topk.value[:2], state.topk.image[:2],
                        state.topk.y[:2], state.topk.x[:2])
    index2 = T.render_topk(net, state, out, cell=20, maps_per_sheet=3)
    assert sorted(p.name for p in out.glob("topk_*.png")) == ["topk_relu2.png"] == index2["sheets"]
    assert sorted(p.name for p in (out / "maps").iterdir()) == ["relu2_map0000.png", "relu2_map0001.png"]
    state.topk = load_state(out).topk
    on_disk = json.loads((out / "index.json").read_text())
    assert on_disk["images_scanned"] == 12 and on_disk["k"] == 4 and on_disk["layer"] == "relu2"
    html = (out / "index.html").read_text()
    assert "relu2" in html and "12" in html and "deconvnet" in html and "centre crop 32x32" in html


def test_render_is_cached_resumable_and_reprojects_only_new_units(scanned, monkeypatch, rng):
    net, state, paths, out = scanned
    calls = []
    real = T.iter_projections

    def counting(net_, x, layer, units, mode, lrn):
        calls.append(len(units))
        if len(calls) == 3 and counting.crash:
            raise RuntimeError("simulated crash while rendering")
        return real(net_, x, layer, units, mode, lrn)

    counting.crash = True
    monkeypatch.setattr(T, "iter_projections", counting)
    with pytest.raises(RuntimeError):
        T.render_topk(net, state, out, cell=20)
    assert not (out / "index.html").exists()                  # nothing pretends to be finished
    assert not list(out.rglob("*.part"))                      # and nothing is half-written
    assert len(list((out / "cells").glob("*.npz"))) == 2      # the two finished images are kept
    counting.crash, calls[:] = False, []
    first = T.render_topk(net, state, out, cell=20)
    n_images = len(T.units_by_image(state, net.arch))
    assert len(calls) == n_images - 2                         # resumed: the first two were not redone
    blocks = {e["png"]: (out / e["png"]).read_bytes() for e in first["results"]}
    calls[:] = []
    T.render_topk(net, state, out, cell=20)
    assert calls == []                                        # everything cached
    assert blocks == {e["png"]: (out / e["png"]).read_bytes() for e in first["results"]}
    # extend the scan: only units that are new in the top-k are projected
    more = write_images(out.parent / "more", 4, rng, sizes=((45, 45),))
    res = scan(net, paths + more, "relu2", "all", k=4, batch_size=5, state_path=out / STATE_FILE)
    old = {(u.image, u.map, u.y, u.x) for us in T.top_units(state, net.arch) for u in us}
    new = {(u.image, u.map, u.y, u.x) for us in T.top_units(res.state, net.arch) for u in us}
    T.render_topk(net, res.state, out, cell=20)
    assert 0 < sum(calls) == len(new - old)
    # a different cell size or projection mode is a different rendering: all recomputed
    calls[:] = []
    T.render_topk(net, res.state, out, cell=20, mode="guided")
    assert sum(calls) == len(new)


def test_render_refuses_changed_images_and_other_weights(scanned):
    net, state, paths, out = scanned
    with pytest.raises(ZFNetError, match="other weights"):
        T.render_topk(tiny_net(seed=5), state, out)
    i = state.topk.image[0, 0]
    Path(state.image_path(i)).write_bytes(Path(paths[(i + 1) % len(paths)]).read_bytes())
    with pytest.raises(ZFNetError, match="changed or disappeared"):
        T.render_topk(net, state, out)


def test_topk_json_lists_entries_strongest_first(scanned):
    net, state, paths, out = scanned
    d = T.topk_json(state)
    assert set(d["maps"]) == {str(m) for m in range(8)}
    for j in range(8):
        e = d["maps"][str(j)]
        assert [x["value"] for x in e] == sorted((x["value"] for x in e), reverse=True)
        assert [(paths.index(x["image"]), x["y"], x["x"], x["value"]) for x in e] == state.topk.entries(j)
        assert set(e[0]) == {"image", "y", "x", "value"}


@pytest.mark.filterwarnings("ignore::zfnet.deconv.DeadMapWarning")
def test_iter_projections_keeps_order_in_chunks_and_checks_values(scanned, monkeypatch):
    net, state, paths, _ = scanned
    monkeypatch.setattr(T, "UNITS_PER_CALL", 2)
    by_image = T.units_by_image(state, net.arch)
    i = max((i for i in by_image if any(u.value == 0 for u in by_image[i])), key=lambda i: len(by_image[i]))
    units = by_image[i]
    assert len(units) > 2 and any(u.value == 0 for u in units)   # chunks, and zero units in between
    x = preprocess(load_image(state.image_path(i)), net.meta)[None]
    got = list(T.iter_projections(net, x, "relu2", units))
    assert [u for u, _ in got] == units
    want = project(net, x, "relu2", [Unit(0, u.map, u.y, u.x) for u in units])
    for (u, p), q in zip(got, want):
        np.testing.assert_array_equal(p, q)
        assert (u.value == 0) == (not p.any())
    assert np.array_equal(T.project_image_units(net, x, "relu2", units), want)
    wrong = [T.TopUnit(u.map, u.rank, u.image, u.path, u.y, u.x, u.value + 1.0, u.box, u.field)
             for u in units if u.value > 0][:1]
    with pytest.raises(ZFNetError, match="changed since the scan"):
        list(T.iter_projections(net, x, "relu2", wrong))
