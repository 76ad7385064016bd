"""Model cards: they load and validate, the SqueezeNet card agrees with the shared data's README
and files, and malformed cards are refused with a clear message."""
import copy
import hashlib
import json
import re
from importlib import resources

import pytest

from zfnet import ZFNetError
from zfnet.net import ARCHITECTURES, get_architecture
from zfnet.weights import card_for_sha256, get_card, list_cards
from zfnet.weights.classes import load_class_list
from zfnet.weights.registry import card_from_dict


def test_a_card_for_every_builtin_architecture_with_public_weights():
    cards = list_cards()
    # The paper's own ZFNet was never released; every other built-in has public weights.
    assert {c.name for c in cards} == set(ARCHITECTURES) - {"zfnet"}
    for c in cards:
        assert c.architecture == c.name
        assert c.classes == "imagenet"
        assert get_architecture(c.architecture).shapes["prob"] == (1000,)
        assert c.primary[0].file == c.convert
        for s in c.sources:
            # Every source can be recognised (a checksum) or at least downloaded (directly or in an archive).
            assert s.verifiable or s.urls or (s.archive and c.file(s.archive).urls), f"{c.name}/{s.file}"


def test_card_files_ship_in_the_package():
    names = {e.name for e in resources.files("zfnet.model_cards").iterdir()}
    assert {f"{c.name}.json" for c in list_cards()} <= names
    assert "imagenet_classes.txt" in names


def _readme_table(squeezenet_dir):
    """{file: (bytes, sha256)} from the '## sha256' table of the shared data's README."""
    text = (squeezenet_dir / "README.md").read_text()
    rows = re.findall(r"^\| (\S+) \| (\d+) \| `([0-9a-f]{64})` \|$", text, flags=re.M)
    assert len(rows) >= 7
    return {f: (int(n), sha) for f, n, sha in rows}


def test_squeezenet_card_matches_the_readme(squeezenet_dir):
    table = _readme_table(squeezenet_dir)
    card = get_card("squeezenet1_0")
    assert card.convert == "compressed_SqueezeNet.net"
    for entry in (*card.sources, *card.files):
        assert (entry.size, entry.sha256) == table[entry.file], entry.file
    readme = (squeezenet_dir / "README.md").read_text()
    p = card.preprocessing
    assert "**BGR** channel order, 0-255 scale" in readme and p["channel_order"] == "BGR" and p["scale"] == 255
    assert "B=104, G=117, R=123" in readme and p["mean"] == [104, 117, 123] and p["std"] == [1, 1, 1]
    assert "N x 3 x 227 x 227" in readme and p["input_size"] == [227, 227]


def test_squeezenet_card_matches_the_shared_files(squeezenet_dir):
    card = get_card("squeezenet1_0")
    for entry in (*card.sources, *card.files):
        data = (squeezenet_dir / entry.file).read_bytes()
        assert len(data) == entry.size and hashlib.sha256(data).hexdigest() == entry.sha256, entry.file


def test_card_for_sha256():
    card, source = card_for_sha256("a22612945d9607f2e47ef30503c42b76b79266a02139c2e3b41f3c8e95eda8dc")
    assert card.name == "squeezenet1_0" and source.file == "squeezenet1_0.onnx"
    # torchvision publishes only the first 8 hex digits of its files' sha256.
    card, source = card_for_sha256("7be5be79" + "0" * 56)
    assert card.name == "alexnet" and source.converter == "torch_pth" and source.architecture == "alexnet"
    assert card_for_sha256("0" * 64) == (None, None)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ZFNetError, match="unknown model 'zfnet9'.*squeezenet1_0.*vgg16"):
        get_card("zfnet9")


def test_bundled_class_list_is_the_shared_one(squeezenet_dir, monkeypatch):
    bundled = resources.files("zfnet.model_cards") / "imagenet_classes.txt"
    assert bundled.read_bytes() == (squeezenet_dir / "imagenet_classes.txt").read_bytes()
    monkeypatch.delenv("ZFNET_WEIGHTS")
    labels = load_class_list("imagenet")
    assert len(labels) == 1000
    assert (labels[0], labels[285], labels[967], labels[999]) == ("tench", "Egyptian cat", "espresso", "toilet tissue")


# -- validation of malformed cards ------------------------------------------------------------------
@pytest.fixture
def good():
    return copy.deepcopy(get_card("squeezenet1_0").raw)


def test_the_raw_card_round_trips(good):
    assert card_from_dict(good) == get_card("squeezenet1_0")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("licence"), "missing keys \\['licence'\\]"),
    (lambda d: d.update(architecture="resnet"), "unknown architecture 'resnet'"),
    (lambda d: d.update(convert="other.bin"), "no source file 'other.bin'"),
    (lambda d: d["sources"][0].update(sha256="E4AB" * 16), "sha256 must be 64 lowercase hex"),
    (lambda d: d["sources"][0].update(sha256="e4ab"), "sha256 must be 64 lowercase hex"),
    (lambda d: d["sources"][0].update(md5="xyz"), "md5 must be 32 lowercase hex"),
    (lambda d: d["sources"][0].update(urls=["ftp://x/y"]), "http\\(s\\) URLs"),
    (lambda d: d["sources"][0].update(converter="tensorflow"), "unknown converter 'tensorflow'"),
    (lambda d: d["sources"][1].update(prototxt="train.prototxt"), "names prototxt 'train.prototxt'"),
    (lambda d: d["sources"][0].update(archive="deploy.prototxt"), "needs both 'archive' and 'member'"),
    (lambda d: d["sources"][0].update(file="a/b.net"), "plain 'file' name"),
    (lambda d: d["sources"][0].update(size=-1), "positive number of bytes"),
    (lambda d: d["preprocessing"].update(channel_order="BRG"), "channel_order must be"),
    (lambda d: d["preprocessing"].update(mean=[1, 2]), "mean must be a list of 3"),
    (lambda d: d["preprocessing"].update(std=[1, 0, 1]), "std must be positive"),
    (lambda d: d["preprocessing"].pop("resize"), "needs exactly the keys"),
    (lambda d: d["preprocessing"].update(input_size=[227]), "input_size must be"),
])
def test_malformed_cards_are_refused(good, mutate, message):
    mutate(good)
    with pytest.raises(ZFNetError, match=message):
        card_from_dict(good)


def test_cards_are_valid_json_files_with_their_own_name():
    for entry in resources.files("zfnet.model_cards").iterdir():
        if entry.name.endswith(".json"):
            d = json.loads(entry.read_text())
            assert entry.name == f"{d['name']}.json"


def test_every_file_has_a_full_sha256_or_says_why_not():
    for c in list_cards():
        for e in (*c.sources, *c.files):
            assert e.sha256 or e.checksum_note, f"{c.name}/{e.file}"
            if e.sha256 is None and (e.md5 or e.sha1 or e.sha256_prefix):
                assert "weaker" in e.checksum_note, f"{c.name}/{e.file}"



def test_checksum_note_must_be_text():
    d = json.loads((resources.files("zfnet.model_cards") / "alexnet.json").read_text())
    d["sources"][0]["checksum_note"] = 7
    with pytest.raises(ZFNetError, match=r"'checksum_note' must be text or null, got 7"):
        card_from_dict(d)
