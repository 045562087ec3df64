"""Chronus speed: wall time of a whole run and the MIP solve time per lease.

Runs in-process (the policy's counters are read after the run) and prints one row
per case: wall time, deadline ratio, lease boundaries planned, solver calls, their
mean/p99/max wall time, the share of leases whose solve hit the time limit, greedy
fallbacks and shortcut plans. Targets (issue 9): Figure 10 (100 jobs, n16g8) under
60 s; ITP cluster10 (260 jobs, n32g8, lease 240 s) under 5 minutes.

Usage::

    python bench/chronus.py                         # both cases, default params
    python bench/chronus.py --only fig10 --param shortcut=false --param solver=cbc
    python bench/chronus.py --preset clean
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.runner import prepare, run_prepared  # noqa: E402
from sim.scenario import scenario_from_dict  # noqa: E402

CASES = {
    # the fig10 case of bench/run.py; Chronus ticks every 240 s (POLICIES.md 8)
    "fig10": {"trace": "fig10_100jobs_1500lam", "cluster": "n16g8", "slot_s": 240},
    # Figure 8(b)'s cluster10 setup: Chronus C = 60, L = 240 on 32 x 8 A100
    "cluster10": {"trace": "cluster10", "cluster": "n32g8", "slot_s": 60},
}


def run_case(name: str, preset: str, params: dict) -> dict:
    c = CASES[name]
    scn = scenario_from_dict({
        "name": name, "trace": str(ROOT / "traces" / f"{c['trace']}.csv"),
        "cluster": c["cluster"], "slot_s": c["slot_s"], "gpu_type": "A100",
        "preset": preset, "policy": "chronus", "params": params,
    }, source="<bench>")
    t0 = time.perf_counter()
    p = prepare(scn)
    res = run_prepared(p)
    wall = time.perf_counter() - t0
    st = p.policy.stats  # type: ignore[attr-defined]
    times = np.array(st.solve_s) if st.solve_s else np.zeros(1)
    return {
        "case": name, "preset": preset, "solver": p.policy.solver,  # type: ignore[attr-defined]
        "wall_s": wall, "ratio": res.summary["deadline_satisfactory_ratio"],
        "leases": st.leases, "solves": st.solves, "shortcuts": st.shortcuts,
        "mean_ms": 1e3 * float(times.mean()), "p99_ms": 1e3 * float(np.percentile(times, 99)),
        "max_ms": 1e3 * float(times.max()),
        "limit_share": st.limit_hits / st.leases if st.leases else 0.0,
        "fallbacks": st.fallbacks,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=list(CASES))
    ap.add_argument("--preset", default="elasticflow-artifact",
                    choices=["elasticflow-artifact", "clean"])
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="chronus parameter (e.g. solver=cbc, shortcut=false)")
    args = ap.parse_args()
    params = dict(kv.split("=", 1) for kv in args.param)
    cols = ["case", "preset", "solver", "wall_s", "ratio", "leases", "solves", "shortcuts",
            "mean_ms", "p99_ms", "max_ms", "limit_share", "fallbacks"]
    print(" ".join(f"{c:>11s}" for c in cols))
    for name in [args.only] if args.only else list(CASES):
        row = run_case(name, args.preset, params)
        print(" ".join(f"{row[c]:>11.3f}" if isinstance(row[c], float) else f"{row[c]!s:>11s}"
                       for c in cols), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
