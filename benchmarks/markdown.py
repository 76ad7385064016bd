"""A saved benchmark run (report.py --json FILE) as a markdown table, for benchmarks/RESULTS.md.

    python benchmarks/markdown.py benchmarks/results/latest_quick.json
"""
import json
import sys


def table(run):
    sgemm = run["sgemm_gflops"]
    lines = [
        f"Machine: {run['machine']}, {run['cpu_count']} cores, {run['threads']} threads for both sides; "
        f"load average {run['load_average_before']:.1f} before / {run['load_average_after']:.1f} after "
        f"(shared machine); " + ", ".join(f"{k} {v}" for k, v in run["versions"].items())
        + f". numpy sgemm (2048^3) in the same run: {sgemm:.1f} GFLOP/s.",
        "",
        "| case | zfnet | PyTorch | ratio (zfnet/PyTorch) | zfnet GFLOP/s | % of sgemm | first call (JIT/cache) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in run["rows"]:
        if "zfnet_s" in r:
            g = r.get("gflops_zfnet")
            first = f"{r['first_s']:.2f} s" if "first_s" in r else ""
            lines.append(f"| {r['case']} | {_t(r['zfnet_s'])} | {_t(r['torch_s'])} | {r['ratio']:.2f} | "
                         f"{f'{g:.1f}' if g else ''} | {f'{100 * g / sgemm:.0f}%' if g else ''} | {first} |")
        else:
            lines.append(f"| {r['case']} | {r['zfnet_mib']:.0f} MiB | {r['torch_mib']:.0f} MiB | {r['ratio']:.2f} | | | |")
    return "\n".join(lines)


def _t(s):
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
