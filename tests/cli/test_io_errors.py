"""Every OS error a user's --out can cause is one line naming the path, exit 2, before any work:
an existing file, a folder under a file, /proc, a full disk, a read-only mount (tests run as root
here, so chmod cannot make a folder unwritable: full disks and read-only mounts are simulated by
making the file-system calls fail with ENOSPC/EROFS)."""
import errno
import os

import pytest

from zfnet.cli import main

IMG = "skimage_chelsea.png"


def _argv(command, images_dir, out):
    img = str(images_dir / IMG)
    return {
        "topk": ["topk", "--images", img, "--layer", "conv1", "--out", out],
        "filters": ["filters", "--out", out],
        "invariance": ["invariance", img, "--out", out],
        "occlusion": ["occlusion", img, "--out", out],
        "correspondence": ["correspondence", img, img, "--boxes", img, "--out", out],
        "evolution": ["evolution", img, "--images", str(images_dir), "--layer", "conv1", "--out", out],
        "project": ["project", img, "--layer", "conv1", "--map", "0", "--out", out],
        "classify": ["classify", img, "--out", out],
    }[command]


COMMANDS = ["topk", "filters", "invariance", "occlusion", "correspondence", "evolution", "project", "classify"]


@pytest.fixture
def no_work(monkeypatch):
    """Any attempt to load a model or read an image fails the test: --out must be checked first."""
    def refuse(*a, **k):
        raise AssertionError("work started before --out was checked")
    import zfnet.image
    import zfnet.viz.correspondence
    import zfnet.viz.evolution
    import zfnet.weights
    monkeypatch.setattr(zfnet.weights, "load_model", refuse)
    monkeypatch.setattr(zfnet.image, "load_image", refuse)
    monkeypatch.setattr(zfnet.viz.evolution, "load_checkpoints", refuse)
    monkeypatch.setattr(zfnet.viz.correspondence, "load_boxes", refuse)


def _one_line_exit_2(capsys, argv, *fragments):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zfnet: error: "), err
    for f in fragments:
        assert f in err, err
    return err


@pytest.mark.parametrize("command", COMMANDS)
def test_out_is_an_existing_file(command, images_dir, tmp_path, capsys, no_work):
    out = tmp_path / "taken"
    out.write_text("mine\n")
    _one_line_exit_2(capsys, _argv(command, images_dir, out), f"--out {out} exists and is not a folder")
    assert out.read_text() == "mine\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_out_under_a_regular_file(command, images_dir, tmp_path, capsys, no_work):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "sub"
    _one_line_exit_2(capsys, _argv(command, images_dir, out), str(out), "a part of the path is a file, not a folder")


@pytest.mark.parametrize("command", ["topk", "project", "classify"])
def test_out_under_proc(command, images_dir, capsys, no_work):
    out = "/proc/zfnet-no-such-place/out"
    _one_line_exit_2(capsys, _argv(command, images_dir, out), out)


@pytest.mark.parametrize("err_no, words", [(errno.ENOSPC, "the disk is full"),
                                           (errno.EROFS, "read-only file system"),
                                           (errno.EACCES, "permission denied")])
@pytest.mark.parametrize("command", COMMANDS)
def test_full_disk_read_only_and_no_permission_before_any_work(command, err_no, words, images_dir, tmp_path,
                                                                capsys, monkeypatch, no_work):
    import zfnet.atomic

    def fail(*a, **k):
        raise OSError(err_no, os.strerror(err_no), str(tmp_path / "out"))
    monkeypatch.setattr(zfnet.atomic.tempfile, "mkstemp", fail)
    _one_line_exit_2(capsys, _argv(command, images_dir, tmp_path / "out"), str(tmp_path / "out"), words)


def test_disk_full_in_the_middle_of_writing(tmp_path, capsys, monkeypatch):
    """The check passed, then the disk filled up: still one line naming the file, nothing half-written."""
    import zfnet.atomic
    real_replace = os.replace

    def full(src, dst):
        if str(dst).endswith(".png"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)
    monkeypatch.setattr(zfnet.atomic.os, "replace", full)
    out = tmp_path / "f"
    err = _one_line_exit_2(capsys, ["filters", "--out", out], "cannot write", "filters_conv1.png", "the disk is full")
    assert "Traceback" not in err
    assert not list(out.rglob("*.part")) and not list(out.glob("*.png"))


def test_any_os_error_escaping_a_command_is_one_line(monkeypatch, capsys):
    import zfnet.cli.weights

    def boom(args):
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", "/some/file/below")
    monkeypatch.setattr(zfnet.cli.weights, "run_list", boom)
    _one_line_exit_2(capsys, ["weights", "list"], "/some/file/below", "a part of the path is a file")


def test_stale_part_files_of_a_killed_run_are_removed(tmp_path, capsys):
    out = tmp_path / "f"
    (out / "maps").mkdir(parents=True)
    leftovers = [out / ".filters_conv1.png.k3j2h1.part", out / "maps" / ".x_map0001.png.a1b2c3.part"]
    for p in leftovers:
        p.write_bytes(b"half a png")
    keep = out / "notes.txt"
    keep.write_text("mine")
    assert main(["filters", "--out", str(out)]) == 0, capsys.readouterr().err
    assert not any(p.exists() for p in leftovers) and keep.read_text() == "mine"
    assert (out / "filters_conv1.png").is_file()


def test_weights_get_with_an_unwritable_cache(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("ZFNET_CACHE", str(tmp_path / "file" / "cache"))
    _one_line_exit_2(capsys, ["weights", "get", "squeezenet1_0"], "weights cache", "ZFNET_CACHE",
                     str(tmp_path / "file" / "cache"))


def test_weights_convert_checks_its_output_before_converting(tmp_path, capsys, squeezenet_dir, monkeypatch):
    import zfnet.weights
    monkeypatch.setattr(zfnet.weights, "convert_file", lambda *a, **k: pytest.fail("converted first"))
    (tmp_path / "file").write_text("x")
    src = squeezenet_dir / "compressed_SqueezeNet.net"
    _one_line_exit_2(capsys, ["weights", "convert", src, "-o", tmp_path / "file" / "w.safetensors"],
                     "-o", "a part of the path is a file")


def test_project_npz_under_a_file(images_dir, tmp_path, capsys, no_work):
    (tmp_path / "file").write_text("x")
    _one_line_exit_2(capsys, ["project", images_dir / IMG, "--layer", "conv1", "--map", "0", "--out", tmp_path / "o",
                              "--npz", tmp_path / "file" / "u.npz"], "--npz", "a part of the path is a file")


def test_an_unwritable_cache_does_not_stop_a_command_that_only_reads(images_dir, tmp_path, capsys, monkeypatch):
    """classify converts the model, cannot cache it, says so in one line, and classifies anyway
    (a failed atomic write is a ZFNetError that is still an OSError for callers that catch those)."""
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("ZFNET_CACHE", str(tmp_path / "file" / "cache"))
    assert main(["classify", str(images_dir / "skimage_coffee.png")]) == 0
    out, err = capsys.readouterr()
    assert "espresso" in out
    assert "zfnet: warning: could not cache the converted model" in err and "Traceback" not in err
