"""Occlusion sensitivity (Zeiler & Fergus Fig. 7d) as a background job with progress, polled.

    job = jobs.start(image, size=48, stride=16)     # returns at once; a thread does the work
    jobs.status(job)                                # {"state", "done", "total", ...}
    jobs.png(job)                                   # when finished: the probability-drop heat map
    jobs.cancel(job)                                # stops it after the current batch

A square of the mean colour (0 after preprocessing: zfnet.viz.occlusion.occlude) is slid over the
image; for each position the probability of the unoccluded image's top class is recorded. The
heat map shows the drop max(p0 - p, 0) / p0: bright where hiding the square hurts the class.
Positions run in small batches. Each kernel call takes the kernels' one-op lock for itself, so a
live projection requested meanwhile runs between two of the job's layers instead of after the job;
and before each batch the job waits while any interactive request is computing (Foreground), so
the job takes only the time the user is not asking for.
"""
import secrets
import threading
import time

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.explore.errors import NotFound
from zfnet.explore.lru import LRU
from zfnet.explore.pictures import heat_rgba, png_bytes
from zfnet.net import forward
from zfnet.viz.occlusion import check_classifier, occlude, square_positions

BATCH = 2            # small batches: short kernel calls, so an interactive request waits less
MAX_RUNNING = 2


class Foreground:
    """Counts interactive computations in progress; background jobs wait until there are none and
    none has run for `quiet` seconds (a user clicking from unit to unit leaves short gaps)."""

    def __init__(self, quiet=0.5):
        self.quiet = quiet
        self._active = 0
        self._last = 0.0
        self._idle = threading.Condition()

    def __enter__(self):
        with self._idle:
            self._active += 1
        return self

    def __exit__(self, *exc):
        with self._idle:
            self._active -= 1
            self._last = time.monotonic()
            self._idle.notify_all()

    def wait_idle(self, timeout=5.0):
        """Block while interactive work runs or ran less than `quiet` s ago; at most `timeout` s,
        so that a job still progresses under a steady stream of requests."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while True:
                now = time.monotonic()
                calm = self._active == 0 and now - self._last >= self.quiet
                if calm or now >= deadline:
                    return
                self._idle.wait(min(deadline - now, max(self.quiet - (now - self._last), 0.01)))


class OcclusionJobs:
    def __init__(self, net, labels, max_jobs=16, foreground=None):
        self.net = net
        self.foreground = foreground or Foreground()
        self.labels = labels
        self._jobs = LRU(max_jobs)
        self._lock = threading.Lock()

    def start(self, image, size=48, stride=16):
        """Check the request, then run it on a daemon thread; returns the job id."""
        check_classifier(self.net)
        ys, xs = square_positions(image.x.shape[1:], size, stride)      # ZFNetError when it cannot fit
        with self._lock:
            running = sum(1 for j in self._jobs.values() if j["state"] == "running")
            if running >= MAX_RUNNING:
                raise ZFNetError(f"{running} occlusion jobs are running already; wait for one to finish")
            job_id = secrets.token_hex(8)
            job = {"id": job_id, "state": "running", "done": 0, "total": len(ys) * len(xs),
                   "size": int(size), "stride": int(stride), "error": None, "cancel": False}
            self._jobs.put(job_id, job)
        threading.Thread(target=self._run, args=(job, image.x, ys, xs), daemon=True,
                         name=f"occlusion-{job_id}").start()
        return job_id

    def _run(self, job, x, ys, xs):
        try:
            p0 = forward(self.net, x[None], switches=False).output[0].astype(np.float64)   # (K,)
            target = int(np.argmax(p0))
            size = job["size"]
            boxes = [(y, y + size, x0, x0 + size) for y in ys for x0 in xs]
            prob = np.zeros(len(boxes))
            for start in range(0, len(boxes), BATCH):
                if job["cancel"]:
                    job["state"] = "cancelled"
                    return
                self.foreground.wait_idle()
                chunk = boxes[start:start + BATCH]
                out = forward(self.net, occlude(x, chunk), switches=False).output          # (B, K)
                prob[start:start + len(chunk)] = out[:, target]
                job["done"] = start + len(chunk)
            grid = prob.reshape(len(ys), len(xs))                                            # (NY, NX)
            job["drop"] = np.maximum(p0[target] - grid, 0.0) / max(p0[target], 1e-12)
            half, s = size / 2.0, job["stride"] / 2.0
            job.update(state="finished", target={"index": target, "label": self.labels[target],
                                                 "prob": float(p0[target])},
                       min_prob=float(grid.min()), grid=[len(ys), len(xs)],
                       extent={"top": float(ys[0] + half - s), "left": float(xs[0] + half - s),
                               "bottom": float(ys[-1] + half + s), "right": float(xs[-1] + half + s)})
        except Exception as e:     # reported to the page through the job's status, not a traceback
            job.update(state="failed", error=str(e) or type(e).__name__)

    def status(self, job_id):
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no occlusion job {job_id!r} (unknown, or forgotten)")
        return {k: v for k, v in job.items() if k not in ("drop", "cancel")}

    def cancel(self, job_id):
        """Stop a running job after its current batch."""
        self.status(job_id)
        self._jobs.get(job_id)["cancel"] = True
        return self.status(job_id)

    def png(self, job_id):
        job = self._jobs.get(job_id)
        if job is None or job["state"] != "finished":
            raise NotFound(f"occlusion job {job_id!r} has no finished map")
        return png_bytes(heat_rgba(job["drop"], hi=1.0))
