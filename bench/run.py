"""Benchmarks: wall time and peak memory of `clustersim run` on bundled traces.

Each case runs in a fresh subprocess (so peak RSS is per run) and prints one row.
Usage::

    python bench/run.py                 # EDF on Fig. 10 and cluster04, EF on Fig. 10 and cluster01
    python bench/run.py --suite fig8b   # every policy on the Figure 8(b) traces
    python bench/run.py --only cluster04
    python bench/run.py --suite fig8b --cpu-limit 300   # give up on a case after 300 CPU s
    python bench/run.py --suite fig8b --preset clean    # the same cases in clean semantics

Results are appended to bench/results/<suite>.csv (git-ignored). The last line lists the
cases over ``--limit`` seconds (default 120) or failed; the exit status is 1 if there are any.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIG8B = {  # trace -> cluster (POLICIES.md 8: the Figure 8(b) sizes), slot 60, A100
    "cluster01": "n64g8", "cluster02": "n64g8", "cluster03": "n64g8", "cluster05": "n64g8",
    "cluster06": "n64g8", "cluster04": "n128g8", "cluster07": "n128g8", "cluster08": "n128g8",
    "cluster09": "n128g8", "cluster10": "n32g8", "philly_103959": "n32g8",
}

SUITES: dict[str, list[dict]] = {
    "core": [
        {"name": "fig10-edf", "trace": "fig10_100jobs_1500lam", "cluster": "n16g8", "slot": 240,
         "policy": "edf", "preset": "elasticflow-artifact"},
        {"name": "cluster04-edf", "trace": "cluster04", "cluster": "n128g8", "slot": 60,
         "policy": "edf", "preset": "elasticflow-artifact"},
        {"name": "cluster04-edf-clean", "trace": "cluster04", "cluster": "n128g8", "slot": 60,
         "policy": "edf", "preset": "clean"},
        {"name": "fig10-ef-accessctrl", "trace": "fig10_100jobs_1500lam", "cluster": "n16g8",
         "slot": 240, "policy": "ef-accessctrl", "preset": "elasticflow-artifact"},
        {"name": "cluster01-ef-accessctrl", "trace": "cluster01", "cluster": "n64g8",
         "slot": 60, "policy": "ef-accessctrl", "preset": "elasticflow-artifact"},
    ],
}


def fig8b_suite(policies: list[str], preset: str = "elasticflow-artifact") -> list[dict]:
    tag = "" if preset == "elasticflow-artifact" else f"-{preset}"
    return [{"name": f"{t}-{p}{tag}", "trace": t, "cluster": c, "slot": 60, "policy": p,
             "preset": preset} for t, c in FIG8B.items() for p in policies]


def run_case(case: dict, cpu_limit: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "sim.cli", "run", "--trace",
               str(ROOT / "traces" / f"{case['trace']}.csv"), "--cluster", case["cluster"],
               "--policy", case["policy"], "--slot", str(case["slot"]), "--preset",
               case["preset"], "--out", str(Path(tmp) / "out"), "--quiet"]
        t0 = time.perf_counter()
        err_path = Path(tmp) / "stderr"
        with err_path.open("w") as err:
            def limit() -> None:  # a CPU-time budget: independent of other load on the machine
                if cpu_limit:
                    resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 5))

            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                    preexec_fn=limit)
            _, status, usage = os.wait4(proc.pid, 0)  # per-child rusage: its own peak RSS
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        row = {**case, "wall_s": round(wall, 2), "peak_rss_MB": round(usage.ru_maxrss / 1024, 1),
               "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "ok": code == 0}
        stderr = err_path.read_text()
        if code == 0:
            s = json.loads((Path(tmp) / "out" / "summary.json").read_text())
            row["ratio"] = s["deadline_satisfactory_ratio"]
            row["sim_s"] = round(s["wall_s"], 2)
        elif os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
            row["error"] = f"cpu>{cpu_limit}s"
        else:
            row["error"] = stderr.strip().splitlines()[-1] if stderr.strip() else "?"
        return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="core", choices=["core", "fig8b"])
    ap.add_argument("--policies",
                    default="ef-accessctrl,ef,edf,edf-accessctrl,dlas-gpu,gandiva,themis,chronus")
    ap.add_argument("--preset", default="elasticflow-artifact",
                    help="preset of the fig8b cases (default: the artifact's, as in the "
                         "paper's figure; 'clean' for clustersim's own semantics)")
    ap.add_argument("--only", help="substring filter on case names")
    ap.add_argument("--limit", type=float, default=120.0, metavar="S",
                    help="list the cases whose wall time exceeds S seconds at the end "
                         "(default 120, issue 3's per-run target)")
    ap.add_argument("--cpu-limit", type=int, metavar="S",
                    help="stop a case after S CPU seconds (reported as cpu>S)")
    args = ap.parse_args()
    if args.suite == "core":
        cases = SUITES["core"]
    else:
        cases = fig8b_suite(args.policies.split(","), args.preset)
    if args.only:
        cases = [c for c in cases if args.only in c["name"]]
    out = ROOT / "bench" / "results" / f"{args.suite}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{'case':34s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s} {'ratio':>7s}")
    total = 0.0
    over: list[str] = []
    for case in cases:
        row = run_case(case, args.cpu_limit)
        total += row["wall_s"]
        if row["wall_s"] > args.limit or not row["ok"]:
            over.append(f"{case['name']} ({row['wall_s']:.1f} s{'' if row['ok'] else ', failed'})")
        ratio = f"{row['ratio']:.4f}" if row.get("ratio") is not None else row.get("error", "-")
        print(f"{case['name']:34s} {row['wall_s']:8.2f} {row['cpu_s']:8.2f} "
              f"{row['peak_rss_MB']:8.1f} {ratio:>7s}",
              flush=True)
        new = not out.exists()
        with out.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row), extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
    print(f"total wall {total:.1f} s  (cpus: {os.cpu_count()})")
    print(f"over {args.limit:g} s or failed: " + (", ".join(over) if over else "none"))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
