"""Small figures drawn from run summaries (no engine imports)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: One colour per policy, kept the same in every figure.
POLICY_COLOURS = {
    "edf": "#1f77b4",
    "edf-accessctrl": "#aec7e8",
    "gandiva": "#2ca02c",
    "dlas-gpu": "#9467bd",
    "themis": "#8c564b",
    "chronus": "#e377c2",
    "ef": "#ffbb78",
    "ef-accessctrl": "#ff7f0e",
    "fifo": "#7f7f7f",
}
#: The ElasticFlow paper's order of policies in its bar charts.
POLICY_ORDER = ["edf", "edf-accessctrl", "gandiva", "dlas-gpu", "themis", "chronus", "ef",
                "ef-accessctrl", "fifo"]
#: How the ElasticFlow paper names each policy in its figures.
POLICY_LABELS = {
    "edf": "EDF",
    "edf-accessctrl": "EDF + AC",
    "gandiva": "Gandiva",
    "dlas-gpu": "Tiresias",
    "themis": "Themis",
    "chronus": "Chronus",
    "ef": "ElasticFlow w/o AC",
    "ef-accessctrl": "ElasticFlow",
    "fifo": "FIFO",
}
LABELS = {"deadline_satisfactory_ratio": "Deadline satisfactory ratio",
          "jct_mean_s": "Mean JCT (s)", "be_jct_mean_s": "Best-effort mean JCT (s)",
          "gpu_utilisation": "GPU utilisation"}


def bar_chart(summaries: list[dict], metric: str, path: str | Path, *, title: str = "") -> Path:
    """One bar per policy for ``metric``; writes ``path`` (PNG) and returns it."""
    path = Path(path)
    names = [s["policy"] for s in summaries]
    values = [s.get(metric) or 0.0 for s in summaries]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    colours = [POLICY_COLOURS.get(n, "#17becf") for n in names]
    bars = ax.bar(names, values, color=colours, edgecolor="black", linewidth=0.5)
    for b, v in zip(bars, values):
        ax.annotate(f"{v:.2f}" if v < 10 else f"{v:,.0f}", (b.get_x() + b.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(LABELS.get(metric, metric))
    if metric == "deadline_satisfactory_ratio":
        ax.set_ylim(0, 1.1)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
