"""The ElasticFlow paper's simulation figures (POLICIES.md 8), drawn from the store.

Gu et al., "ElasticFlow: An Elastic Serverless Training Platform for Distributed Deep
Learning", ASPLOS 2023. Every number drawn here comes from a run in the results store;
the artifact's plot scripts type the paper's numbers in instead (POLICIES.md 8, notes).

=====  ===================  ====================================================
fig    grid (scenarios/)    drawn
=====  ===================  ====================================================
8a     fig8a.yaml           deadline satisfactory ratio per policy (bars)
8b     fig8b.yaml           the same per trace (grouped bars)
9      fig9.yaml            the same per cluster size, 4 policies (grouped bars)
10     fig10.yaml           cluster efficiency over time per policy (lines)
11     fig11.yaml           (a) ratio and (b) best-effort JCT relative to Gandiva,
                            against the best-effort fraction (lines)
=====  ===================  ====================================================

Choices where the paper or artifact leaves room (POLICIES.md 8):

* Figure 10 plots the cluster efficiency ``ce`` of POLICIES.md 1.7 (the store's
  ``timeline.ce``), sampled as ``plot_fig10.py`` does: the first row, then each row at
  least 2,400 s after the last kept one (plus the last row, where the cluster empties);
  time in hours from the first row; drawn as steps, since ``ce`` only changes at
  scheduling instants.
* Figure 11(b) plots ``JCT_gandiva / JCT_policy`` of the best-effort jobs' mean JCT
  (higher is better, Gandiva = 1), the reading the paper's values imply ([DECIDE]).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis.base import (
    Figure,
    colour,
    done,
    grouped_bars,
    label,
    ordered_policies,
    save,
)
from sim.plots import plt
from sim.store import Store

#: Figure 9's legend, as in the paper.
FIG9_LABELS = {"edf": "EDF", "edf-accessctrl": "EDF + Admission Control",
               "ef": "EDF + Elastic Scaling", "ef-accessctrl": "ElasticFlow"}
#: plot_fig10.py keeps rows at least this far apart.
FIG10_SPACING_S = 2400.0
RATIO = "Deadline satisfactory ratio"


def draw_8a(runs: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    d = done(runs)
    pols = ordered_policies(d["policy"])
    vals = [_ratio(d[d.policy == p]) for p in pols]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bars = ax.bar([label(p) for p in pols], vals, color=[colour(p) for p in pols],
                  edgecolor="black", linewidth=0.5)
    for b, v in zip(bars, vals):
        if not math.isnan(v):
            ax.annotate(f"{v:.3f}", (b.get_x() + b.get_width() / 2, v), ha="center",
                        va="bottom", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(RATIO)
    ax.set_title(_setup(d), fontsize=9)
    fig.tight_layout()
    data = pd.DataFrame({"policy": pols, "label": [label(p) for p in pols],
                         "deadline_satisfactory_ratio": vals})
    return save(fig, out, "fig8a", data)


def draw_8b(runs: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    d = done(runs)
    setups = list(dict.fromkeys(zip(runs["trace"], runs["cluster"])))
    repeated = len({t for t, _ in setups}) < len(setups)  # a trace on several clusters
    names = {f"{t}\n{c}" if repeated else t: (t, c) for t, c in setups}
    pols = ordered_policies(d["policy"])

    def value(name: str, pol: str) -> float:
        t, c = names[name]
        return _ratio(d[(d.trace == t) & (d.cluster == c) & (d.policy == pol)])

    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(names) + 2), 3.6))
    grouped_bars(ax, list(names), pols, value)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(RATIO)
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    ax.legend(fontsize=7, ncol=len(pols), loc="upper center", bbox_to_anchor=(0.5, 1.18),
              frameon=False)
    fig.tight_layout()
    data = pd.DataFrame([{"trace": t, "cluster": c, "policy": p,
                          "deadline_satisfactory_ratio": value(n, p)}
                         for n, (t, c) in names.items() for p in pols])
    return save(fig, out, "fig8b", data)


def draw_9(runs: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    d = done(runs)
    clusters = list(dict.fromkeys(runs["cluster"]))
    gpus = {c: _first(runs[runs.cluster == c], "num_gpus") for c in clusters}
    groups = [f"{gpus[c]} GPUs" for c in clusters]
    by_group = dict(zip(groups, clusters))
    pols = ordered_policies(d["policy"])

    def value(group: str, pol: str) -> float:
        return _ratio(d[(d.cluster == by_group[group]) & (d.policy == pol)])

    fig, ax = plt.subplots(figsize=(6, 3.4))
    grouped_bars(ax, groups, pols, value, FIG9_LABELS)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(RATIO)
    ax.set_xlabel("Cluster size")
    ax.legend(fontsize=7, ncol=2, frameon=False)
    fig.tight_layout()
    data = pd.DataFrame([{"cluster": by_group[g], "num_gpus": gpus[by_group[g]], "policy": p,
                          "label": label(p, FIG9_LABELS), "deadline_satisfactory_ratio": value(g, p)}
                         for g in groups for p in pols])
    return save(fig, out, "fig9", data)


def draw_10(runs: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    d = done(runs)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    rows = []
    for pol in ordered_policies(d["policy"]):
        key = d[d.policy == pol]["key"].iloc[0]
        tl = sample_spaced(store.timeline(key), FIG10_SPACING_S)
        hours = (tl["time_s"] - tl["time_s"].iloc[0]) / 3600.0 if len(tl) else tl["time_s"]
        ax.plot(hours, tl["ce"], color=colour(pol), label=label(pol), linewidth=1.2,
                drawstyle="steps-post")  # ce holds between scheduling instants
        rows.append(pd.DataFrame({"policy": pol, "time_h": hours, "ce": tl["ce"],
                                  "allocated_gpus": tl["allocated_gpus"]}))
    ax.set_xlabel("Time (hours)")
    ax.set_ylabel("Cluster efficiency")
    ax.set_ylim(0, None)
    ax.set_title(_setup(d), fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    data = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["policy", "time_h", "ce", "allocated_gpus"])
    return save(fig, out, "fig10", data)


def draw_11(runs: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    d = done(runs).copy()
    d["be_fraction"] = [s["trace"].get("generate", {}).get("best_effort_percentage", math.nan)
                        for s in d["scenario"]]
    d["be_jct_s"] = [s.get("be_jct_mean_s") for s in d["summary"]]
    fracs = sorted(set(d["be_fraction"]))
    pols = ordered_policies(d["policy"])
    rows = []
    for f in fracs:
        at = d[d.be_fraction == f]
        ref = _scalar(at[at.policy == "gandiva"], "be_jct_s")
        for p in pols:
            jct = _scalar(at[at.policy == p], "be_jct_s")
            rows.append({"be_fraction": f, "policy": p, "label": label(p),
                         "deadline_satisfactory_ratio": _ratio(at[at.policy == p]),
                         "be_jct_mean_s": jct,
                         "jct_improvement_vs_gandiva": ref / jct if jct and ref else math.nan})
    data = pd.DataFrame(rows, columns=["be_fraction", "policy", "label",
                                       "deadline_satisfactory_ratio", "be_jct_mean_s",
                                       "jct_improvement_vs_gandiva"])
    paths = []
    for stem, col, ylabel in (
            ("fig11a", "deadline_satisfactory_ratio", RATIO),
            ("fig11b", "jct_improvement_vs_gandiva",
             "Best-effort JCT improvement\n(JCT Gandiva / JCT policy)")):
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        for p in pols:
            s = data[data.policy == p]
            ax.plot(s["be_fraction"] * 100, s[col], marker="o", markersize=3,
                    color=colour(p), label=label(p))
        ax.set_xlabel("Best-effort jobs (%)")
        ax.set_ylabel(ylabel)
        if col == "deadline_satisfactory_ratio":
            ax.set_ylim(0, 1.1)
        else:
            ax.set_yscale("log")
        ax.legend(fontsize=7, frameon=False, ncol=len(pols), loc="lower center",
                  bbox_to_anchor=(0.5, 1.0))
        fig.tight_layout()
        paths += save(fig, out, stem, data)
    return paths


def sample_spaced(tl: pd.DataFrame, spacing_s: float) -> pd.DataFrame:
    """The first row, then every row at least ``spacing_s`` after the last kept one, and
    the last row (the cluster emptying)."""
    keep, last = [], -math.inf
    for i, t in enumerate(tl["time_s"]):
        if t >= last + spacing_s:
            keep.append(i)
            last = t
    if len(tl) and keep[-1] != len(tl) - 1:
        keep.append(len(tl) - 1)
    return tl.iloc[keep].reset_index(drop=True)


def _ratio(rows: pd.DataFrame) -> float:
    v = _scalar(rows, "deadline_satisfactory_ratio")
    return math.nan if v is None else float(v)


def _scalar(rows: pd.DataFrame, col: str) -> float | None:
    if rows.empty:
        return None
    v = rows[col].iloc[0]
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _first(rows: pd.DataFrame, col: str) -> object:
    return rows[col].iloc[0] if len(rows) else None


def _setup(d: pd.DataFrame) -> str:
    if d.empty:
        return "no finished runs"
    r = d.iloc[0]
    slot = f"{r.slot_s:g}" if r.slot_s is not None else "?"
    return f"{r.trace} on {r.cluster} ({r.num_gpus} x {r.gpu_type}), slot {slot} s"


FIGURES: dict[str, Figure] = {f.id: f for f in (
    Figure("8a", "fig8a.yaml", "deadline satisfactory ratio, elasticVpollux_e on 16x4 T4",
           draw_8a),
    Figure("8b", "fig8b.yaml", "deadline satisfactory ratio on the ITP and Philly traces",
           draw_8b),
    Figure("9", "fig9.yaml", "deadline satisfactory ratio vs cluster size (ablation)", draw_9),
    Figure("10", "fig10.yaml", "cluster efficiency over time, Figure 10 trace", draw_10),
    Figure("11", "fig11.yaml", "ratio and best-effort JCT vs best-effort fraction", draw_11),
)}
