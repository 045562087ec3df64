"""Replay recorded ``allocate_free`` calls (see ``bench/ef_capture.py``) on the current
planner: check every output is identical and report the CPU time spent.

    python bench/ef_replay.py CAPTURE.pkl [--profile] [--limit N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import pickle
import time

from sim.policies.efplan import allocate_free


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="report the fastest of N runs")
    args = ap.parse_args()
    with open(args.capture, "rb") as fh:
        calls = pickle.load(fh)
    calls = calls[args.start :]
    if args.limit:
        calls = calls[: args.limit]
    # captures made before allocate_free took ``artifact`` ran the artifact's variant
    kws = [c[6] if len(c) > 6 else {"artifact": True} for c in calls]
    inputs = [copy.deepcopy(c[:5]) for c in calls]

    def go():
        return [allocate_free(*inp, **kw) for inp, kw in zip(inputs, kws)]

    best = float("inf")
    for _ in range(args.repeat - 1):
        inputs = [copy.deepcopy(c[:5]) for c in calls]
        t0 = time.process_time()
        go()
        best = min(best, time.process_time() - t0)
        inputs = [copy.deepcopy(c[:5]) for c in calls]
    t0 = time.process_time()
    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        outs = pr.runcall(go)
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)
    else:
        outs = go()
    cpu = min(best, time.process_time() - t0)
    bad = 0
    if not args.no_check:
        for k, (c, o) in enumerate(zip(calls, outs)):
            exp = c[5]
            if (o.jobs, o.order, o.grants, o.F, o.ends_left) != (
                exp.jobs, exp.order, exp.grants, exp.F, exp.ends_left
            ):
                bad += 1
                if bad <= 5:
                    print(f"MISMATCH in call {k} (now={c[1]})")
    print(f"{len(calls)} calls, {cpu:.2f} s CPU, {bad} mismatches")


if __name__ == "__main__":
    main()
