"""Running fuzz cases: every case must load or raise a ZFNetError naming the file, in bounded time
and memory.

Outcomes per case:
    loaded      a Net came back
    zfnet       a ZFNetError naming the file, raised by the readers' own checks
    guarded     a ZFNetError naming the file, made by the last guard from an unforeseen exception
                (a check the reader should make itself; reported, driven towards zero)
    other       anything else: another exception, a ZFNetError not naming the file, a MemoryError,
                more than the time limit, or more than the memory limit
"""
import random
import resource
import signal
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from zfnet.errors import ZFNetError

from . import mutators, seeds

TIME_LIMIT_S = 20.0
MEMORY_LIMIT_MB = 2048           # growth of the process's peak RSS over the run (converters: 1 GiB)


class CaseTimeout(BaseException):
    """Raised by the alarm inside a case (a BaseException: no guard may swallow it)."""


def _alarm(signum, frame):
    raise CaseTimeout()


def _load(fmt, path, aux):
    """The public entry points: load_model for zfnet's files (load_net and the metadata checks),
    convert for the foreign formats."""
    from zfnet.convert import convert
    from zfnet.weights import load_model
    if fmt == "safetensors":
        return load_model(str(path), progress=False)
    if fmt == "prototxt":
        return convert(aux["caffemodel"], prototxt=path)
    return convert(path, prototxt=aux.get("prototxt"))


def _origin(e):
    """' at file.py:line' where the exception behind a guarded ZFNetError was raised."""
    cause = e.__cause__
    if cause is None or cause.__traceback__ is None:
        return ""
    tb = traceback.extract_tb(cause.__traceback__)[-1]
    return f" at {Path(tb.filename).name}:{tb.lineno}"


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Report:
    fmt: str
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)     # outcome detail -> (seed, message)
    slowest_s: float = 0.0
    peak_growth_mb: float = 0.0

    def line(self):
        c = self.counts
        return (f"{self.fmt:12s} cases {c['cases']:7d}  ZFNetError {c['zfnet'] + c['guarded']:7d} "
                f"(guarded {c['guarded']})  loaded {c['loaded']:6d}  other {c['other']:4d}  "
                f"slowest {self.slowest_s:.2f}s")


def run_case(fmt, seed, data, workdir, report, save_dir=None, time_limit=TIME_LIMIT_S):
    """Write `data` as a file of format `fmt`, load it, record the outcome in `report`."""
    workdir = Path(workdir)
    path = workdir / f"case{seeds.SUFFIX[fmt]}"
    path.write_bytes(data)
    aux = {}
    for role, payload in seed.aux.items():
        aux[role] = workdir / f"aux.{role}"
        aux[role].write_bytes(payload)
    outcome, detail = "loaded", None
    start = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _load(fmt, path, aux)
    except CaseTimeout:
        outcome, detail = "other", f"took more than {time_limit}s"
    except ZFNetError as e:
        msg = str(e)
        unforeseen = getattr(e, "unforeseen", None)
        if not any(p.name in msg for p in (path, *aux.values())):
            outcome, detail = "other", f"ZFNetError not naming the file: {msg[:300]}"
        elif unforeseen == "MemoryError":
            outcome, detail = "other", f"MemoryError{_origin(e)}: {msg[:300]}"
        elif unforeseen:
            outcome, detail = "guarded", f"{unforeseen}{_origin(e)}: {msg[:300]}"
        else:
            outcome = "zfnet"
    except Exception as e:                            # noqa: BLE001 -- that is what we look for
        outcome = "other"
        tb = traceback.extract_tb(e.__traceback__)[-1]
        detail = f"{type(e).__name__} at {Path(tb.filename).name}:{tb.lineno}: {str(e)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    elapsed = time.perf_counter() - start
    report.slowest_s = max(report.slowest_s, elapsed)
    report.counts["cases"] += 1
    report.counts[outcome] += 1
    if detail is not None:
        key = detail.split(": ")[0] + ("" if outcome == "other" else " (guarded)")
        if key not in report.examples:
            report.examples[key] = (seed.name, detail)
            if save_dir is not None:
                Path(save_dir).mkdir(parents=True, exist_ok=True)
                n = len(report.examples)
                (Path(save_dir) / f"{fmt}_{n}{seeds.SUFFIX[fmt]}").write_bytes(data)
    return outcome


def fuzz(fmt, workdir, cases=None, seconds=None, seed=0, full=False, save_dir=None,
         memory_limit_mb=MEMORY_LIMIT_MB, progress=None):
    """Run `cases` cases (or for `seconds`) of format `fmt`; -> Report.

    Deterministic for a given `seed` and case count. Memory: the growth of the peak RSS over the
    run is checked after every case; the first case past the limit is counted as "other".
    """
    rng = random.Random(f"{fmt}:{seed}")
    corpus = seeds.build(full=full)[fmt]
    report = Report(fmt)
    base = _peak_mb()
    over = False
    deadline = time.monotonic() + seconds if seconds else None
    i = 0
    while (cases is None or i < cases) and (deadline is None or time.monotonic() < deadline):
        s = rng.choice(corpus)
        data = mutators.mutate(fmt, rng, s.data)
        run_case(fmt, s, data, workdir, report, save_dir)
        growth = _peak_mb() - base
        report.peak_growth_mb = growth
        if growth > memory_limit_mb and not over:
            over = True
            report.counts["other"] += 1
            report.examples[f"memory over {memory_limit_mb} MB"] = (s.name, f"peak RSS grew {growth:.0f} MB")
        i += 1
        if progress and i % 1000 == 0:
            progress(report)
    return report
