"""Shared test fixtures.

The project's data (real SqueezeNet weights, photographs) lives outside the repository, in
``../shared/data`` beside the checkout. One setting moves it: the environment variable
``ZFNET_TEST_DATA``. Missing data is a failure, never a skip: CI must not go green by testing
nothing.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `benchmarks.cases` is shared by the benchmarks and the tests
DATA = Path(os.environ.get("ZFNET_TEST_DATA", REPO.parent / "shared" / "data")).resolve()


def _require(path):
    if not path.exists():
        pytest.fail(
            f"test data not found: {path}. Put the project's shared data at {DATA} "
            f"or point ZFNET_TEST_DATA at it.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def data_dir():
    return _require(DATA)


@pytest.fixture(scope="session")
def weights_dir(data_dir):
    return _require(data_dir / "weights")


@pytest.fixture(scope="session")
def squeezenet_dir(weights_dir):
    return _require(weights_dir / "squeezenet1_0")


@pytest.fixture(scope="session")
def images_dir(data_dir):
    return _require(data_dir / "images")


@pytest.fixture(scope="session")
def reference_outputs(squeezenet_dir):
    return dict(np.load(_require(squeezenet_dir / "reference_outputs.npz")))


@pytest.fixture(autouse=True, scope="session")
def _local_weights(weights_dir, tmp_path_factory):
    """The library finds weights through ZFNET_WEIGHTS (no network here), as offline users do,
    and caches conversions in a fresh folder, never in the user's ~/.cache/zfnet."""
    saved = {k: os.environ.get(k) for k in ("ZFNET_WEIGHTS", "ZFNET_CACHE")}
    os.environ["ZFNET_WEIGHTS"] = str(weights_dir)
    os.environ["ZFNET_CACHE"] = str(tmp_path_factory.mktemp("zfnet_cache"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def unknown_onnx(squeezenet_dir, tmp_path):
    """A real ONNX file no model card lists: SqueezeNet with one weight changed."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(squeezenet_dir / "squeezenet1_0.onnx"))
    init = model.graph.initializer[0]
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    path = tmp_path / "tuned.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
