"""Record every ``allocate_free`` call (inputs and output) of one ``clustersim run``.

    python bench/ef_capture.py OUT.pkl run --trace ... --policy ef-accessctrl ...

Writes a pickle: a list of ``(states, now, F, G, S, FreeResult, kwargs)`` tuples (inputs
deep-copied before the call). ``bench/ef_replay.py`` replays them against the current planner (timing and
exact comparison), so a planner change can be checked and timed without a full simulation.
Run it from the repository root (the ``sim`` package is imported from the current directory).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import copy
import pickle

import sim.policies.ef as ef
from sim.cli import main

calls: list = []
_orig = ef.allocate_free


def recording(states, now, F, G, S, **kw):
    inp = copy.deepcopy((list(states), now, F, G, S))
    out = _orig(states, now, F, G, S, **kw)
    calls.append((*inp, copy.deepcopy(out), dict(kw)))
    return out


ef.allocate_free = recording

if __name__ == "__main__":
    path = sys.argv[1]
    rc = main(sys.argv[2:])
    with open(path, "wb") as fh:
        pickle.dump(calls, fh, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"{len(calls)} allocate_free calls -> {path}", file=sys.stderr)
    sys.exit(rc)
