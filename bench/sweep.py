"""Time a whole sweep the way a user runs it: `clustersim sweep GRID` on a fresh store.

    python bench/sweep.py scenarios/fig8b.yaml                 # the Figure 8(b) set
    python bench/sweep.py scenarios/fig8b.yaml --set preset=clean
    python bench/sweep.py scenarios/fig8b.yaml --workers 1     # one run at a time

Prints the sweep's wall and CPU time (the Dask workers included), then per policy the
number of runs, the sum and the largest of the runs' own wall times, and every run over
``--limit`` seconds (default 120, issue 3's per-run target). Only runs this invocation
ran count: a resumed ``--store``'s earlier runs are left out. The store is a temporary
file unless ``--store`` is given; a row per sweep is appended to bench/results/sweep.csv.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("grid", help="grid YAML (e.g. scenarios/fig8b.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="passed to clustersim sweep")
    ap.add_argument("--workers", type=int, help="passed to clustersim sweep")
    ap.add_argument("--store", help="results store (default: a temporary file)")
    ap.add_argument("--limit", type=float, default=120.0, help="flag runs slower than this")
    args = ap.parse_args()
    grid = Path(args.grid)
    if not grid.is_file():
        ap.error(f"{grid}: no such grid file")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(args.store) if args.store else Path(tmp) / "bench.sqlite"
        cmd = [sys.executable, "-m", "sim.cli", "sweep", str(grid), "--store", str(store),
               "--quiet"]
        for kv in args.set:
            cmd += ["--set", kv]
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        # only runs this invocation finished count (a given store may hold older ones)
        since = datetime.now(UTC).replace(microsecond=0).isoformat()
        cpu0, t0 = _cpu_children(), time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT)
        wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
        if proc.returncode != 0:
            print(f"clustersim sweep exited {proc.returncode}", file=sys.stderr)
            return proc.returncode
        with sqlite3.connect(store) as db:
            rows = db.execute("select policy, trace, cluster, wall_s, status from runs "
                              "where started_at >= ? or finished_at >= ? order by rowid",
                              (since, since)).fetchall()
    by_policy: dict[str, list[float]] = defaultdict(list)
    slow, failed = [], []
    for policy, trace, cluster, w, status in rows:
        if status != "done":
            failed.append((policy, Path(trace).stem, cluster, status))
        by_policy[policy].append(w or 0.0)
        if w is not None and w > args.limit:
            slow.append((policy, Path(trace).stem, cluster, w))
    print(f"\nsweep {grid.name} {' '.join(args.set)}: {len(rows)} runs, "
          f"wall {wall:.1f} s ({wall / 60:.1f} min), CPU {cpu:.1f} s")
    print(f"{'policy':16s} {'runs':>5s} {'sum wall s':>11s} {'max wall s':>11s}")
    for policy, ws in by_policy.items():
        print(f"{policy:16s} {len(ws):5d} {sum(ws):11.1f} {max(ws):11.1f}")
    for policy, trace, cluster, w in slow:
        print(f"over {args.limit:g} s: {policy} on {trace} ({cluster}): {w:.1f} s")
    for policy, trace, cluster, status in failed:
        print(f"not done: {policy} on {trace} ({cluster}): {status}")
    out = ROOT / "bench" / "results" / "sweep.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["grid", "set", "workers", "runs", "wall_s", "cpu_s", "max_run_s"])
        w.writerow([grid.name, " ".join(args.set), args.workers or "", len(rows),
                    round(wall, 1), round(cpu, 1),
                    round(max((x for ws in by_policy.values() for x in ws), default=0), 1)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
