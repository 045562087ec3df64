"""GPR reprioritisation figures (issue 7): best value found, GPR against the baselines.

Reads the runs' summaries and the ``completions.csv`` and ``events.csv`` that
:mod:`sim.poolrun` writes, from the results store; never the engine. ``clustersim
figures gpr`` runs what is missing (``RUNS``: every ranking x every seed of
``scenarios/gpr-ackley.yaml``) into the store, then calls :func:`draw`, which writes

* ``gpr-best``: best value found vs time and vs completed tasks, median over seeds with
  a 10-90 % band per ranking; dotted lines mark the reprioritisations of the first
  GPR seed (time panel) and the completions at which rounds start (count panel),
  dashed lines the pool joins;
* ``gpr-epsilon``: mean (and standard deviation over seeds) of the time and of the
  completed tasks needed to come within epsilon of the optimum, and to reach it.

Each as .png/.pdf/.csv (the plotted numbers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.base import Figure, csv, done, save
from sim.plots import plt
from sim.store import Store

SCENARIO = "gpr-ackley.yaml"
SCORES = ("ei", "mean", "fifo", "random")
SEEDS = tuple(range(8))
LABELS = {"ei": "GPR (expected improvement)", "mean": "GPR (predicted mean)",
          "fifo": "FIFO", "random": "random order"}
COLOURS = {"ei": "#d62728", "mean": "#ff7f0e", "fifo": "#7f7f7f", "random": "#1f77b4"}
#: run label -> scenario overrides
RUNS = {f"{s}-s{seed}": [f"params.score={s}", f"seed={seed}"] for s in SCORES for seed in SEEDS}


def load(runs: pd.DataFrame, store: Store
         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(completions, events, summaries) of every finished run, each with ``score`` and
    ``seed``."""
    comps, events, sums = [], [], []
    d = done(runs)
    for label, key, s in zip(d["label"], d["key"], d["summary"]):
        f = store.files(key)
        tag = {"run": label, "score": s["score"], "seed": s["seed"]}
        c = csv(f["completions.csv"]).assign(**tag)
        e = csv(f["events.csv"]).assign(**tag)
        comps.append(c)
        events.append(e[e.kind != "claim"])
        sums.append({**tag, **{k: v for k, v in s.items() if not isinstance(v, dict)}})
    return pd.concat(comps), pd.concat(events), pd.DataFrame(sums)


def draw(runs: pd.DataFrame, store: Store, out_dir: Path) -> list[Path]:
    comps, events, sums = load(runs, store)
    return draw_best(comps, events, out_dir) + draw_epsilon(sums, out_dir)


def _bands(comps: pd.DataFrame, x: str, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Per score: best-so-far at each grid point, per seed, then median/10 %/90 %."""
    out = {}
    for score, g in comps.groupby("score"):
        rows = []
        for _, run in g.groupby("seed"):
            xs, best = run[x].to_numpy(), run["best"].to_numpy()
            i = np.searchsorted(xs, grid, side="right") - 1
            rows.append(np.where(i >= 0, best[np.clip(i, 0, None)], np.nan))
        m = np.vstack(rows)
        out[str(score)] = np.nanpercentile(m, [50, 10, 90], axis=0)
    return out


def draw_best(comps: pd.DataFrame, events: pd.DataFrame, out_dir: Path) -> list[Path]:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    data = []
    for ax, x, xlabel in ((axes[0], "time_s", "time (s)"),
                          (axes[1], "done", "completed tasks")):
        grid = np.linspace(comps[x].min(), comps[x].max(), 400)
        for score in [s for s in SCORES if s in set(comps.score)]:
            med, lo, hi = _bands(comps, x, grid)[score]
            ax.plot(grid, med, color=COLOURS[score], label=LABELS[score], lw=1.6,
                    ls="--" if score == "mean" else "-", zorder=3 if score == "ei" else 2)
            ax.fill_between(grid, lo, hi, color=COLOURS[score], alpha=0.18, lw=0)
            data.append(pd.DataFrame({"axis": x, "x": grid, "score": score, "median": med,
                                      "p10": lo, "p90": hi}))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    first = events[(events.score == "ei")]
    first = first[first.seed == first.seed.min()] if len(first) else first
    for _, e in first.iterrows():
        style = ":" if e.kind == "reprioritisation" else "--"
        axes[0].axvline(e.time_s, color="black", ls=style, lw=0.7, alpha=0.6)
    ei = comps[comps.score == "ei"]
    if len(ei):
        seed0 = ei[ei.seed == ei.seed.min()]
        for t in first[first.kind == "reprioritisation"].time_s:
            n = int((seed0.time_s <= t + 1e-9).sum())
            axes[1].axvline(n, color="black", ls=":", lw=0.7, alpha=0.6)
    opt = comps.groupby("seed")["best"].min().mean()
    for ax in axes:
        ax.axhline(opt, color="green", lw=0.8, alpha=0.5, label="optimum (mean over seeds)")
    axes[0].set_ylabel("best Ackley value found (lower is better)")
    axes[0].legend(fontsize=8)
    axes[0].set_title("best value vs time (dotted: reprioritisations, dashed: pool joins)",
                      fontsize=9)
    axes[1].set_title(f"best value vs completed tasks; median, 10-90 % band over "
                      f"{comps.seed.nunique()} seeds", fontsize=9)
    fig.tight_layout()
    return save(fig, out_dir, "gpr-best", pd.concat(data) if data else pd.DataFrame())


def draw_epsilon(sums: pd.DataFrame, out_dir: Path) -> list[Path]:
    cols = ["time_to_eps_s", "tasks_to_eps", "time_to_best_s", "tasks_to_best"]
    scores = [s for s in SCORES if s in set(sums.score)]
    stats = sums.groupby("score")[cols].agg(["mean", "std"]).reindex(scores)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    for ax, col in zip(axes, cols):
        ax.bar(range(len(scores)), stats[(col, "mean")], yerr=stats[(col, "std")],
               color=[COLOURS[s] for s in scores], edgecolor="black", lw=0.4, capsize=3)
        ax.set_xticks(range(len(scores)), [s for s in scores], fontsize=8)
        ax.set_title(col.replace("_", " ").replace(" s", " (s)"), fontsize=9)
    eps = sums.epsilon.iloc[0] if len(sums) else float("nan")
    fig.suptitle(f"to within epsilon = {eps:g} of the optimum, and to the optimum "
                 f"(mean, std over {sums.seed.nunique()} seeds)", fontsize=9)
    fig.tight_layout()
    flat = stats.copy()
    flat.columns = [f"{c}_{a}" for c, a in flat.columns]
    return save(fig, out_dir, "gpr-epsilon", flat.reset_index())


FIGURES = {"gpr": Figure("gpr", "", "best value found and time to epsilon, GPR against the "
                         "baselines", draw,
                         runs=tuple((lb, SCENARIO, tuple(sets)) for lb, sets in RUNS.items()))}
