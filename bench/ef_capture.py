"""Record the compiled EF instant (``efjit.plan_then_free``) of one ``clustersim run``.

    python bench/ef_capture.py OUT.pkl [--every K] run --trace ... --policy ef ...

Keeps every K-th call (default: every one): its inputs (the planning jobs, ``now``,
``G``, ``S``, ``artifact``) and every field of its result. The pickle is written when
the run ends, and also when it is interrupted (Ctrl-C), so a long run can be sampled
for a while. ``bench/ef_replay.py`` replays the calls on the current planner (timing and
exact comparison), so a planner change can be checked and timed without a full
simulation. Run it from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pickle

from sim.policies import efjit

FIELDS = efjit.PlanFree.__slots__
calls: list = []
_orig = efjit.plan_then_free


def recording(every: int):
    seen = [0]

    def plan_then_free(jobs, now, G, S, artifact):
        out = _orig(jobs, now, G, S, artifact)
        if seen[0] % every == 0:
            calls.append(((list(jobs), now, G, S, artifact),
                          {f: getattr(out, f) for f in FIELDS}))
        seen[0] += 1
        return out

    return plan_then_free


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                 usage="%(prog)s OUT.pkl [--every K] run ...")
    ap.add_argument("out", help="pickle to write")
    ap.add_argument("--every", type=int, default=1, metavar="K", help="keep every K-th call")
    args, cli = ap.parse_known_args()  # the rest is clustersim's command line
    if args.every < 1 or not cli:
        ap.error("--every must be at least 1, and clustersim arguments must follow")
    efjit.plan_then_free = recording(args.every)
    from sim.cli import main

    try:
        rc = main(cli)
    except KeyboardInterrupt:
        rc = 130
    path = args.out
    tmp = Path(path + ".part")
    with tmp.open("wb") as fh:
        pickle.dump(calls, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    print(f"{len(calls)} plan_then_free calls -> {path}", file=sys.stderr)
    sys.exit(rc)
