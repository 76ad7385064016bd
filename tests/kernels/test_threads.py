"""The kernels may be called from several Python threads at once (a server, a loader thread, a
thread pool): each call must give the single-threaded answer, and the process must survive.

Numba's `workqueue` thread pool aborts the whole process on concurrent use, so the threaded calls
run in a child interpreter: a crash there is a failed test here, not a dead test session.
"""
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import threading
    import numpy as np
    from zfnet import kernels
    from zfnet.kernels import nchwc
    from zfnet.kernels.conv2d_nchwc import conv2d_nchwc, conv2d_nchwc_from_nchw
    from zfnet.kernels.pool_nchwc import global_avg_pool_nchwc, lrn_nchwc, max_pool2d_nchwc

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 31, 29)).astype(np.float32)
    w = rng.standard_normal((12, 8, 5, 5)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    w1 = rng.standard_normal((6, 12, 1, 1)).astype(np.float32)
    fc = rng.standard_normal((10, 12 * 7 * 6)).astype(np.float32)
    w_b, b_b = nchwc.filters_to_nchwc(w), nchwc.bias_to_nchwc(b, 12)

    def run():
        y = kernels.conv2d(x, w, b, 2, 1)                                   # (2, 12, 15, 14)
        t = kernels.conv_transpose2d(y, w, 2, 1, output_size=(31, 29))    # (2, 8, 31, 29)
        y1 = kernels.conv2d(kernels.relu(y), w1)                            # 1x1
        p, switches = kernels.max_pool2d(y, 3, 2)                           # (2, 12, 7, 6)
        u = kernels.max_unpool2d(p, switches, y.shape[2:])
        s = kernels.softmax(kernels.linear(p.reshape(2, -1), fc), axis=1)   # (2, 10)
        # the blocked forward pass's ops (net/blocked.py), interleaved with the deconvnet's above
        y_b = conv2d_nchwc(nchwc.to_nchwc(x), w_b, b_b, 2, 1, relu=True)
        p_b, switches_b = max_pool2d_nchwc(lrn_nchwc(y_b, 5), 3, 2, return_switches=True)
        g = nchwc.from_nchwc(global_avg_pool_nchwc(p_b), 12)
        r_b = max_pool2d_nchwc(conv2d_nchwc_from_nchw(x, w_b, b_b, 2, 1), 3, 2, relu_input=True)
        return [y, t, y1, p, u, s, nchwc.from_nchwc(y_b, 12), switches_b, g, r_b]

    want = run()
    failures = []

    def worker():
        try:
            for _ in range(40):
                if not all(np.array_equal(a, b) for a, b in zip(run(), want)):
                    failures.append("different result")
        except Exception as e:  # noqa: BLE001
            failures.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("failures:", failures[:3], len(failures))
    sys.exit(1 if failures else 0)
""").replace("sys.exit", "raise SystemExit")


def test_kernels_from_several_threads_at_once_agree_and_do_not_crash():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"threaded kernel calls failed (exit code {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    )
