"""An EMS-style result store: parameter grids, buffered SQLite writes, resumable runs.

Behaviour follows the EMS manager of the Stats285 study (WORKFLOWS.md 1(c); read
for behaviour only, no code taken): the experiment's parameters are a mapping of
lists, unrolled into every combination; combinations already stored are skipped
(a re-run resumes); each finished instance yields one result row, rows are
buffered and flushed to SQLite when the buffer reaches ``flush_rows`` rows or more
than ``flush_s`` seconds have passed since the last save (checked when a result
arrives), and once more at the end; every 10th result logs a progress line.

The same :class:`ResultBuffer` serves the simulator and real runs: the caller
passes the clock reading (simulated or wall-clock seconds) with every row. Real
runs pay the real write; the simulator adds a modelled cost per flush
(:func:`consume`).

Standard library ``sqlite3`` only. Column names are checked against a strict
pattern before they reach SQL; values always go through placeholders.
"""

from __future__ import annotations

import itertools
import math
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import InputError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: EMS logs a progress line every this many results.
PROGRESS_EVERY = 10


def unroll(params: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a mapping of lists, in key order then value order."""
    keys = list(params)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(params[k] for k in keys))]


def combo_key(combo: Mapping[str, Any], keys: Sequence[str]) -> tuple:
    """The identity of a parameter combination (values of ``keys`` in order)."""
    return tuple(combo[k] for k in keys)


class EMSStore:
    """One SQLite table of result rows, identified by the parameter columns ``keys``.

    The table is created by the first write, with the columns of its first row;
    later rows must carry the same columns.
    """

    def __init__(self, path: str | Path, keys: Sequence[str], *, table: str = "ems") -> None:
        for name in (table, *keys):
            _check_name(name)
        self.path = str(path)
        self.keys = tuple(keys)
        self.table = table
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path)
        self.columns: tuple[str, ...] | None = self._existing_columns()

    def _existing_columns(self) -> tuple[str, ...] | None:
        cur = self.conn.execute(f'PRAGMA table_info("{self.table}")')
        cols = tuple(r[1] for r in cur.fetchall())
        if cols and not set(self.keys) <= set(cols):
            missing = sorted(set(self.keys) - set(cols))
            raise InputError(f"table {self.table!r} has no column {missing[0]!r}",
                             file=self.path, field=missing[0])
        return cols or None

    def stored(self) -> set[tuple]:
        """Parameter combinations already in the table."""
        if self.columns is None:
            return set()
        cols = ", ".join(f'"{k}"' for k in self.keys)
        return {tuple(r) for r in self.conn.execute(f'SELECT {cols} FROM "{self.table}"')}

    def pending(self, combos: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The combinations not yet stored, in the given order."""
        done = self.stored()
        return [dict(c) for c in combos if combo_key(c, self.keys) not in done]

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows`` in one transaction (all or nothing)."""
        if not rows:
            return
        if self.columns is None:
            cols = tuple(rows[0])
            for c in cols:
                _check_name(c)
            if not set(self.keys) <= set(cols):
                raise ValueError(f"result rows lack parameter columns {self.keys}")
            decl = ", ".join(f'"{c}"' for c in cols)
            with self.conn:
                self.conn.execute(f'CREATE TABLE IF NOT EXISTS "{self.table}" ({decl})')
            self.columns = cols
        cols = self.columns
        for r in rows:
            if set(r) != set(cols):
                raise ValueError(f"row columns {sorted(r)} differ from the table's")
        names = ", ".join(f'"{c}"' for c in cols)
        sql = f'INSERT INTO "{self.table}" ({names}) VALUES ({", ".join("?" * len(cols))})'
        with self.conn:
            self.conn.executemany(sql, [tuple(r[c] for c in cols) for r in rows])

    def count(self) -> int:
        if self.columns is None:
            return 0
        return int(self.conn.execute(f'SELECT COUNT(*) FROM "{self.table}"').fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EMSStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ResultBuffer:
    """Rows waiting to be written; the flush rule of EMS.

    ``add`` appends a row and says whether the buffer must be flushed now: it holds
    ``flush_rows`` rows, or more than ``flush_s`` seconds passed since the last save.
    (EMS counts cells, rows x columns > 200,000; with its 1004 result columns that
    is 200 rows, so this counts rows.)
    """

    store: EMSStore
    flush_rows: int = 200
    flush_s: float = 60.0
    last_save_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: Mapping[str, Any], now_s: float) -> bool:
        self.rows.append(dict(row))
        return len(self.rows) >= self.flush_rows or now_s - self.last_save_s > self.flush_s

    def flush(self, now_s: float) -> int:
        """Write the buffered rows; returns how many."""
        n = len(self.rows)
        self.store.write(self.rows)
        self.rows = []
        self.last_save_s = now_s
        return n


def progress_line(count: int, elapsed_s: float, total: int) -> str:
    """EMS's progress line: count, elapsed, seconds per instance, projected remaining."""
    per = elapsed_s / count if count else math.nan
    left = total - count
    return (f"Count: {count}, Time: {elapsed_s:.2f}, Seconds/Instance: {per:.4f}, "
            f"Remaining (s): {per * left:.1f}, Remaining Count: {left}")


@dataclass(frozen=True)
class FlushCost:
    """Modelled time of one flush: ``base_s + rows * per_row_s`` (driver blocked)."""

    base_s: float = 0.0
    per_row_s: float = 0.0

    def of(self, rows: int) -> float:
        return self.base_s + rows * self.per_row_s


@dataclass
class Consumed:
    """What the driver saw: per-result times, flushes, progress lines, the end."""

    seen_s: list[float]
    flushes: list[tuple[float, float, int]]  # (start_s, end_s, rows)
    lines: list[str]
    end_s: float


def consume(results: Iterable[tuple[float, Mapping[str, Any]]], total: int,
            buffer: ResultBuffer, cost: FlushCost, *, result_s: float = 0.0) -> Consumed:
    """Replay the driver's ``as_completed`` loop over results in completion order.

    The driver is one thread: it takes a result when it arrives and it is free,
    spends ``result_s`` on it (deserialise, append), logs a progress line every
    :data:`PROGRESS_EVERY` results, and flushes when the buffer says so; a flush
    blocks it for ``cost.of(rows)``. A final flush writes what is left. Workers
    are not blocked: their results queue up at the driver.
    """
    t = 0.0
    seen: list[float] = []
    flushes: list[tuple[float, float, int]] = []
    lines: list[str] = []
    for at_s, row in results:
        t = max(t, at_s) + result_s
        seen.append(t)
        if len(seen) % PROGRESS_EVERY == 0:
            lines.append(progress_line(len(seen), t, total))
        if buffer.add(row, t):
            n = buffer.flush(t)
            start, t = t, t + cost.of(n)
            flushes.append((start, t, n))
    if buffer.rows:
        n = buffer.flush(t)
        start, t = t, t + cost.of(n)
        flushes.append((start, t, n))
    return Consumed(seen, flushes, lines, t)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InputError(f"{name!r} is not a valid column or table name "
                         "(letters, digits, underscore)", field=name)

