"""Fixtures of the explorer tests: a small scan of shared photographs made once per session, an
Explorer over the shared SqueezeNet, and the app served on 127.0.0.1 on a free port (a thread)."""
import http.client
import json
import shutil
from urllib.parse import urlsplit

import pytest

PHOTOS = ("skimage_chelsea.png", "skimage_coffee.png", "darknet_dog.jpg")
LAYER = "fire9/concat"
MAPS = 6
K = 3


@pytest.fixture(scope="session")
def photos(images_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("explore_photos")
    for name in PHOTOS:
        shutil.copy(images_dir / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def scan_dir(photos, tmp_path_factory):
    """`zfnet topk` on three photographs, six maps of fire9/concat, k = 3 (the real command)."""
    from zfnet.cli import main
    out = tmp_path_factory.mktemp("explore_scan")
    assert main(["topk", "--images", str(photos), "--layer", LAYER, "--maps", str(MAPS), "--k", str(K),
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def net():
    from zfnet.weights import load_model
    return load_model()


@pytest.fixture(scope="session")
def explorer(net, scan_dir, photos):
    from zfnet.explore import Explorer
    return Explorer(net, scans=[scan_dir], images_dir=photos, max_upload_bytes=2 << 20)


@pytest.fixture(scope="session")
def server(explorer):
    from zfnet.explore.app import create_app, running
    with running(create_app(explorer)) as url:
        yield url


class Client:
    """Raw HTTP to the test server: paths are sent exactly as given (no normalisation of '..')."""

    def __init__(self, url):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)

    def json(self, method, path, status=200, **kw):
        code, headers, body = self.request(method, path, **kw)
        assert headers["content-type"].startswith("application/json"), (path, code, body[:200])
        assert code == status, (path, code, body[:300])
        return json.loads(body)

    def upload(self, data, filename="photo.png", field="image"):
        boundary = "zfnetTestBoundary7d9"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", "/api/images", body=body,
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


@pytest.fixture(scope="session")
def client(server):
    return Client(server)


@pytest.fixture(scope="session")
def chelsea_id(client, photos):
    code, _, body = client.upload((photos / "skimage_chelsea.png").read_bytes(), "skimage_chelsea.png")
    assert code == 200, body
    return json.loads(body)["id"]
