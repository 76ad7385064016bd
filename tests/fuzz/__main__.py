"""``python -m tests.fuzz --minutes N [--format F] [--seed S] [--save DIR]``: the long fuzz run.

Runs each format for N minutes (with the complete shared files among the seeds), prints the
per-format counts (cases, ZFNetError, loaded, other) and one example of each kind of "other" and
guarded case; exit status 1 if any case was "other". --save keeps the first file of each kind.
"""
import argparse
import sys
import tempfile
import time

from . import runner, seeds


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=1.0, help="minutes per format (default 1)")
    p.add_argument("--format", choices=seeds.FORMATS, action="append",
                   help="fuzz only this format (repeatable; default all)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the time)")
    p.add_argument("--save", metavar="DIR", default=None, help="keep one file of each failure kind here")
    p.add_argument("--small", action="store_true", help="only the small seeds (as in CI)")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    print(f"fuzz seed {seed}, {args.minutes:g} min per format", flush=True)
    seeds.build(full=not args.small)
    reports = []
    with tempfile.TemporaryDirectory(prefix="zfnet-fuzz-") as work:
        for fmt in args.format or seeds.FORMATS:
            report = runner.fuzz(fmt, work, seconds=60 * args.minutes, seed=seed, full=not args.small,
                                 save_dir=args.save,
                                 progress=lambda r: print("  " + r.line(), file=sys.stderr, flush=True))
            reports.append(report)
            print(report.line(), flush=True)
            for kind, (seed_name, detail) in report.examples.items():
                print(f"    {kind}: seed {seed_name}: {detail}", flush=True)
    print("\n| format | cases | ZFNetError | (guarded) | loaded | other |\n|---|---|---|---|---|---|")
    for r in reports:
        c = r.counts
        print(f"| {r.fmt} | {c['cases']} | {c['zfnet'] + c['guarded']} | {c['guarded']} | {c['loaded']} | "
              f"{c['other']} |")
    return 1 if any(r.counts["other"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
