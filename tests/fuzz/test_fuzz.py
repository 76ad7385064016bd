"""CI fuzzing: a fixed-seed run of every weight format. Each case must load or raise a ZFNetError
naming the file, within the runner's time limit, and the whole run within its memory limit."""
import pytest

from . import runner, seeds

CASES = {"safetensors": 1500, "onnx": 1000, "caffemodel": 1000, "prototxt": 1000, "pth": 1500, "net": 500}


@pytest.fixture(scope="module")
def corpus():
    return seeds.build(full=False)


def test_every_seed_loads(corpus, tmp_path):
    """The seeds themselves are valid files (the .pth ones parse and then name their keys)."""
    for fmt, items in corpus.items():
        for seed in items:
            report = runner.Report(fmt)
            outcome = runner.run_case(fmt, seed, seed.data, tmp_path, report)
            assert outcome == ("zfnet" if fmt == "pth" else "loaded"), (seed.name, report.examples)


@pytest.mark.parametrize("fmt", seeds.FORMATS)
def test_fuzz(fmt, corpus, tmp_path):
    report = runner.fuzz(fmt, tmp_path, cases=CASES[fmt], seed=2026)
    assert report.counts["cases"] == CASES[fmt]
    assert report.counts["other"] == 0, report.examples
    # The mutations must reach past the first checks: some cases still load, most are refused.
    assert report.counts["zfnet"] + report.counts["guarded"] > CASES[fmt] // 3
    if fmt != "pth":
        assert report.counts["loaded"] > 0
