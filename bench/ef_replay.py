"""Replay recorded EF instants (see ``bench/ef_capture.py``) on the current planner:
check that every result is identical to the recorded one and report the time spent.

    python bench/ef_replay.py CAPTURE.pkl [--repeat N] [--profile] [--start I] [--limit N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import pickle
import time

from sim.policies.efjit import PlanFree, plan_then_free


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="report the fastest of N runs")
    args = ap.parse_args()
    if not Path(args.capture).is_file():
        sys.exit(f"{args.capture}: no such file")
    with open(args.capture, "rb") as fh:
        calls = pickle.load(fh)
    if not calls:
        sys.exit(f"{args.capture}: no calls recorded")
    if not isinstance(calls[0][1], dict):
        sys.exit(f"{args.capture}: an allocate_free capture from before plan_then_free; "
                 "record a new one with bench/ef_capture.py")
    calls = calls[args.start:]
    if args.limit:
        calls = calls[: args.limit]
    if not calls:
        sys.exit(f"{args.capture}: no calls from --start {args.start}")
    inputs = [c[0] for c in calls]

    def go():
        return [plan_then_free(*inp) for inp in inputs]

    plan_then_free(*inputs[0])  # compile or load the cache outside the timing
    best = float("inf")
    for _ in range(args.repeat - 1):
        t0 = time.perf_counter()
        go()
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        outs = pr.runcall(go)
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)
    else:
        outs = go()
    wall = min(best, time.perf_counter() - t0)
    bad = 0
    if not args.no_check:
        for k, (c, o) in enumerate(zip(calls, outs)):
            got = {f: getattr(o, f) for f in PlanFree.__slots__}
            if got != c[1]:
                bad += 1
                if bad <= 5:
                    diff = [f for f in got if got[f] != c[1][f]]
                    print(f"MISMATCH in call {args.start + k} (now={c[0][1]}): {diff}")
    jobs = sum(len(c[0][0]) for c in calls) / max(len(calls), 1)
    grants = sum(len(c[1]["grants"]) for c in calls) / max(len(calls), 1)
    print(f"{len(calls)} calls ({jobs:.0f} jobs, {grants:.0f} grants per call): "
          f"{1e3 * wall / max(len(calls), 1):.3f} ms per call, {bad} mismatches")


if __name__ == "__main__":
    main()
