"""Verified, atomic downloads against a local HTTP server: mirrors, checksum mismatches,
interrupted transfers, unknown checksums; nothing half-written is ever left behind."""
import hashlib
import os

import pytest

from zfnet import ZFNetError
from zfnet.weights import download as dl
from zfnet.weights.registry import FileEntry

DATA = bytes(range(256)) * 4099 + b"tail"     # ~1 MB, more than one read chunk
SHA256 = hashlib.sha256(DATA).hexdigest()


def entry(server, *paths, **checks):
    return FileEntry(file="model.bin", urls=tuple(server.url(p) for p in paths), **checks)


def listing(folder):
    return sorted(os.listdir(folder))


def test_download_verifies_and_moves_into_place(server, tmp_path):
    server.routes["/m.bin"] = (DATA, "ok")
    dest = tmp_path / "sub" / "model.bin"
    assert dl.download(entry(server, "/m.bin", sha256=SHA256, size=len(DATA)), dest, progress=False) == SHA256
    assert dest.read_bytes() == DATA
    assert listing(dest.parent) == ["model.bin"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.routes["/m.bin"] = (DATA[:-1] + b"X", "ok")
    dest = tmp_path / "model.bin"
    with pytest.raises(ZFNetError, match=r"checksum mismatch.*/m.bin has sha256 [0-9a-f]{64}.*expects "
                                         + SHA256 + ".*nothing was saved"):
        dl.download(entry(server, "/m.bin", sha256=SHA256), dest, progress=False)
    assert listing(tmp_path) == []


def test_interrupted_download_leaves_nothing(server, tmp_path):
    server.routes["/m.bin"] = (DATA, "truncate")
    with pytest.raises(ZFNetError, match=f"interrupted: got {len(DATA) // 2} of {len(DATA)} bytes"):
        # Even without any checksum the short read is caught by the byte count.
        dl.download(entry(server, "/m.bin"), tmp_path / "model.bin", progress=False)
    assert listing(tmp_path) == []


def test_failed_download_keeps_an_existing_file(server, tmp_path):
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"old")
    server.routes["/m.bin"] = (DATA, "truncate")
    with pytest.raises(ZFNetError):
        dl.download(entry(server, "/m.bin", sha256=SHA256), dest, progress=False)
    assert dest.read_bytes() == b"old" and listing(tmp_path) == ["model.bin"]


def test_next_mirror_after_a_failure(server, tmp_path):
    server.routes["/bad.bin"] = (b"something else", "ok")
    server.routes["/good.bin"] = (DATA, "ok")
    dest = tmp_path / "model.bin"
    e = entry(server, "/missing.bin", "/bad.bin", "/good.bin", sha256=SHA256)
    assert dl.download(e, dest, progress=False) == SHA256
    assert server.requests == ["/missing.bin", "/bad.bin", "/good.bin"]
    assert dest.read_bytes() == DATA and listing(tmp_path) == ["model.bin"]


def test_every_failure_is_reported(server, tmp_path):
    server.routes["/bad.bin"] = (b"x", "ok")
    with pytest.raises(ZFNetError) as info:
        dl.download(entry(server, "/missing.bin", "/bad.bin", sha256=SHA256), tmp_path / "m.bin", progress=False)
    msg = str(info.value)
    assert "/missing.bin: Not Found" in msg and "/bad.bin: checksum mismatch" in msg
    assert "put it in $ZFNET_WEIGHTS/<model>/model.bin" in msg
    assert listing(tmp_path) == []


def test_unknown_checksum_warns_but_downloads(server, tmp_path):
    server.routes["/m.bin"] = (DATA, "ok")
    with pytest.warns(UserWarning, match=f"could not be verified.*{SHA256}"):
        sha = dl.download(entry(server, "/m.bin"), tmp_path / "m.bin", progress=False)
    assert sha == SHA256


@pytest.mark.parametrize("kind", ["md5", "sha1"])
def test_publisher_md5_or_sha1(server, tmp_path, kind):
    server.routes["/m.bin"] = (DATA, "ok")
    good = hashlib.new(kind, DATA).hexdigest()
    assert dl.download(entry(server, "/m.bin", **{kind: good}), tmp_path / "a.bin", progress=False) == SHA256
    with pytest.raises(ZFNetError, match=f"has {kind} {good}.*expects {'0' * len(good)}"):
        dl.download(entry(server, "/m.bin", **{kind: "0" * len(good)}), tmp_path / "b.bin", progress=False)
    assert listing(tmp_path) == ["a.bin"]


def test_torchvision_style_sha256_prefix(server, tmp_path):
    server.routes["/m.bin"] = (DATA, "ok")
    dl.download(entry(server, "/m.bin", sha256_prefix=SHA256[:8]), tmp_path / "a.bin", progress=False)
    with pytest.raises(ZFNetError, match="does not start with 00000000"):
        dl.download(entry(server, "/m.bin", sha256_prefix="00000000"), tmp_path / "b.bin", progress=False)


def test_size_from_the_card_when_the_server_sends_no_length(server, tmp_path):
    server.routes["/m.bin"] = (DATA[:1000], "no-length")
    with pytest.raises(ZFNetError, match="has 1000 bytes; the model card says"):
        dl.download(entry(server, "/m.bin", size=len(DATA)), tmp_path / "m.bin", progress=False)
    assert listing(tmp_path) == []


def test_ctrl_c_leaves_nothing(server, tmp_path, monkeypatch):
    def interrupted(url, part, entry, progress):
        part.write_bytes(DATA[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "_fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dl.download(entry(server, "/m.bin", sha256=SHA256), tmp_path / "m.bin", progress=False)
    assert listing(tmp_path) == []


def test_no_url(tmp_path):
    with pytest.raises(ZFNetError, match="has no download URL; put the file in"):
        dl.download(FileEntry(file="x.caffemodel"), tmp_path / "x", progress=False)


def test_progress_bar_goes_to_stderr(server, tmp_path, capsys):
    server.routes["/m.bin"] = (DATA, "ok")
    dl.download(entry(server, "/m.bin", sha256=SHA256), tmp_path / "m.bin", progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "model.bin" in err


def test_verify_local_file_names_it_and_the_fix(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(DATA)
    assert dl.verify(path, FileEntry(file="model.bin", sha256=SHA256)) == SHA256
    with pytest.raises(ZFNetError, match=f"{path} has sha256 {SHA256}.*delete it and run 'zfnet weights get'"):
        dl.verify(path, FileEntry(file="model.bin", sha256="1" * 64))


def test_weaker_publisher_checksum_is_said_on_download(server, tmp_path, capsys):
    """Where the card has no full sha256, the download prints what the publisher gives instead."""
    from zfnet.weights import get_card
    card_entry = get_card("alexnet").source("alexnet-owt-7be5be79.pth")
    server.routes["/m.bin"] = (DATA, "ok")
    e = entry(server, "/m.bin", sha256_prefix=SHA256[:8], checksum_note=card_entry.checksum_note)
    dl.download(e, tmp_path / "model.bin", progress=False)
    err = capsys.readouterr().err
    assert "zfnet: note: model.bin: torchvision publishes only the first 8 hex digits" in err
    dl.download(entry(server, "/m.bin", sha256=SHA256, checksum_note="never said"), tmp_path / "b.bin",
                progress=False)
    assert "never said" not in capsys.readouterr().err
