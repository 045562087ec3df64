"""Measure real-vs-simulated JCT error (issue 4 target: median |err| <= 5%, p95 <= 15%).

Runs ``clustersim fidelity`` on the 20-job time-compressed ElasticFlow-style trace for
ElasticFlow (ef-accessctrl) and EDF and prints one line per policy. About 2 + 3 minutes
of wall clock on 2 cores; the numbers depend on how loaded the machine is (Dask
dispatch latency is most of the measured restart overhead).

    python bench/fidelity.py [--out bench/results/fidelity]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENARIOS = ["fidelity-ef.yaml", "fidelity-edf.yaml"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fidelity"))
    args = ap.parse_args()
    from sim.fidelity import run_fidelity
    from sim.scenario import load_scenario

    for name in SCENARIOS:
        scn = load_scenario(ROOT / "scenarios" / name)
        rep = run_fidelity(scn, Path(args.out) / scn.policy)
        s = rep.summary
        print(f"{scn.policy:14s} jobs {s['jobs_compared']:2d}  median |err| "
              f"{100 * s['median_abs_error']:.1f}%  p95 {100 * s['p95_abs_error']:.1f}%  "
              f"max {100 * s['max_abs_error']:.1f}%  mean err {100 * s['mean_error']:+.1f}%  "
              f"wall {s['real_wall_s']:.0f} s  load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
