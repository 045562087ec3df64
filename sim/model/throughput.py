"""Throughput tables: iterations/s of a whole job by model x global batch x GPU count.

Files are the ElasticFlow artifact's form (one CSV per model, header
``global_batch_size,1,2,4,...``; cells are iterations per second of the whole
job). Empty, ``nan`` and zero cells mean "that GPU count is not allowed"
(POLICIES.md 1.2 [DECIDE]).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sim.errors import InputError

GPU_TYPES = ("A100", "T4")


@dataclass(frozen=True)
class ThroughputTable:
    """Rates by (model, batch) and GPU count.

    ``columns`` are the GPU-count columns in file order (ascending in every shipped
    table). ``rates[(model, batch)]`` is a tuple aligned with ``columns``;
    ``math.nan`` marks a missing/not-allowed cell.
    """

    gpu_type: str
    columns: tuple[int, ...]
    rates: dict[tuple[str, int], tuple[float, ...]] = field(repr=False)
    source: str = ""
    _flat: dict[tuple[str, int, int], float] = field(default_factory=dict, repr=False,
                                                     compare=False)

    def __post_init__(self) -> None:
        for (m, b), row in self.rates.items():
            for c, v in zip(self.columns, row):
                self._flat[(m, b, c)] = 0.0 if math.isnan(v) else v

    # -- queries -------------------------------------------------------------
    def has(self, model: str, batch: int) -> bool:
        return (model, batch) in self.rates

    def models(self) -> list[str]:
        return sorted({m for m, _ in self.rates})

    def batches(self, model: str) -> list[int]:
        return sorted(b for m, b in self.rates if m == model)

    def rate(self, model: str, batch: int, gpus: int) -> float:
        """Iterations/s of the whole job on ``gpus`` GPUs (0.0 for 0 GPUs or a missing cell)."""
        v = self._flat.get((model, batch, gpus))
        if v is None:
            if (model, batch) not in self.rates:
                raise KeyError((model, batch))
            return 0.0
        return v

    def levels(self, model: str, batch: int) -> tuple[int, ...]:
        """Allowed GPU counts (columns with a positive rate), ascending."""
        row = self.rates[(model, batch)]
        return tuple(c for c, v in zip(self.columns, row) if not math.isnan(v) and v > 0)

    def rising_levels(self, model: str, batch: int, upto: int) -> tuple[int, ...]:
        """Allowed GPU counts ``<= upto``, each faster than every smaller one kept.

        A count that runs no faster than a smaller one only takes GPUs from other
        jobs; clean-mode elastic planners (EF, EDF) choose among these.
        """
        out: list[int] = []
        best = 0.0
        for c in self.levels(model, batch):
            if c > upto:
                break
            r = self._flat[(model, batch, c)]
            if r > best:
                out.append(c)
                best = r
        return tuple(out)

    def scaled(self, factor: Callable[[str, int, int], float], source: str) -> ThroughputTable:
        """This table with every cell multiplied by ``factor(model, batch, gpus)``."""
        rates = {(m, b): tuple(v if math.isnan(v) else v * factor(m, b, c)
                               for c, v in zip(self.columns, row))
                 for (m, b), row in self.rates.items()}
        return ThroughputTable(gpu_type=self.gpu_type, columns=self.columns, rates=rates,
                               source=source)

    def largest_column_with_value(self, model: str, batch: int) -> int:
        """Largest GPU-count column whose cell is not ``nan``/empty (artifact's non-EF max_gpu)."""
        row = self.rates[(model, batch)]
        best = 0
        for c, v in zip(self.columns, row):
            if not math.isnan(v):
                best = c
        return best


def _parse_cell(text: str) -> float:
    text = text.strip()
    if text == "" or text.lower() == "nan":
        return math.nan
    v = float(text)
    return math.nan if v <= 0 else v


def load_throughput_dir(directory: str | Path, gpu_type: str) -> ThroughputTable:
    """Read every ``<model>.csv`` in ``directory`` into one table."""
    directory = Path(directory)
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise InputError("no throughput tables (*.csv) found", file=directory)
    return _load_files(((f.stem, f.read_text(), str(f)) for f in files), gpu_type, str(directory))


def _load_files(
    items: Iterable[tuple[str, str, str]], gpu_type: str, source: str
) -> ThroughputTable:
    columns: tuple[int, ...] | None = None
    rates: dict[tuple[str, int], tuple[float, ...]] = {}
    for model, text, path in items:
        rows = list(csv.reader(text.splitlines()))
        if not rows or rows[0][:1] != ["global_batch_size"]:
            raise InputError("header must start with 'global_batch_size'", file=path, line=1)
        try:
            cols = tuple(int(c) for c in rows[0][1:])
        except ValueError:
            raise InputError("GPU-count columns must be integers", file=path, line=1) from None
        if columns is None:
            columns = cols
        elif cols != columns:
            raise InputError(f"GPU columns {cols} differ from {columns}", file=path, line=1)
        for lineno, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            try:
                batch = int(row[0])
            except ValueError:
                raise InputError(
                    f"batch size {row[0]!r} is not an integer",
                    file=path, line=lineno, field="global_batch_size",
                ) from None
            cells = list(row[1:]) + [""] * (len(cols) - len(row) + 1)
            try:
                rates[(model, batch)] = tuple(_parse_cell(c) for c in cells[: len(cols)])
            except ValueError as e:
                raise InputError(f"non-numeric throughput ({e})", file=path, line=lineno) from None
    assert columns is not None
    return ThroughputTable(gpu_type=gpu_type, columns=columns, rates=rates, source=source)


_CACHE: dict[str, ThroughputTable] = {}


def bundled_table(gpu_type: str) -> ThroughputTable:
    """The throughput table shipped with clustersim for ``gpu_type`` (A100 or T4).

    Source: the ElasticFlow artifact (pkusys/ElasticFlow, Apache-2.0); see traces/README.md.
    """
    if gpu_type not in GPU_TYPES:
        raise InputError(f"unknown GPU type {gpu_type!r}; choose one of {', '.join(GPU_TYPES)}",
                         field="gpu_type")
    if gpu_type not in _CACHE:
        base = resources.files("sim") / "data" / "throughputs" / gpu_type
        items = sorted(
            ((p.name[:-4], p.read_text(), f"sim/data/throughputs/{gpu_type}/{p.name}")
             for p in base.iterdir() if p.name.endswith(".csv")),
        )
        _CACHE[gpu_type] = _load_files(items, gpu_type, f"bundled:{gpu_type}")
    return _CACHE[gpu_type]
