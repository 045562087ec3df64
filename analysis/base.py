"""What a figure is, and the helpers every figure set shares (no engine imports)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.plots import POLICY_COLOURS, POLICY_LABELS, POLICY_ORDER, plt
from sim.store import Store

#: The figures in ``scenarios/`` of the repository this package sits in.
GRIDS_DIR = Path(__file__).resolve().parents[1] / "scenarios"


#: A run a figure needs: (label, scenario file in ``scenarios/``, ``--set`` overrides).
RunEntry = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True)
class Figure:
    """One figure: the runs it needs and the function that draws it from the store.

    The runs are either a grid file (``grid``, see :mod:`sim.sweep`) or a list of named
    scenario files of any kind (``runs``); :meth:`needs` turns either into resolved
    runs. ``draw(runs, store, out_dir)`` gets those runs' rows of the store's ``runs``
    table (in that order, ``scenario`` and ``summary`` parsed, failed runs included,
    plus ``label``: the run's name in the figure) and the store (timelines, items,
    files); it writes ``<stem>.png``, ``<stem>.pdf`` and ``<stem>.csv`` (the plotted
    numbers) into ``out_dir`` and returns their paths.
    """

    id: str
    grid: str
    caption: str
    draw: Callable[[pd.DataFrame, Store, Path], list[Path]]
    runs: tuple[RunEntry, ...] = ()

    @property
    def grid_path(self) -> Path:
        return GRIDS_DIR / self.grid

    def needs(self, overrides: Sequence[str] = ()) -> Any:
        """The runs this figure needs (a :class:`sim.sweep.Grid`), validated; ``overrides``
        (``--set``) apply to each."""
        from sim.sweep import load_grid, runs_grid

        if self.grid:
            return load_grid(self.grid_path, overrides)
        return runs_grid(self.id, [(lb, GRIDS_DIR / f, s) for lb, f, s in self.runs],
                         overrides)


def ordered_policies(names: Iterable[str]) -> list[str]:
    """Distinct policy names in the paper's order (unknown names last, alphabetically)."""
    present = set(names)
    known = [p for p in POLICY_ORDER if p in present]
    return known + sorted(present - set(known))


def colour(policy: str) -> str:
    return POLICY_COLOURS.get(policy, "#17becf")


def label(policy: str, labels: dict[str, str] | None = None) -> str:
    return (labels or {}).get(policy) or POLICY_LABELS.get(policy, policy)


def files(store: Store, runs: pd.DataFrame, name: str) -> dict[str, bytes]:
    """label -> the stored file ``name`` of each finished run (e.g. ``completions.csv``)."""
    d = done(runs)
    return {lb: store.files(k)[name] for lb, k in zip(d["label"], d["key"])}


def csv(content: bytes) -> pd.DataFrame:
    """A stored CSV file as a DataFrame."""
    import io

    return pd.read_csv(io.BytesIO(content))


def done(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of finished runs only."""
    return runs[runs["status"] == "done"]


def save(fig: plt.Figure, out_dir: Path, stem: str, data: pd.DataFrame) -> list[Path]:
    """Write ``stem``.png/.pdf/.csv into ``out_dir``, each atomically; close ``fig``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for ext in ("png", "pdf", "csv"):
            path = out_dir / f"{stem}.{ext}"
            tmp = out_dir / f".{stem}.{ext}.tmp"
            try:
                if ext == "csv":
                    data.to_csv(tmp, index=False)
                else:
                    fig.savefig(tmp, format=ext, dpi=150)
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def grouped_bars(ax: plt.Axes, groups: list[str], policies: list[str],
                 value: Callable[[str, str], float | None],
                 labels: dict[str, str] | None = None) -> None:
    """Bars for ``value(group, policy)``, one cluster of bars per group (NaN: no bar)."""
    width = 0.8 / max(len(policies), 1)
    for i, pol in enumerate(policies):
        xs = [g + (i - (len(policies) - 1) / 2) * width for g in range(len(groups))]
        ys = [value(grp, pol) for grp in groups]
        ys = [float("nan") if y is None else y for y in ys]
        ax.bar(xs, ys, width=width, color=colour(pol), edgecolor="black", linewidth=0.4,
               label=label(pol, labels))
    ax.set_xticks(range(len(groups)), groups)
