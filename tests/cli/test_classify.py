"""``zfnet classify`` on the real SqueezeNet: the reference probabilities with --no-crop, sensible
top-1 labels with the centre crop, and bad images reported without stopping the others."""
import json

import numpy as np
import pytest

from zfnet.cli import build_parser, main

EXPECTED_TOP1 = {
    "skimage_chelsea.png": "Egyptian cat",
    "skimage_coffee.png": "espresso",
    "skimage_camera.png": "tripod",
    "skimage_motorcycle_left.png": "moped",
    "sklearn_china.jpg": "bell cote",
    "opencv_chicky_512.png": "Leonberg",
}


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """One private cache for the module (SqueezeNet is converted once, from $ZFNET_WEIGHTS)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZFNET_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def run_json(capsys, *argv):
    code = main(["classify", *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_no_crop_gives_the_reference_probabilities(capsys, images_dir, reference_outputs):
    files = [str(f) for f in reference_outputs["image_files"]]
    code, results, err = run_json(capsys, *[images_dir / f for f in files], "--no-crop")
    assert code == 0 and err == ""
    assert [r["image"] for r in results] == [str(images_dir / f) for f in files]
    for i, (f, r) in enumerate(zip(files, results)):
        top5 = r["top5"]
        assert [p["index"] for p in top5] == list(reference_outputs["top5"][i]), f
        ref = reference_outputs["prob"][i][[p["index"] for p in top5]]
        np.testing.assert_allclose([p["prob"] for p in top5], ref, rtol=0, atol=1e-4)
        assert top5[0]["label"] == EXPECTED_TOP1[f]
        assert set(top5[0]) == {"index", "label", "prob"}
    # Spot values from the shared README's table.
    assert results[0]["top5"][0]["prob"] == pytest.approx(0.8151, abs=1e-4)
    assert results[1]["top5"][0]["prob"] == pytest.approx(0.9843, abs=1e-4)


def test_centre_crop_table(capsys, images_dir):
    code = main(["classify", str(images_dir / "skimage_chelsea.png"), str(images_dir / "skimage_coffee.png")])
    out, _ = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("skimage_chelsea.png") and "Egyptian cat  (285)" in lines[1]
    assert lines[6].endswith("skimage_coffee.png") and "espresso  (967)" in lines[7]
    assert len(lines) == 12 and all(line.strip().endswith(")") for line in lines[1:6])


def test_bad_images_are_reported_and_the_others_classified(capsys, images_dir, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    cut = tmp_path / "cut.jpg"
    data = (images_dir / "sklearn_china.jpg").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    paths = [images_dir / "skimage_chelsea.png", text, cut, tmp_path / "missing.png", images_dir / "skimage_coffee.png"]
    code, results, err = run_json(capsys, *paths, "--batch-size", "2")
    assert code == 1
    assert "notes.jpg: not an image file" in err and "cut.jpg: damaged or truncated" in err
    assert "image not found" in err and err.count("zfnet: error:") == 3
    assert [r["image"] for r in results] == [str(p) for p in paths]
    assert results[0]["top5"][0]["label"] == "Egyptian cat" and results[4]["top5"][0]["label"] == "espresso"
    assert all("error" in r and "top5" not in r for r in results[1:4])


def test_batch_size_does_not_change_the_answer(capsys, images_dir):
    paths = [images_dir / f for f in ("skimage_camera.png", "darknet_dog.jpg", "opencv_apple.jpg")]
    _, one, _ = run_json(capsys, *paths, "--batch-size", "1")
    _, all3, _ = run_json(capsys, *paths)
    for a, b in zip(one, all3):
        assert [p["index"] for p in a["top5"]] == [p["index"] for p in b["top5"]]
        np.testing.assert_allclose([p["prob"] for p in a["top5"]], [p["prob"] for p in b["top5"]], atol=1e-6)


def test_model_file_and_out_folder(capsys, images_dir, tmp_path):
    from zfnet.weights import fetch
    out = tmp_path / "res"
    code, results, _ = run_json(capsys, images_dir / "skimage_coffee.png", "--model", fetch("squeezenet1_0"),
                                "--out", out)
    assert code == 0 and results[0]["top5"][0]["label"] == "espresso"
    saved = json.loads((out / "classify.json").read_text())
    assert saved["model"] == "squeezenet1_0" and saved["crop"] is True and saved["results"] == results


def test_user_errors_exit_2(capsys, images_dir):
    assert main(["classify", str(images_dir / "skimage_coffee.png"), "--model", "resnet9000"]) == 2
    assert "unknown model 'resnet9000'" in capsys.readouterr().err
    assert main(["classify", str(images_dir / "skimage_coffee.png"), "--batch-size", "0"]) == 2
    assert "--batch-size must be between 1 and 1024" in capsys.readouterr().err


def test_help_has_an_example():
    help_text = build_parser()._subparsers._group_actions[0].choices["classify"].format_help()
    assert "zfnet classify cat.jpg" in help_text and "--no-crop" in help_text and "--json" in help_text


def test_hostile_images_in_a_batch_are_reported_and_the_rest_classified(capsys, images_dir, tmp_path):
    """A FIFO named x.jpg (hung forever), a 1000000x20 strip (MemoryError that killed the batch)
    and a JPEG zeroed mid-file (classified as garbage without a word) in one classify run."""
    import os
    import struct
    import zlib
    os.mkfifo(tmp_path / "x.jpg")

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    (tmp_path / "strip.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1_000_000, 20, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))
    data = bytearray((images_dir / "sklearn_china.jpg").read_bytes())
    data[len(data) // 2:len(data) // 2 + 2000] = bytes(2000)
    (tmp_path / "zeroed.jpg").write_bytes(bytes(data))
    good = images_dir / "skimage_coffee.png"
    code, results, err = run_json(capsys, tmp_path / "x.jpg", good, tmp_path / "strip.png", tmp_path / "zeroed.jpg",
                                  "--batch-size", "4")
    assert code == 1
    assert "x.jpg is a named pipe" in results[0]["error"] and "is a strip" in results[2]["error"]
    assert results[1]["top5"][0]["label"] == "espresso" and "top5" in results[3]
    lines = err.splitlines()
    assert any(line.startswith("zfnet: warning: ") and "zeroed.jpg: the JPEG looks damaged" in line for line in lines)
    assert sum("zfnet: error:" in line for line in lines) == 2 and "Traceback" not in err
