"""benchmarks/forward_profile.py: every layer timed on each side, ONNX Runtime's nodes under zfnet's layer names."""
from benchmarks import forward_profile


def test_profile_times_every_layer_on_each_side_and_names_onnxruntimes_nodes():
    rows, ours_pass, torch_pass = forward_profile.profile("squeezenet1_0", batch=1, threads=2, runs=1)
    by_name = {name: (op, z, t, o) for name, op, z, t, o in rows}
    convs = [name for name, (op, *_) in by_name.items() if op == "conv"]
    assert len(convs) == 26                                     # conv1, 8 fires x 3, conv10
    for name in convs:
        op, z, t, o = by_name[name]
        assert z > 0 and t > 0, name                            # both sides ran it
        assert o is not None and o > 0, name                    # ORT's fused conv node, renamed
    assert ours_pass > 0 and torch_pass > 0
    table = forward_profile.fmt(rows, ours_pass, torch_pass)
    assert table.splitlines()[-2].startswith("sum") and "fire9/expand3x3" in table


def test_a_model_onnxruntime_does_not_run_has_no_ort_column():
    rows, _, _ = forward_profile.profile("zfnet", batch=1, threads=2, runs=1)
    assert {name for name, *_ in rows} >= {"conv1", "fc6", "prob"}
    assert all(o is None for *_, o in rows)
