"""The JSON API on the shared SqueezeNet and a small scan: every endpoint, checked against the
library's own answers (forward, project, render, classify), and the scan's files."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import K, LAYER, MAPS

ENC = "fire9%2Fconcat"


def png(body):
    return np.asarray(Image.open(io.BytesIO(body)))


def test_model_lists_layers_shapes_and_fields(client, net):
    m = client.json("GET", "/api/model")
    assert m["model"] == "squeezenet1_0" and m["input_shape"] == [3, 227, 227] and m["classifier"] is True
    assert [l["name"] for l in m["layers"]] == net.arch.names
    rows = {l["name"]: l for l in m["layers"]}
    assert rows["conv1"]["shape"] == [96, 111, 111] and rows["conv1"]["receptive_field"]["size"] == [7, 7]
    assert rows[LAYER]["receptive_field"]["size"] == [155, 155] and rows["prob"]["receptive_field"] is None
    assert m["scans"] == [{"layer": LAYER, "maps": MAPS, "k": K, "mode": "deconvnet", "images_scanned": 3}]
    code, headers, body = client.get(m["filters"])
    assert code == 200 and headers["content-type"] == "image/png"
    assert png(body).shape[2] == 3 and png(body).shape[0] > 50     # 96 filters tiled


def test_layer_maps_and_thumbnails_come_from_the_scan(client, scan_dir):
    d = client.json("GET", f"/api/layers/{ENC}/maps")
    index = json.loads((scan_dir / "index.json").read_text())
    assert [m["map"] for m in d["maps"]] == list(range(MAPS)) and d["k"] == K and d["mode"] == "deconvnet"
    for m, e in zip(d["maps"], index["results"]):
        assert m["value"] == pytest.approx(e["cells"][0]["value"])
        code, _, body = client.get(m["thumb"])
        y, x, h, w = e["cells"][0]["projection_cell"]
        block = np.asarray(Image.open(scan_dir / e["png"]).convert("RGB"))
        assert code == 200 and np.array_equal(png(body), block[y:y + h, x:x + w])


def test_topk_in_the_scan_mode_is_the_scan_and_other_modes_are_projected(client, explorer, net):
    from zfnet.deconv import project, Unit
    from zfnet.net import forward
    base = client.json("GET", f"/api/layers/{ENC}/maps/2/topk")
    guided = client.json("GET", f"/api/layers/{ENC}/maps/2/topk?mode=guided")
    assert base["mode"] == "deconvnet" and guided["mode"] == "guided" and len(guided["cells"]) == K
    for a, b in zip(base["cells"], guided["cells"]):
        assert (a["name"], a["y"], a["x"], a["value"]) == (b["name"], b["y"], b["x"], b["value"])
        pa, pb = (png(client.get(c["projection"])[2]) for c in (a, b))
        assert pa.shape == pb.shape == (80, 80, 3) and not np.array_equal(pa, pb)
        assert np.array_equal(png(client.get(a["patch"])[2]), png(client.get(b["patch"])[2]))
    # the guided cell is the library's guided projection of that unit, cut to its box
    c = guided["cells"][0]
    x, _ = explorer.scans[LAYER].input(c["image"], net.meta)
    p = project(net, x[None], LAYER, [Unit(0, 2, c["y"], c["x"])], mode="guided",
                forward_result=forward(net, x[None], keep="all", upto=LAYER))[0]
    y0, y1, x0, x1 = c["box"]
    assert np.abs(p).sum() > 0 and np.abs(p[:, y0:y1, x0:x1]).sum() == pytest.approx(np.abs(p).sum(), rel=1e-6)


def test_upload_classify_matches_the_classifier(client, chelsea_id, photos, net):
    from zfnet.classify import classify
    from zfnet.image import load_batch
    d = client.json("GET", f"/api/images/{chelsea_id}/classify")
    want = classify(net, load_batch([photos / "skimage_chelsea.png"], net.meta))[0]
    assert d["name"] == "skimage_chelsea.png"
    assert [c["index"] for c in d["top"]] == [p.index for p in want] and d["top"][0]["label"] == "Egyptian cat"
    assert d["top"][0]["prob"] == pytest.approx(want[0].prob, rel=1e-5)


def test_strongest_maps_and_activation_heat_map(client, chelsea_id, explorer, net):
    from zfnet.net import forward
    d = client.json("GET", f"/api/images/{chelsea_id}/maps?layer={ENC}&k=5")
    img = explorer.images.get(chelsea_id)
    a = forward(net, img.x[None], keep=[LAYER], upto=LAYER)[LAYER][0]                 # (512, 13, 13)
    peaks = a.reshape(512, -1).max(axis=1)
    assert d["shape"] == [512, 13, 13] and [m["map"] for m in d["maps"]] == list(np.argsort(-peaks, kind="stable")[:5])
    for m in d["maps"]:
        assert a[m["map"], m["y"], m["x"]] == pytest.approx(m["max"])
    code, _, body = client.get(f"/api/images/{chelsea_id}/activation.png?layer={ENC}&map={d['maps'][0]['map']}")
    heat = png(body)
    assert code == 200 and heat.shape == (13, 13, 4)
    assert heat[..., 3].argmax() == a[d["maps"][0]["map"]].argmax()                  # most opaque at the peak


@pytest.mark.parametrize("mode", ["deconvnet", "gradient"])
def test_live_projection_is_the_library_projection(client, chelsea_id, explorer, net, mode):
    from zfnet.deconv import project_unit, render
    path = f"/api/images/{chelsea_id}/project?layer={ENC}&map=489&y=5&x=3&mode={mode}"
    code, headers, body = client.get(path)
    assert code == 200 and headers["content-type"] == "image/png"
    info = json.loads(headers["x-zfnet-unit"])
    img = explorer.images.get(chelsea_id)
    r = project_unit(net, img.x[None], LAYER, 489, at=(5, 3), mode=mode)
    assert info == {"layer": LAYER, "map": 489, "y": 5, "x": 3, "mode": mode,
                    "activation": pytest.approx(r.activation), "box": list(r.box)}
    assert np.array_equal(png(body), render(r.projection, net.meta, percentile=99.5))


def test_projection_without_a_position_takes_the_strongest_unit(client, chelsea_id):
    maps = client.json("GET", f"/api/images/{chelsea_id}/maps?layer={ENC}&k=1")["maps"][0]
    _, headers, _ = client.get(f"/api/images/{chelsea_id}/project?layer={ENC}&map={maps['map']}")
    info = json.loads(headers["x-zfnet-unit"])
    assert (info["y"], info["x"], info["mode"]) == (maps["y"], maps["x"], "deconvnet")


def test_input_png_is_what_the_network_saw(client, chelsea_id, explorer):
    code, _, body = client.get(f"/api/images/{chelsea_id}/input.png")
    assert code == 200 and np.array_equal(png(body), explorer.images.get(chelsea_id).display)


def test_library_lists_and_opens_the_images_folder(client):
    lib = client.json("GET", "/api/library")["images"]
    assert [i["name"] for i in lib] == ["darknet_dog.jpg", "skimage_chelsea.png", "skimage_coffee.png"]
    image_id = client.json("POST", "/api/library/0")["id"]
    assert client.json("GET", f"/api/images/{image_id}/classify")["name"] == "darknet_dog.jpg"
    assert "no library image 7" in client.json("POST", "/api/library/7", status=404)["error"]


def test_occlusion_job_reports_progress_and_a_map(client, chelsea_id):
    job = client.json("POST", f"/api/images/{chelsea_id}/occlusion?size=113&stride=57")["job"]
    for _ in range(600):
        s = client.json("GET", f"/api/jobs/{job}")
        if s["state"] != "running":
            break
        import time
        time.sleep(0.2)
    assert s["state"] == "finished" and s["done"] == s["total"] == 9 and s["grid"] == [3, 3]
    assert s["target"]["label"] == "Egyptian cat" and 0 <= s["min_prob"] <= s["target"]["prob"]
    code, _, body = client.get(f"/api/jobs/{job}/occlusion.png")
    assert code == 200 and png(body).shape == (3, 3, 4)


def test_a_slow_occlusion_job_does_not_block_a_projection(client, chelsea_id):
    job = client.json("POST", f"/api/images/{chelsea_id}/occlusion?size=16&stride=4")["job"]   # 2,500 squares
    try:
        code, _, _ = client.get(f"/api/images/{chelsea_id}/project?layer={ENC}&map=7&y=2&x=9&mode=guided")
        s = client.json("GET", f"/api/jobs/{job}")
        assert code == 200 and s["state"] == "running" and s["done"] < s["total"]
    finally:
        assert client.json("DELETE", f"/api/jobs/{job}")["id"] == job
    for _ in range(600):
        if client.json("GET", f"/api/jobs/{job}")["state"] == "cancelled":
            break
        import time
        time.sleep(0.1)
    assert client.json("GET", f"/api/jobs/{job}")["state"] == "cancelled"


def test_warm_up_draws_the_first_page_into_the_cache(net, scan_dir):
    from zfnet.explore import Explorer
    ex = Explorer(net, scans=[scan_dir])
    ex.warm_up()
    assert ex._pictures.get(("filters",)) is not None
    assert all(ex._pictures.get(("cell", "fire9/concat", m, 0, "deconvnet")) is not None for m in range(6))


def test_concurrent_requests_give_the_same_pictures_as_one_at_a_time(client, net, photos):
    import warnings
    from concurrent.futures import ThreadPoolExecutor
    from zfnet.deconv import Unit, project, render
    from zfnet.image import load_batch
    code, _, body = client.upload((photos / "skimage_coffee.png").read_bytes(), "coffee.png")
    image_id = json.loads(body)["id"]
    strongest = client.json("GET", f"/api/images/{image_id}/maps?layer={ENC}&k=8")["maps"]
    units = [(d["map"], d["y"], d["x"], mode) for d, mode in zip(strongest, ("deconvnet", "guided", "gradient") * 3)]

    def get(u):
        m, y, x, mode = u
        return client.get(f"/api/images/{image_id}/project?layer={ENC}&map={m}&y={y}&x={x}&mode={mode}")

    with ThreadPoolExecutor(8) as pool:                      # all at once, on the server's thread pool
        answers = list(pool.map(get, units))
    xs = load_batch([photos / "skimage_coffee.png"], net.meta)
    assert all(np.ptp(png(body)) > 0 for _, _, body in answers)              # none blank
    for (m, y, x, mode), (code, headers, body) in zip(units, answers):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                  # a map that never fires: zeros, as served
            p = project(net, xs, LAYER, [Unit(0, m, y, x)], mode=mode)[0]
        assert code == 200 and json.loads(headers["x-zfnet-unit"])["mode"] == mode
        # equal up to float32 rounding (a walk on a pool thread may sum in another order): at most
        # one grey level apart, in a few pixels
        diff = np.abs(png(body).astype(np.int16) - render(p, net.meta, percentile=99.5))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (m, y, x, mode, diff.max())
