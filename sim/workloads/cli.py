"""Command-line glue for the workload families: ``run`` of a ``threeways``/``dragon``
scenario and ``figures threeways|dragon``. Called from :mod:`sim.cli`; every input is
validated before anything runs or is written."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import yaml

from sim.errors import InputError
from sim.workloads import FAMILIES


def run_workload(kind: str, args: argparse.Namespace) -> int:
    mod = importlib.import_module(FAMILIES[kind])
    scn = mod.load(args.scenario, args.set)
    res = mod.run(scn)
    out = mod.write(res, Path(args.out or f"results/{scn.name}"))
    if kind == "threeways":
        lines = res.lines if len(res.lines) <= 6 else [*res.lines[:3], "...", *res.lines[-3:]]
        for line in lines:
            print(line)
        s = res.summary
        print(f"{s['strategy']}: {s['instances']} instances ({s['skipped']} already stored) "
              f"in {_f(s['makespan_s'])} s, {_f(s['s_per_instance'], 4)} s/instance; "
              f"{s['flushes']} flushes ({_f(s['flush_total_s'], 2)} s)")
    else:
        s = res.summary
        print(f"{s['name']}: {s['tasks']} tasks in {s['passes']} compile passes "
              f"(batch {s['batch_size']}, {s['ranking']}): makespan {_f(s['makespan_s'], 2)} s, "
              f"scheduling overhead {_f(s['sched_overhead_s'], 2)} s; ok {s['ok']}, "
              f"errors {s['errors']}, not run {s['skipped']}; edges {s['edges']}")
        for r in res.results.values():
            if r.status == "error":
                print(f"  {r.name}: error: {r.error}")
    print(f"wrote {out}/")
    return 0


def _f(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def figures(args: argparse.Namespace) -> int:
    """Run what the figure set needs (skipping runs already in the folder), then draw."""
    fam = args.figure_set
    fig = importlib.import_module(f"analysis.{fam}")
    mod = importlib.import_module(FAMILIES[fam])
    if args.only:
        raise InputError(f"{fam} has one figure; --only does not apply", field="--only")
    # validate every run first
    runs = [(name, mod.load(fig.GRIDS_DIR / path, [*sets, *args.set]))
            for name, path, sets in fig.runs()]
    out = Path(args.out or f"results/figures/{fam}")
    dirs = {}
    for name, scn in runs:
        d = out / "runs" / name
        text = yaml.safe_dump(scn.resolved(), sort_keys=False)
        if (d / "summary.json").exists() and (d / "scenario.yaml").read_text() == text:
            print(f"{name}: already run")
        else:
            mod.write(mod.run(scn), d)
            print(f"{name}: done")
        dirs[name] = d
    for p in fig.draw(dirs, out):
        print(f"wrote {p}")
    return 0
