"""The command line's rough edges, each reproduced from issue 16: option bounds that agree across
commands, `weights info` on a foreign file, class and layer suggestions, no API names."""
import pytest

from zfnet.cli import main
from zfnet.cli._common import LIMITS


@pytest.fixture
def no_work(monkeypatch):
    """Loading a model fails the test: option bounds are checked first."""
    import zfnet.weights

    def refuse(*a, **k):
        raise AssertionError("work started before the options were checked")
    monkeypatch.setattr(zfnet.weights, "load_model", refuse)


IMG = "skimage_chelsea.png"
# (command line without the option, option) for every command that takes one of the bounded options
USES = [
    (["topk", "--images", "{img}", "--layer", "conv1"], "--k"),
    (["filters", "--images", "{img}", "--filter", "0"], "--k"),
    (["topk", "--images", "{img}", "--layer", "conv1"], "--batch"),
    (["filters", "--images", "{img}", "--filter", "0"], "--batch"),
    (["invariance", "{img}"], "--batch"),
    (["occlusion", "{img}"], "--batch"),
    (["classify", "{img}"], "--batch"),
    (["classify", "{img}"], "--batch-size"),
    (["topk", "--images", "{img}", "--layer", "conv1"], "--cell"),
    (["filters"], "--cell"),
    (["topk", "--images", "{img}", "--layer", "conv1"], "--percentile"),
    (["project", "{img}", "--layer", "conv1", "--map", "0"], "--percentile"),
    (["evolution", "a.safetensors", "--images", "{img}", "--layer", "conv1"], "--count"),
    (["evolution", "a.safetensors", "--images", "{img}", "--layer", "conv1"], "--max-images"),
    (["correspondence", "{img}", "{img}", "--boxes", "b.json"], "--random"),
]


@pytest.mark.parametrize("argv, option", USES, ids=[f"{a[0]} {o}" for a, o in USES])
def test_option_bounds_agree_across_commands(argv, option, images_dir, tmp_path, capsys, no_work):
    lo, hi = LIMITS[option]
    name = "--batch-size" if option == "--batch" and argv[0] == "classify" else option
    argv = [a.replace("{img}", str(images_dir / IMG)) for a in argv] + ["--out", str(tmp_path / "o")]
    for bad in ([lo - 1] + ([hi + 1] if hi is not None else [])):
        bad = int(bad) if isinstance(lo, int) else float(bad)
        assert main(argv + [option, str(bad)]) == 2
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        assert capsys.readouterr().err == f"zfnet: error: {name} must be {bounds}, got {bad}\n"


def test_weights_info_on_a_file_that_is_not_safetensors(images_dir, capsys):
    assert main(["weights", "info", str(images_dir / IMG)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reads model names and zfnet's .safetensors files" in err
    assert f"zfnet weights convert {images_dir / IMG}" in err


def test_weights_info_on_a_typo_suggests_the_name(capsys):
    assert main(["weights", "info", "squeezenet1_O"]) == 2
    assert "did you mean squeezenet1_0?" in capsys.readouterr().err


def test_class_suggestions_match_words_within_labels(squeezenet_dir):
    from zfnet import ZFNetError
    from zfnet.viz.classes import resolve_class
    labels = [line.split("\t")[-1] for line in (squeezenet_dir / "imagenet_classes.txt").read_text().splitlines()]
    with pytest.raises(ZFNetError) as e:
        resolve_class(None, "cat", labels)
    hint = str(e.value).split("did you mean: ")[1].split("; ")
    assert hint[:5] == ["tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese", "Egyptian cat"]
    assert "crate" not in hint[:5] and "oxcart" not in hint[:5]
    assert resolve_class(None, "egyptian cat", labels) == 285


def test_layer_typo_says_did_you_mean_not_the_whole_list(tmp_path, capsys, rng):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parents[1] / "viz"))
    from topk_support import tiny_net, write_images
    from zfnet.weights import save_net
    save_net(tiny_net(), tmp_path / "t.safetensors")
    photos = write_images(tmp_path / "p", 1, rng)
    assert main(["topk", "--model", str(tmp_path / "t.safetensors"), "--images", photos[0], "--layer", "relu22",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no layer 'relu22'; did you mean 'relu2'" in err and "its layers are" not in err
