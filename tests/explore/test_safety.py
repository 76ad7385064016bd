"""Bad input gets a 4xx JSON message, never a traceback; no URL reaches outside the served folders;
uploads are size-limited and decoded by zfnet's image loader; memory stays bounded."""
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

ENC = "fire9%2Fconcat"


def error(client, method, path, status, **kw):
    code, headers, body = client.request(method, path, **kw)
    assert code == status, (path, code, body[:300])
    assert headers["content-type"].startswith("application/json"), (path, headers)
    message = json.loads(body)["error"]
    assert "Traceback" not in message and message
    return message


def png_header_only(w, h):
    """A PNG whose header claims w x h pixels, with one tiny damaged data chunk: a bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def jpeg_bytes(size=(64, 64)):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_unknown_layer(client, chelsea_id):
    assert "no layer 'nope'" in error(client, "GET", "/api/layers/nope/maps", 404)
    assert "no layer 'fire9/nope'" in error(client, "GET", "/api/layers/fire9%2Fnope/maps/0/topk", 404)
    assert "no layer" in error(client, "GET", f"/api/images/{chelsea_id}/maps?layer=conv99", 404)
    assert "was not scanned" in error(client, "GET", "/api/layers/conv1/maps", 404)


def test_map_out_of_range(client, chelsea_id):
    assert "512 maps" in error(client, "GET", f"/api/images/{chelsea_id}/project?layer={ENC}&map=512", 404)
    assert "512 maps" in error(client, "GET", f"/api/images/{chelsea_id}/activation.png?layer={ENC}&map=9999", 404)
    assert "not scanned" in error(client, "GET", f"/api/layers/{ENC}/maps/100/topk", 404)
    assert "not an integer" in error(client, "GET", f"/api/images/{chelsea_id}/project?layer={ENC}&map=x", 400)
    assert "ranks 0..2" in error(client, "GET", f"/api/layers/{ENC}/maps/1/cells/3/patch.png", 404)


def test_position_outside_the_map(client, chelsea_id):
    for y, x in ((13, 0), (0, 13), (-1, 2)):
        msg = error(client, "GET", f"/api/images/{chelsea_id}/project?layer={ENC}&map=3&y={y}&x={x}", 400)
        assert "outside layer 'fire9/concat''s 13x13 map" in msg
    assert "both y and x" in error(client, "GET", f"/api/images/{chelsea_id}/project?layer={ENC}&map=3&y=2", 400)
    assert "no spatial grid" in error(client, "GET", f"/api/images/{chelsea_id}/project?layer=prob&map=3&y=0&x=0", 400)


def test_bad_mode_and_missing_parameters(client, chelsea_id):
    assert "unknown mode 'magic'" in error(client, "GET", f"/api/layers/{ENC}/maps/1/topk?mode=magic", 400)
    assert "'layer' is required" in error(client, "GET", f"/api/images/{chelsea_id}/maps", 400)
    assert "'map' is required" in error(client, "GET", f"/api/images/{chelsea_id}/project?layer={ENC}", 400)


def test_unknown_image_and_job_ids(client):
    assert "upload it again" in error(client, "GET", "/api/images/0123456789abcdef/classify", 404)
    assert "no occlusion job" in error(client, "GET", "/api/jobs/nothing", 404)
    error(client, "GET", "/api/no/such/endpoint", 404)
    error(client, "POST", "/api/model", 405)


def test_non_image_upload(client):
    msg = error(client, "POST", "/api/images", 400, **_form(client, b"#!/bin/sh\necho hello\n", "evil.png"))
    assert "evil.png: not an image file" in msg and "/tmp" not in msg


def test_truncated_image(client):
    data = jpeg_bytes((200, 200))
    msg = error(client, "POST", "/api/images", 400, **_form(client, data[:len(data) // 2], "cut.jpg"))
    assert "cut.jpg: damaged or truncated" in msg


def test_huge_image_is_refused_before_decoding(client):
    msg = error(client, "POST", "/api/images", 400, **_form(client, png_header_only(40000, 40000), "bomb.png"))
    assert "bomb.png: image is too large to decode safely" in msg


def test_too_small_and_empty_uploads(client):
    assert "too small" in error(client, "POST", "/api/images", 400, **_form(client, jpeg_bytes((8, 8)), "tiny.jpg"))
    assert "empty" in error(client, "POST", "/api/images", 400, **_form(client, b"", "none.jpg"))


def test_upload_over_the_size_limit(client):
    big = b"\xff\xd8" + b"\0" * (3 << 20)            # the test server takes 2 MiB
    assert "over the limit" in error(client, "POST", "/api/images", 413, **_form(client, big, "big.jpg"))


def test_upload_without_the_image_field_or_as_json(client):
    assert "field 'image'" in error(client, "POST", "/api/images", 400, **_form(client, jpeg_bytes(), "a.jpg", "file"))
    assert "multipart/form-data" in error(client, "POST", "/api/images", 400, body=b"{}",
                                          headers={"Content-Type": "application/json"})


def _form(client, data, name, field="image"):
    boundary = "zfnetTestBoundary7d9"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return {"body": body, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


@pytest.mark.parametrize("path", [
    "/static/../setup.cfg", "/static/../../../../etc/passwd", "/static/..%2f..%2fsetup.cfg",
    "/static/%2e%2e/%2e%2e/setup.cfg", "/static/..%5c..%5csetup.cfg", "/static//etc/passwd",
    "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/api/images/..%2F..%2Fetc%2Fpasswd/classify",
    "/api/layers/..%2F..%2Fetc/maps", "/api/layers/fire9%2Fconcat/maps/0/cells/0/..%2F..%2Findex.png",
])
def test_no_path_reaches_outside_the_served_folders(client, path):
    code, _, body = client.get(path)
    assert code in (400, 404), (path, code)
    assert b"root:" not in body and b"[metadata]" not in body and b"install_requires" not in body


def test_static_files_are_served(client):
    for path, kind in (("/", "text/html"), ("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        code, headers, _ = client.get(path)
        assert code == 200 and kind in headers["content-type"]
        assert "default-src 'self'" in headers["content-security-policy"]


def test_uploads_are_evicted_beyond_the_limit(net, photos):
    from zfnet.errors import ZFNetError
    from zfnet.explore.images import ImageStore
    store = ImageStore(net.meta, max_items=2)
    data = (photos / "skimage_coffee.png").read_bytes()
    ids = [store.upload(data, f"c{i}.png") for i in range(3)]
    assert store.get(ids[1]).name == "c1.png" and store.get(ids[2]).name == "c2.png"
    with pytest.raises(ZFNetError, match="upload it again"):
        store.get(ids[0])


def test_cached_pictures_stay_within_their_budget(net, scan_dir, photos):
    from zfnet.explore import Explorer
    ex = Explorer(net, scans=[scan_dir], cache_bytes=60_000, max_forwards=1)
    image_id = ex.images.upload((photos / "skimage_coffee.png").read_bytes(), "coffee.png")
    strongest = [m["map"] for m in ex.image_maps(image_id, "fire9/concat", k=6)["maps"]]
    sizes = [len(ex.project(image_id, "fire9/concat", m, None, None)[0]) for m in strongest]
    assert sum(sizes) > 60_000 >= ex._pictures.nbytes > 0
    assert len(ex._forwards) == 1


def test_lru_evicts_oldest_first_by_count_and_bytes():
    from zfnet.explore.lru import LRU
    c = LRU(3, max_bytes=100)
    for k in "abc":
        c.put(k, k.upper(), 30)
    assert c.get("a") == "A"                  # a is now the most recent
    c.put("d", "D", 30)                       # 4 items: b (oldest) goes
    assert "b" not in c and all(k in c for k in "acd") and c.nbytes == 90
    c.put("e", "E", 80)                       # over 100 bytes: a, c, d go; e alone stays
    assert list(c.values()) == ["E"] and c.nbytes == 80


def test_a_scan_index_naming_files_outside_its_folder_is_refused(net, scan_dir, tmp_path):
    import shutil
    from zfnet.errors import ZFNetError
    from zfnet.explore import Explorer
    bad = tmp_path / "scan"
    shutil.copytree(scan_dir, bad)
    index = json.loads((bad / "index.json").read_text())
    index["results"][0]["png"] = "../../../../../../etc/passwd"
    for e in index["results"]:
        for c in e["cells"]:
            c["input_png"] = "/etc/hostname"
    (bad / "index.json").write_text(json.dumps(index))
    ex = Explorer(net, scans=[bad])
    with pytest.raises(ZFNetError, match="not a file inside the folder"):
        ex.thumb_png("fire9/concat", 0)
    with pytest.raises(ZFNetError, match="not a file inside the folder"):
        ex.topk("fire9/concat", 1, "guided")
    (bad / "index.json").write_text("{not json")
    with pytest.raises(ZFNetError, match="not a zfnet topk index"):
        Explorer(net, scans=[bad])
