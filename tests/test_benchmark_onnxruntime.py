"""The ONNX Runtime rows of the benchmarks compute what zfnet computes: what is timed is tested."""
import pytest

from benchmarks import onnxruntime_rows


@pytest.mark.parametrize("model", sorted(onnxruntime_rows.MODELS))
def test_onnxruntime_row_agrees_with_zfnet_and_torch(model):
    zfnet, onnxruntime, torch, check = onnxruntime_rows.build(model, batch=3, threads=2)
    y = zfnet()
    assert y.shape == (3, 1000)
    check(y, onnxruntime())
    check(y, torch())


def test_busy_processes_spin_and_are_ended():
    with onnxruntime_rows.busy_processes(2, limit_s=30) as procs:
        assert [p.poll() for p in procs] == [None, None]      # still running inside the block
    assert all(p.returncode is not None for p in procs)
    rows = onnxruntime_rows.fmt_rows([{"case": "contention/x", "quiet_s": 0.1, "busy_s": 0.2, "contention": 2.0}])
    assert "target <= 2.5" in rows
