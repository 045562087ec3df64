"""GPR on Ackley (issue 7): the same scaled-down scenario simulated and run for real.

Runs ``scenarios/gpr-ackley.yaml`` with its ``real:`` block (fewer points, time
compression) twice on one seed: in simulation (modelled retrain cost, same points)
and on Dask workers (:mod:`sim.real.pools`: real Ackley calls sleeping their
runtime / compression, real GP fits inside ``decide``). Writes both run folders
and prints best value found vs time, the epsilon/best metrics and the
reprioritisation times side by side. About 1 minute of wall clock on 2 cores.

    python bench/gpr_real.py [--seed 0] [--set real.points=300] [--out bench/results/gpr-real]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def best_at(comps: list, t: float) -> float | None:
    """Best value found by (simulated) time ``t``."""
    done = [c[4] for c in comps if c[0] <= t]
    return done[-1] if done else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpr-real"))
    args = ap.parse_args()
    from sim.poolrun import load_pool_scenario, run_pool_scenario, write_pool_run
    from sim.real.pools import run_pool_real, scaled

    scn = load_pool_scenario(ROOT / "scenarios" / "gpr-ackley.yaml",
                             [*args.set, f"seed={args.seed}", f"params.seed={args.seed}"])
    # the simulation runs the same points with the modelled retrain cost
    sim_scn = scaled(scn)
    sim_scn = type(scn)(**{**sim_scn.__dict__, "params": scn.params})
    sim = run_pool_scenario(sim_scn)
    real = run_pool_real(scn)
    out = Path(args.out)
    write_pool_run(sim, out / "sim")
    write_pool_run(real, out / "real")
    s, r = sim.summary, real.summary
    print(f"GPR on Ackley, {s['tasks']} points, seed {args.seed}, compression "
          f"{r['compression']:g}; real wall {r['wall_s']:.1f} s")
    keys = ["time_to_eps_s", "tasks_to_eps", "time_to_best_s", "tasks_to_best", "makespan_s",
            "reprioritisations"]
    print(f"{'':>20} {'sim':>10} {'real':>10}")
    for k in keys:
        a, b = s[k], r[k]
        print(f"{k:>20} {_f(a):>10} {_f(b):>10}")
    for label, res in (("sim", sim), ("real", real)):
        reps = [f"{t:.1f}" for t, k, _ in res.events if k == "reprioritisation"]
        joins = {d: round(t, 1) for t, k, d in res.events if k == "pool-join"}
        print(f"{label}: reprioritisations at {', '.join(reps)} s; pool joins {joins}")
    print(f"real decide wall: total {r['decide_wall_total_s']:.2f} s, max "
          f"{r['decide_wall_max_s']:.3f} s; value mismatches {r['value_mismatches']}")
    end = max(s["makespan_s"], r["makespan_s"])
    print(f"{'time_s':>8} {'best sim':>10} {'best real':>10}")
    for i in range(1, 11):
        t = end * i / 10
        print(f"{t:8.1f} {_f(best_at(sim.completions, t)):>10} "
              f"{_f(best_at(real.completions, t)):>10}")
    print(f"wrote {out}/sim and {out}/real")
    return 0


def _f(v: object) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    sys.exit(main())
