"""Dragon-style batches (issue 8; WORKFLOWS.md 1(d)): makespan and scheduling overhead
against the compile batch size, for the matrix-powers chain and a wide independent map.

Reads the runs' summaries from the results store (``clustersim figures dragon`` runs
what is missing); never imports the engine. Batch sizes double from 1 (one-by-one submission) to 256, like
Dragon's throughput benchmark (which doubles 4 -> 128).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.base import Figure, done, save
from sim.plots import plt
from sim.store import Store

SCENARIOS = {"dragon-matpow": "matrix powers (chain, 66 tasks)",
             "dragon-widemap": "wide map (512 tasks)"}
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def runs() -> list[tuple[str, str, tuple[str, ...]]]:
    """(run label, scenario file in scenarios/, --set overrides)."""
    return [(f"{scn}-b{k}", f"{scn}.yaml", (f"name={scn}-b{k}", f"dragon.batch_size={k}"))
            for scn in SCENARIOS for k in BATCHES]


def draw(runs: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    rows = []
    d = done(runs)
    for name, s in zip(d["label"], d["summary"]):
        rows.append({"scenario": name.rsplit("-b", 1)[0], "batch_size": s["batch_size"],
                     "passes": s["passes"], "makespan_s": s["makespan_s"],
                     "sched_overhead_s": s["sched_overhead_s"], "compile_s": s["compile_s"],
                     "critical_path_s": s["critical_path_s"], "tasks": s["tasks"]})
    data = pd.DataFrame(rows).sort_values(["scenario", "batch_size"])
    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(10, 3.6))
    for ax, (scn, title) in zip(axes, SCENARIOS.items()):
        d = data[data.scenario == scn]
        ax.plot(d.batch_size, d.makespan_s, "o-", label="makespan")
        ax.plot(d.batch_size, d.sched_overhead_s, "s--", label="scheduling overhead")
        ax.plot(d.batch_size, d.critical_path_s, ":", color="grey", label="critical path")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("compile batch size (tasks)")
        ax.set_ylabel("seconds")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, out, "dragon", data)


FIGURES = {"dragon": Figure("dragon", "", "makespan and scheduling overhead vs compile batch "
                            "size", draw, runs=tuple(runs()))}
