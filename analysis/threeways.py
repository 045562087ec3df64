"""Many jobs three ways (issue 8; WORKFLOWS.md 1(c)): the three deployments compared.

Reads the runs' summaries and stored ``completions.csv`` from the results store
(``clustersim figures threeways`` runs what is missing); never imports the engine.

Panel (a): results stored/seen by the driver over time per deployment, with the
study's Dask-cluster progress points (hw5 handout: counts 10-50 at 12.1-14.0 s,
1000 at 77.07 s). Panel (b): makespan per deployment, s/instance annotated.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.base import Figure, csv, done, files, save
from sim.plots import plt
from sim.store import Store

#: hw5 handout, Dask cluster of 8 SLURM jobs x 8 threads: (count, elapsed s), from the
#: EMS progress lines' Seconds/Instance x count, and the final "Performed experiment" line.
STUDY_DASK = ((10, 12.1), (20, 12.2), (30, 12.9), (40, 13.6), (50, 14.0), (1000, 77.07))

LABELS = {"threeways-array": "(a) job array 10x100", "threeways-node": "(b) one node, 1x16 threads",
          "threeways-node-4x4": "(b') one node, 4 procs x 4 threads",
          "threeways-dask": "(c) Dask on 8 jobs x 8 threads"}


def runs() -> list[tuple[str, str, tuple[str, ...]]]:
    """(run label, scenario file in scenarios/, --set overrides)."""
    return [("threeways-array", "threeways-array.yaml", ()),
            ("threeways-node", "threeways-node.yaml", ()),
            ("threeways-node-4x4", "threeways-node.yaml",
             ("name=threeways-node-4x4", "threeways.processes=4", "threeways.threads=4",
              "threeways.processes_per_node=4", "threeways.node_contention=0.096")),
            ("threeways-dask", "threeways-dask.yaml", ())]


def draw(runs: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    rows = []
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    d = done(runs)
    comps = files(store, runs, "completions.csv")
    for name, s in zip(d["label"], d["summary"]):
        comp = csv(comps[name])
        ax.plot(comp["time_s"], comp["done"], label=LABELS.get(name, name), lw=1.4)
        rows.append({"run": name, "label": LABELS.get(name, name), "strategy": s["strategy"],
                     "instances": s["instances"], "makespan_s": s["makespan_s"],
                     "s_per_instance": s["s_per_instance"], "flushes": s["flushes"],
                     "flush_total_s": s["flush_total_s"]})
    xs, ys = zip(*((t, n) for n, t in STUDY_DASK))
    ax.scatter(xs, ys, marker="x", color="black", zorder=5, label="study (c), hw5 handout")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("results stored")
    ax.set_xscale("log")
    ax.set_title("(a) results over time", fontsize=9)
    ax.legend(fontsize=7)
    data = pd.DataFrame(rows)
    bars = bx.bar(range(len(data)), data["makespan_s"], color="#4c72b0", edgecolor="black",
                  linewidth=0.5)
    for b, v, per in zip(bars, data["makespan_s"], data["s_per_instance"]):
        bx.annotate(f"{v:.0f} s\n{per:.3f} s/inst", (b.get_x() + b.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=7)
    bx.axhspan(77.07 * 0.9, 77.07 * 1.1, color="grey", alpha=0.25, label="study (c) 77 s +-10%")
    bx.set_xticks(range(len(data)), [lb.split(" ", 1)[0] for lb in data["label"]])
    bx.set_ylabel("makespan (s)")
    bx.set_yscale("log")
    bx.set_title("(b) 1000 SVD instances", fontsize=9)
    bx.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, out, "threeways", data)


FIGURES = {"threeways": Figure("threeways", "", "the three deployments: results over time "
                               "and makespan", draw, runs=tuple(runs()))}
