"""Threeways strategies (b) and (c), scaled down, on this machine vs their simulated prediction.

Runs the study's SVD map for real through the real executor
(:mod:`sim.real.threeways`: processes are Dask worker processes launched at their
start delay, the EMS store is a real SQLite file) on two scaled-down scenarios:

* (b) ``threeways-node.yaml``: one process of ``--threads`` threads from the start;
* (c) ``threeways-dask.yaml``: ``--procs`` processes of ``--threads`` threads each,
  launched at staggered start delays (batch jobs), ``--start`` seconds.

It first times instances one after another on a worker (the single-instance time
on this machine) and the real process start (launch to join), then predicts each
run with the simulator: the same scenario with the instance time and per-process
start-up replaced by these measurements, under the scenario's reading of a
threaded process (``process_parallelism: 1``: one SVD at a time per process) and
under the other (all threads compute at once). Prints one line per run.

    python bench/threeways_real.py [--instances 120] [--n 400] [--threads 2] [--procs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def single_instance(n: int, reps: int = 8) -> tuple[float, float]:
    """(median instance time, process start) measured on one Dask worker process."""
    from sim.real import trainer
    from sim.real.cluster import connect
    from sim.real.threeways import NO_CLUSTER

    w = connect(NO_CLUSTER)
    try:
        t = time.time()
        w.launch("calib", 1, {"calib": 1.0})
        while "calib" not in w.joined():
            time.sleep(0.02)
        start = time.time() - t
        times = []
        for s in range(reps):
            r = w.client.submit(trainer.run_task, "svd_map", {"nrow": n, "ncol": n, "seed": s},
                                pure=False, resources={"calib": 1.0}).result()
            times.append(r["t_end"] - r["t_start"])
    finally:
        w.close()
    return statistics.median(times[1:]), start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=120)
    ap.add_argument("--n", type=int, default=400, help="matrix size n x n")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--procs", type=int, default=2, help="(c): worker processes")
    ap.add_argument("--start", default="1.0,3.0", help="(c): start delays, s (cycled)")
    ap.add_argument("--flush-rows", type=int, default=50)
    args = ap.parse_args()
    from sim.real.threeways import run_real
    from sim.workloads import threeways as tw

    single, start = single_instance(args.n)
    print(f"single instance {args.n}x{args.n}: {single:.4f} s; process start {start:.2f} s")
    common = [f"threeways.params.seed.range=[0,{args.instances}]",
              f"threeways.params.nrow=[{args.n}]", f"threeways.params.ncol=[{args.n}]",
              f"threeways.threads={args.threads}",
              f"threeways.store.flush_rows={args.flush_rows}"]
    runs = {
        "b": ("threeways-node.yaml", ["threeways.processes=1", "threeways.start_s=[0.0]"]),
        "c": ("threeways-dask.yaml", [f"threeways.processes={args.procs}",
                                      f"threeways.start_s=[{args.start}]"]),
    }
    rows = []
    for label, (f, sets) in runs.items():
        scn = tw.load(ROOT / "scenarios" / f, [*common, *sets])
        real = run_real(scn).summary
        # the real process start happens before the worker connects; the library
        # start-up after it is an import (~0): predict with start-up = that start
        pred = {}
        for reading, par in (("serial", 1), ("parallel", args.threads)):
            p = tw.load(ROOT / "scenarios" / f, [
                *common, *sets, f"threeways.instance.median_s={single}",
                "threeways.instance.sigma=0.05", f"threeways.startup_s={start}",
                f"threeways.process_parallelism={par}"])
            pred[reading] = tw.run(p).summary["makespan_s"]
        row = {"strategy": label, "scenario": f, "instances": real["instances"],
               "processes": real["processes"], "threads": real["threads"],
               "real_makespan_s": round(real["makespan_s"], 3),
               "real_s_per_instance": round(real["s_per_instance"], 4),
               "real_process_start_s": real["process_start_mean_s"],
               "flushes": real["flushes"], "flush_total_s": round(real["flush_total_s"], 4),
               "stored_rows": real["stored_rows"],
               "sim_serial_makespan_s": round(pred["serial"], 3),
               "sim_parallel_makespan_s": round(pred["parallel"], 3)}
        row["real/sim_serial"] = round(real["makespan_s"] / pred["serial"], 3)
        row["real/sim_parallel"] = round(real["makespan_s"] / pred["parallel"], 3)
        row["load_avg_1min"] = round(os.getloadavg()[0], 2)  # the machine is shared
        rows.append(row)
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
