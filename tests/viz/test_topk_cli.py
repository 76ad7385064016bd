"""``zfnet topk`` and ``zfnet filters`` as a user runs them: help, outputs, errors, atomicity."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from topk_support import assert_topk_close, brute_force_topk, make_bad_images, tiny_net, write_images
from zfnet.cli import main
from zfnet.viz.scan_state import STATE_FILE
from zfnet.weights import save_net


@pytest.fixture
def tiny_model(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_net(tiny_net(), path)
    return str(path)


@pytest.fixture
def photos(tmp_path, rng):
    return write_images(tmp_path / "photos", 10, rng)


@pytest.mark.parametrize("command", ["topk", "filters"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "example:" in text and f"zfnet {command} " in text and "--out" in text


def test_topk_end_to_end_with_json(tiny_model, photos, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["topk", "--model", tiny_model, "--images", str(Path(photos[0]).parent), "--layer", "relu2",
                 "--maps", "0,2,5", "--k", "4", "--batch", "3", "--cell", "24", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)
    want = brute_force_topk(tiny_net(), photos, "relu2", [0, 2, 5], 4)
    assert set(printed["maps"]) == {"0", "2", "5"}
    assert_topk_close({int(m): [(e["image"], e["y"], e["x"], e["value"]) for e in entries]
                       for m, entries in printed["maps"].items()}, want)
    assert "images/s" in captured.err and "scanned 10 new image(s)" in captured.err
    for name in ("index.html", "index.json", "topk_relu2.png", STATE_FILE, "maps/relu2_map0002.png"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.part"))
    # the same command again resumes: nothing new to scan, same answer
    assert main(["topk", "--model", tiny_model, "--images", str(Path(photos[0]).parent), "--layer", "relu2",
                 "--maps", "0,2,5", "--k", "4", "--out", str(out), "--json", "--scan-only"]) == 0
    again = capsys.readouterr()
    assert json.loads(again.out)["maps"] == printed["maps"] and "scanned 0 new image(s)" in again.err


def test_topk_reports_and_skips_bad_images(tiny_model, photos, tmp_path, capsys):
    folder = Path(photos[0]).parent
    bad = make_bad_images(folder, photos[0])
    out = tmp_path / "out"
    code = main(["topk", "--model", tiny_model, "--images", str(folder), "--layer", "relu2", "--maps", "2",
                 "--k", "3", "--cell", "16", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"{len(bad)} skipped" in err
    for name in bad:
        assert f"skipped {folder / name}:" in err
    index = json.loads((out / "index.json").read_text())
    assert index["images_scanned"] == len(photos) and index["images_skipped"] == len(bad)
    assert "Skipped images" in (out / "index.html").read_text()


@pytest.mark.parametrize("args,message", [
    (["--images", "{missing}"], "no such folder or file"),
    (["--layer", "conv9"], "no layer 'conv9'"),
    (["--maps", "0,99"], "do not exist"),
    (["--maps", "abc"], "expected 'all'"),
    (["--k", "0"], "--k must be between 1 and 1000"),
    (["--batch", "0"], "--batch must be between 1 and 1024"),
    (["--cell", "2"], "--cell must be"),
    (["--model", "{missing}"], "no such weights file"),
    (["--model", "no_such_model"], "no_such_model"),
])
def test_topk_bad_input_is_a_clear_error(args, message, tiny_model, photos, tmp_path, capsys):
    base = {"--images": str(Path(photos[0]).parent), "--layer": "relu2", "--model": tiny_model,
            "--out": str(tmp_path / "out")}
    for a, v in zip(args[::2], args[1::2]):
        base[a] = v.replace("{missing}", str(tmp_path / "missing"))
    argv = ["topk"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("zfnet: error: ") and message in err, err
    assert not (tmp_path / "out" / "index.html").exists()


def test_topk_layer_without_maps_is_an_error(tmp_path, photos, capsys):
    # a real architecture: the class probabilities have no feature maps
    from zfnet.net import Net, get_architecture
    net = Net.random(get_architecture("squeezenet1_0"), seed=0, meta=dict(tiny_net().meta, input_size=[227, 227],
                                                                          resize=256))
    path = tmp_path / "sq.safetensors"
    save_net(net, path)
    assert main(["topk", "--model", str(path), "--images", photos[0], "--layer", "prob", "--out", str(tmp_path / "o")]) == 2
    assert "not feature maps" in capsys.readouterr().err


def test_topk_resume_with_other_settings_says_how_to_fix(tiny_model, photos, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["topk", "--model", tiny_model, "--images", str(Path(photos[0]).parent), "--out", str(out), "--scan-only"]
    assert main(common + ["--layer", "relu2", "--maps", "3"]) == 0
    assert main(common + ["--layer", "relu2", "--maps", "4"]) == 2
    assert "--restart" in capsys.readouterr().err
    assert main(common + ["--layer", "relu2", "--maps", "4", "--restart"]) == 0


def test_filters_command(tiny_model, photos, tmp_path, capsys):
    out = tmp_path / "f"
    code = main(["filters", "--model", tiny_model, "--images", str(Path(photos[0]).parent), "--filter", "2",
                 "--k", "4", "--cell", "20", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["layer"] == "conv1" and len(report["filters"]) == 6
    g = np.asarray(Image.open(out / "filters_conv1.png"))
    assert g.shape == (2 * 20 + 1, 3 * 20 + 2, 3)                 # 6 filters: 2 rows of 3, 1-px gaps
    want = brute_force_topk(tiny_net(), photos, "conv1", [2], 4)[2]
    assert_topk_close({2: [(t["image"], t["y"], t["x"], t["value"]) for t in report["top"]]}, {2: want})
    block = np.asarray(Image.open(out / "filter2_top4.png"))
    assert block.shape == (2 * 20 + 2, (2 * 20 + 2) * 2 + 10, 3)   # filter | 2x2 patches
    for name in ("index.html", "filters.json"):
        assert (out / name).is_file()
    assert main(["filters", "--model", tiny_model, "--filter", "2", "--out", str(out)]) == 2
    assert "--images and --filter go together" in capsys.readouterr().err
    assert main(["filters", "--model", tiny_model, "--images", photos[0], "--filter", "6", "--out", str(out)]) == 2
    assert "has 6 filters" in capsys.readouterr().err
    assert main(["filters", "--model", tiny_model, "--layer", "conv2", "--out", str(out)]) == 2
    assert "cannot be drawn as pictures" in capsys.readouterr().err
