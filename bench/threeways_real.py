"""Real strategy (b), scaled down: EMS-style map of SVD instances on a Dask LocalCluster.

Runs the study's map function for real (a seeded noisy rank-1 ``n x n`` matrix and its
full SVD with numpy; result row: nrow, ncol, seed, v_alignment and the leading right
singular vector) on ``dask.distributed.LocalCluster`` with one worker process of
``--threads`` threads, feeds the results through the real EMS store
(:mod:`sim.ems`: buffered SQLite flushes every ``--flush-rows`` rows or 60 s, progress
line every 10 results), and reports makespan and seconds per instance. It also times
instances one after another on the worker (the single-instance time) and
replays the run in the simulator with that time, under the two readings of a
multi-threaded worker (threads serialise, ``process_parallelism=1``; or all run at
once), so the measured makespan says which reading this machine follows.

Usage::

    python bench/threeways_real.py                       # 120 instances of 400 x 400, 2 threads
    python bench/threeways_real.py --instances 200 --n 500 --threads 2

A second run with the same ``--db`` skips the stored combinations (EMS resume).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.ems import EMSStore, ResultBuffer, progress_line, unroll  # noqa: E402


def svd_instance(nrow: int, ncol: int, seed: int) -> dict:
    """The map function: noisy rank-1 matrix, full SVD, alignment of the top vector."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(nrow)
    v = rng.standard_normal(ncol)
    v /= np.linalg.norm(v)
    x = np.outer(u, v) + rng.standard_normal((nrow, ncol)) / math.sqrt(ncol)
    _, _, vt = np.linalg.svd(x, full_matrices=True)
    row = {"nrow": nrow, "ncol": ncol, "seed": seed,
           "v_alignment": float(abs(vt[0] @ v))}
    row.update({f"v{i}": float(x_) for i, x_ in enumerate(vt[0][:16])})
    return row


def _serial_median(combos: list[dict]) -> float:
    times = []
    for c in combos:
        a = time.perf_counter()
        svd_instance(**c)
        times.append(time.perf_counter() - a)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=120)
    ap.add_argument("--n", type=int, default=400, help="matrix size n x n")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flush-rows", type=int, default=50)
    ap.add_argument("--db", help="EMS SQLite file (default: a temporary one)")
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster, as_completed

    combos = unroll({"nrow": [args.n], "ncol": [args.n],
                     "seed": list(range(args.instances))})
    db = args.db or str(Path(tempfile.mkdtemp()) / "EMS.db3")
    store = EMSStore(db, ["nrow", "ncol", "seed"])
    todo = store.pending(combos)
    print(f"{len(todo)} of {len(combos)} instances to run ({len(combos) - len(todo)} stored)")

    with LocalCluster(n_workers=1, threads_per_worker=args.threads, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        # single-instance time on the worker (its BLAS settings), one after another
        single = client.submit(_serial_median, todo[:min(10, len(todo))],
                               pure=False).result() if todo else 0.0
        buf = ResultBuffer(store, flush_rows=args.flush_rows, flush_s=60.0)
        t0 = time.perf_counter()
        futs = client.map(lambda c: svd_instance(**c), todo, pure=False)
        flushes = []
        for n, fut in enumerate(as_completed(futs), start=1):
            row = fut.result()
            now = time.perf_counter() - t0
            if n % 10 == 0:
                print(progress_line(n, now, len(todo)))
            if buf.add(row, now):
                a = time.perf_counter()
                buf.flush(now)
                flushes.append(time.perf_counter() - a)
        if buf.rows:
            a = time.perf_counter()
            buf.flush(time.perf_counter() - t0)
            flushes.append(time.perf_counter() - a)
        makespan = time.perf_counter() - t0
    stored = store.count()
    store.close()
    out = {"instances": len(todo), "n": args.n, "threads": args.threads,
           "single_instance_s": single, "makespan_s": makespan,
           "s_per_instance": makespan / len(todo) if todo else None,
           "flushes": len(flushes), "flush_mean_s": statistics.mean(flushes) if flushes else 0,
           "stored_rows": stored, "db": db}
    if todo:
        out["effective_parallelism"] = single * len(todo) / makespan
        out.update(_predictions(len(todo), args.threads, single))
    print(json.dumps(out, indent=2))
    return 0


def _predictions(n: int, threads: int, single: float) -> dict:
    """The simulator's makespan for this run under the two readings of a threaded worker."""
    from sim.workloads import threeways as tw

    preds = {}
    for label, par in (("serialised", 1), ("parallel", threads)):
        scn = tw.from_dict({"name": "bench", "threeways": {
            "strategy": "large-node", "params": {"seed": {"range": [0, n]}},
            "instance": {"median_s": max(single, 1e-6), "sigma": 0.05}, "processes": 1,
            "threads": threads, "process_parallelism": par}})
        preds[f"sim_{label}_makespan_s"] = tw.run(scn).summary["makespan_s"]
    return preds


if __name__ == "__main__":
    sys.exit(main())
