"""Results store: every finished run of every sweep, in one SQLite file.

Who uses it: :mod:`sim.sweep` writes (only the client process, never a worker),
``clustersim results`` exports, and the figure sets in ``analysis/`` read. The
default file is ``results/clustersim.sqlite`` (``results/`` is git-ignored).

Identity of a run
-----------------
A run's ``key`` is the SHA-256 of its *resolved scenario* written as canonical JSON
(keys sorted, no whitespace, integral floats written as integers, see
:func:`canonical_json`). The resolved scenario is built by
:func:`sim.sweep.resolve_scenario` and holds everything that can change the result and
nothing that cannot:

* ``version``: :func:`key_version`: the package version, the store schema and a
  fingerprint of the code and data that decide results, so results of other code are
  never reused;
* ``trace``: ``{"file": <file name>, "sha256": <hash of the file's bytes>}`` (where the
  file lives does not matter, its content does), or ``{"generate": {...}}`` with every
  generator argument spelled out, defaults included;
* ``cluster``: the loaded cluster spec's fields (topology, cores, memory, links),
  not the name it was asked by;
* ``gpu_type`` (resolved: scenario, else cluster, else A100), ``policy``, ``params``
  (the policy's full ``Params``, defaults included), ``slot_s``, ``preset``, ``seed``,
  ``comm``, ``horizon_s``.

The scenario ``name`` is a label and is not part of the key. Runs of the other
scenario kinds (:mod:`sim.kinds`) resolve to ``kind``, ``version`` and the kind's own
validated scenario (docs/store.md lists them). ``store-<n>`` in ``version`` is
:data:`KEY_FORMAT`, not the schema version.

Schema (``SCHEMA_VERSION`` 2; a schema-1 store is migrated in place when opened)
-----------------------------
``meta(name TEXT PRIMARY KEY, value TEXT)``
    ``schema_version``.

``runs`` (one row per run; ``key`` is the primary key)
    ``key``, ``name``, ``status`` (``done`` | ``failed``), ``error`` (exception and
    traceback of a failed run, else NULL), ``started_at`` and ``finished_at`` (ISO 8601
    UTC), ``wall_s`` (seconds the worker spent: loading, simulating, summarising),
    ``policy``, ``trace`` (file stem, or ``gen-...`` for a generated trace),
    ``cluster`` (name), ``num_gpus``, ``gpu_type``, ``slot_s``, ``preset``,
    ``deadline_satisfactory_ratio``, ``jct_mean_s``, ``be_jct_mean_s``,
    ``gpu_utilisation``, ``makespan_s`` (NULL for a failed run or an undefined metric),
    ``scenario`` (the resolved scenario, canonical JSON), ``summary`` (the run's full
    summary, :func:`sim.metrics.summary.summarise` plus run facts, JSON), ``kind``
    (the scenario kind; the GPU setup columns are NULL for other kinds).

``jobs`` (one row per job of a ``done`` run; primary key ``(run_key, idx)``)
    ``run_key`` and the columns of :data:`sim.metrics.summary.JOB_COLUMNS` (see
    :data:`JOB_SQL`); booleans are stored as 0/1, ``deadline_met`` is NULL for
    best-effort and unfinished jobs.

``timeline`` (one row per scheduling instant of a ``done`` run; primary key
``(run_key, time_s)``)
    ``run_key``, ``time_s``, ``allocated_gpus``, ``running_jobs``, ``queued_jobs``
    (as in the run's ``timeline.csv``) and ``ce``: the cluster efficiency of
    POLICIES.md 1.7, sum over running jobs of ``tput(g) / tput(1)`` divided by the
    cluster's GPUs (computed by :func:`sim.sweep.cluster_efficiency`).

``items`` (one row per item of a ``done`` run of a task-workload kind; primary key
``(run_key, idx)``)
    ``run_key``, ``idx``, ``item_id``, ``status``, ``start_s``, ``end_s`` and ``data``
    (the kind's own columns, JSON; :meth:`Store.items` spreads them into columns).

``files`` (primary key ``(run_key, name)``)
    run-folder files of a ``done`` task-workload run that its figures read (a
    transaction log, completion curves), zlib-compressed.

The GPU event log is not stored (it is the largest table and no figure needs it);
``clustersim run`` still writes it.

Atomicity: :meth:`Store.put` writes a run's row and all its rows in other tables in
one transaction, replacing any earlier row with the same key (a failed run that is
retried). A process killed mid-write leaves the previous state; there is never a
``done`` run without its jobs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim import __version__
from sim.errors import InputError

SCHEMA_VERSION = 2
#: The ``store-<n>`` part of every key: how a resolved scenario is written and hashed.
#: Unchanged by schema 2 (which only added tables and a column), so a GPU-job run keeps
#: its key across the migration.
KEY_FORMAT = 1
#: Kind of the runs of a schema-1 store (it held GPU-job sweeps only).
GPU_KIND = "gpu-jobs"
DEFAULT_STORE = Path("results/clustersim.sqlite")

#: (column, SQL type) of ``runs`` after ``key``; the summary metrics copied into columns
#: are the ``METRIC_COLUMNS``.
METRIC_COLUMNS = ("deadline_satisfactory_ratio", "jct_mean_s", "be_jct_mean_s",
                  "gpu_utilisation", "makespan_s")
RUN_SQL: tuple[tuple[str, str], ...] = (
    ("key", "TEXT PRIMARY KEY"), ("name", "TEXT"), ("status", "TEXT NOT NULL"),
    ("error", "TEXT"), ("started_at", "TEXT"), ("finished_at", "TEXT"), ("wall_s", "REAL"),
    ("policy", "TEXT"), ("trace", "TEXT"), ("cluster", "TEXT"), ("num_gpus", "INTEGER"),
    ("gpu_type", "TEXT"), ("slot_s", "REAL"), ("preset", "TEXT"),
    *((m, "REAL") for m in METRIC_COLUMNS),
    ("scenario", "TEXT NOT NULL"), ("summary", "TEXT"),
    ("kind", f"TEXT NOT NULL DEFAULT '{GPU_KIND}'"),
)
#: Columns of ``jobs`` after ``run_key``, in :data:`sim.metrics.summary.JOB_COLUMNS` order.
JOB_SQL: tuple[tuple[str, str], ...] = (
    ("job_id", "TEXT"), ("idx", "INTEGER"), ("submit_s", "REAL"), ("start_s", "REAL"),
    ("end_s", "REAL"), ("deadline_s", "REAL"), ("best_effort", "INTEGER"), ("status", "TEXT"),
    ("deadline_met", "INTEGER"), ("num_gpu_requested", "INTEGER"), ("gpus_at_end", "INTEGER"),
    ("jct_s", "REAL"), ("queueing_delay_s", "REAL"), ("executed_s", "REAL"), ("gpu_s", "REAL"),
    ("overhead_s", "REAL"), ("preemptions", "INTEGER"), ("rescales", "INTEGER"),
    ("gpu_history", "TEXT"),
)
TIMELINE_SQL: tuple[tuple[str, str], ...] = (
    ("time_s", "REAL"), ("allocated_gpus", "INTEGER"), ("running_jobs", "INTEGER"),
    ("queued_jobs", "INTEGER"), ("ce", "REAL"),
)
#: Columns of ``items`` after ``run_key`` (the per-item table of the non-GPU kinds); the
#: kind-specific columns of an item are JSON in ``data``.
ITEM_SQL: tuple[tuple[str, str], ...] = (
    ("idx", "INTEGER"), ("item_id", "TEXT"), ("status", "TEXT"), ("start_s", "REAL"),
    ("end_s", "REAL"), ("data", "TEXT"),
)
ITEM_COLUMNS = tuple(c for c, _ in ITEM_SQL if c not in ("idx", "data"))
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE IF NOT EXISTS runs ("
    + ", ".join(f"{c} {t}" for c, t in RUN_SQL) + ")",
    "CREATE TABLE IF NOT EXISTS jobs (run_key TEXT NOT NULL, "
    + ", ".join(f"{c} {t}" for c, t in JOB_SQL) + ", PRIMARY KEY (run_key, idx))",
    "CREATE TABLE IF NOT EXISTS timeline (run_key TEXT NOT NULL, "
    + ", ".join(f"{c} {t}" for c, t in TIMELINE_SQL) + ", PRIMARY KEY (run_key, time_s))",
    "CREATE TABLE IF NOT EXISTS items (run_key TEXT NOT NULL, "
    + ", ".join(f"{c} {t}" for c, t in ITEM_SQL) + ", PRIMARY KEY (run_key, idx))",
    "CREATE TABLE IF NOT EXISTS files (run_key TEXT NOT NULL, name TEXT NOT NULL, "
    "content BLOB NOT NULL, PRIMARY KEY (run_key, name))",
]
#: Tables :meth:`Store.table` exports (``files`` holds compressed blobs: not exported).
TABLES = ("runs", "jobs", "timeline", "items")
_CHUNK = 500  # keys per IN (...) query, well below SQLite's variable limit


@dataclass
class RunRecord:
    """One run's outcome as the store receives it (built by :func:`sim.sweep.execute_run`).

    ``summary``, ``jobs``, ``timeline``, ``items`` and ``files`` are ``None`` for a failed
    run. ``timeline`` has the columns of :data:`TIMELINE_SQL`. A GPU-job run fills
    ``jobs`` and ``timeline``; a run of another kind fills ``items`` (columns
    :data:`ITEM_COLUMNS` plus any of its own, which go to ``data`` as JSON) and ``files``
    (name -> bytes: run-folder files its figures read, e.g. a transaction log).
    """

    key: str
    scenario: dict[str, Any]
    name: str
    status: str
    error: str | None
    started_at: str
    finished_at: str
    wall_s: float
    summary: dict[str, Any] | None = None
    jobs: pd.DataFrame | None = None
    timeline: pd.DataFrame | None = None
    kind: str = GPU_KIND
    items: pd.DataFrame | None = None
    files: dict[str, bytes] | None = None


#: Modules of ``sim`` that cannot change a run's result (front ends and this store).
_NOT_RESULT_CODE = frozenset({"cli.py", "plots.py", "store.py", "sweep.py"})


@functools.cache
def key_version() -> str:
    """The version part of every run key: ``clustersim-<version>/store-<schema>/code-<hash>``.

    ``<hash>`` fingerprints the code and data that decide a run's result (every file of
    the ``sim`` package except the front ends: CLI, plots, sweeps, this store), so results
    computed by other code, even at the same package version, are never reused; a change
    to a policy or the engine re-runs what a sweep needs.
    """
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).as_posix()
        if (not f.is_file() or "__pycache__" in rel or rel in _NOT_RESULT_CODE
                or f.suffix in (".pyc", ".pyo")):
            continue
        h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return f"clustersim-{__version__}/store-{KEY_FORMAT}/code-{h.hexdigest()[:16]}"


def canonical_json(obj: Any) -> str:
    """``obj`` as canonical JSON: sorted keys, no spaces, integral floats as integers.

    ``60`` and ``60.0`` must give the same key; tuples become lists. Raises
    ``ValueError`` for NaN or infinity (a scenario never holds them).
    """
    return json.dumps(_normalise(obj), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def run_key(resolved: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a resolved scenario."""
    return hashlib.sha256(canonical_json(resolved).encode()).hexdigest()


def trace_label(trace: dict[str, Any]) -> str:
    """Short label of a resolved trace: the file stem, or ``gen-...`` for a generated one."""
    if "file" in trace:
        return str(trace["file"]).split(".")[0]
    g = trace["generate"]
    label = f"gen-{g['num_jobs']}j-lam{_num(g['lam'])}-seed{g['seed']}"
    if g.get("best_effort_percentage"):
        label += f"-be{_num(g['best_effort_percentage'])}"
    if (g.get("min_ddl"), g.get("max_ddl")) != (0.5, 1.5):
        label += f"-ddl{_num(g['min_ddl'])}-{_num(g['max_ddl'])}"
    if g.get("max_scale_factor", 16) != 16:
        label += f"-max{g['max_scale_factor']}"
    return label


class Store:
    """A results store file; open with ``Store(path)`` (creates it) or ``create=False``.

    Not thread-safe: one process, one thread writes (the sweep's client).

    Raises:
        InputError: the file is missing (``create=False``), is not SQLite, or has
            another schema version.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise InputError("results store not found (run a sweep first)",
                                 file=self.path, field="--store")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._init_schema()
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise InputError(f"not a clustersim results store ({e})", file=self.path,
                             field="--store") from None

    def _init_schema(self) -> None:
        c = self.conn
        c.execute("PRAGMA journal_mode=WAL")  # readers (export, figures) never block the writer
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("BEGIN")
        try:
            for stmt in _SCHEMA:
                c.execute(stmt)
            row = c.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif row[0] == "1":  # schema 1 -> 2: every stored run is a GPU-job run
                c.execute(f"ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL "
                          f"DEFAULT '{GPU_KIND}'")
                c.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'",
                          (str(SCHEMA_VERSION),))
                row = (str(SCHEMA_VERSION),)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        if row is not None and row[0] != str(SCHEMA_VERSION):
            self.conn.close()
            raise InputError(f"store schema version {row[0]}, this clustersim reads "
                             f"{SCHEMA_VERSION}; use another --store", file=self.path,
                             field="--store")

    # ------------------------------------------------------------------ writing
    def put(self, rec: RunRecord) -> None:
        """Write one run (row, jobs, timeline, items, files) in a single transaction.

        Replaces an earlier row with the same key and everything stored with it.

        Raises:
            ValueError: ``rec.key`` is not the key of ``rec.scenario``, or ``rec.status``
                is neither ``done`` nor ``failed``.
        """
        if rec.key != run_key(rec.scenario):
            raise ValueError(f"run key {rec.key} does not match its scenario")
        if rec.status not in ("done", "failed"):
            raise ValueError(f"status must be done or failed, got {rec.status!r}")
        summary = rec.summary or {}
        scn = rec.scenario
        if rec.kind == GPU_KIND:
            setup = {"policy": scn["policy"], "trace": trace_label(scn["trace"]),
                     "cluster": scn["cluster"].get("name"), "num_gpus": _num_gpus(scn["cluster"]),
                     "gpu_type": scn["gpu_type"], "slot_s": scn["slot_s"],
                     "preset": scn["preset"]}
        else:  # the GPU setup columns do not apply; the policy does when there is one
            setup = {"policy": scn.get("policy")}
        row = {
            "key": rec.key, "name": rec.name, "status": rec.status, "error": rec.error,
            "started_at": rec.started_at, "finished_at": rec.finished_at,
            "wall_s": rec.wall_s, **setup,
            **{m: _sql(summary.get(m)) for m in METRIC_COLUMNS},
            "scenario": canonical_json(scn),
            "summary": json.dumps(summary, sort_keys=True) if rec.summary is not None else None,
            "kind": rec.kind,
        }
        cols = [c for c, _ in RUN_SQL]
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for table in ("jobs", "timeline", "items", "files"):
                c.execute(f"DELETE FROM {table} WHERE run_key = ?", (rec.key,))
            c.execute(f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) "
                      f"VALUES ({', '.join('?' * len(cols))})", [row.get(k) for k in cols])
            if rec.jobs is not None:
                self._insert_rows("jobs", rec.key, rec.jobs, JOB_SQL)
            if rec.timeline is not None:
                self._insert_rows("timeline", rec.key, rec.timeline, TIMELINE_SQL)
            if rec.items is not None:
                self._insert_rows("items", rec.key, _item_rows(rec.items), ITEM_SQL)
            for name, content in (rec.files or {}).items():
                c.execute("INSERT INTO files (run_key, name, content) VALUES (?, ?, ?)",
                          (rec.key, name, zlib.compress(content, 6)))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _insert_rows(self, table: str, key: str, df: pd.DataFrame,
                     spec: Sequence[tuple[str, str]]) -> None:
        cols = [c for c, _ in spec]
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{table} rows lack columns {missing}")
        rows = ([key, *(_sql(v) for v in r)] for r in df[cols].itertuples(index=False))
        self.conn.executemany(
            f"INSERT INTO {table} (run_key, {', '.join(cols)}) "
            f"VALUES ({', '.join('?' * (len(cols) + 1))})", rows)

    # ------------------------------------------------------------------ reading
    def statuses(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """key -> status for the given keys that are stored (all runs if ``keys`` is None)."""
        if keys is None:
            return dict(self.conn.execute("SELECT key, status FROM runs").fetchall())
        out: dict[str, str] = {}
        for chunk in _chunks(list(keys)):
            out.update(self.conn.execute(
                f"SELECT key, status FROM runs WHERE key IN ({', '.join('?' * len(chunk))})",
                chunk).fetchall())
        return out

    def runs(self, keys: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of ``runs`` (all, or those of ``keys`` in that order), with ``scenario``
        and ``summary`` parsed into dicts (``None`` for a failed run's summary, ``error``
        ``None`` for a done run's)."""
        df = self._select("runs", "key", keys)
        df["scenario"] = [json.loads(s) for s in df["scenario"]]
        # pandas may read a NULL as NaN (a string column whose first value is NULL)
        df["summary"] = [json.loads(s) if isinstance(s, str) else None for s in df["summary"]]
        df["error"] = pd.Series([e if isinstance(e, str) else None for e in df["error"]],
                                index=df.index, dtype=object)
        return df

    def jobs(self, keys: Sequence[str] | None = None) -> pd.DataFrame:
        """Job rows of the given runs (all if ``None``), ordered by run then ``idx``.

        ``best_effort`` comes back as bool and ``deadline_met`` as True/False/None, as in
        :func:`sim.metrics.summary.job_table`.
        """
        df = self._select("jobs", "run_key", keys, order="idx")
        df["best_effort"] = df["best_effort"].astype(bool)
        df["deadline_met"] = pd.Series(
            [None if pd.isna(v) else bool(v) for v in df["deadline_met"]],
            index=df.index, dtype=object)
        return df

    def items(self, keys: Sequence[str] | None = None) -> pd.DataFrame:
        """Item rows (tasks) of the given runs (all if ``None``), by run then ``idx``: the
        columns ``run_key``, ``idx``, :data:`ITEM_COLUMNS`, then the kind's own columns
        (from ``data``, in the order the run gave them)."""
        df = self._select("items", "run_key", keys, order="idx")
        extra = pd.DataFrame([json.loads(d) if isinstance(d, str) else {} for d in df["data"]],
                             index=df.index)
        return pd.concat([df.drop(columns="data"), extra], axis=1)

    def files(self, key: str) -> dict[str, bytes]:
        """The files stored with one run: name -> content (empty for a GPU-job run)."""
        rows = self.conn.execute("SELECT name, content FROM files WHERE run_key = ? "
                                 "ORDER BY name", (key,)).fetchall()
        return {name: zlib.decompress(content) for name, content in rows}

    def timeline(self, key: str) -> pd.DataFrame:
        """One run's timeline (columns of :data:`TIMELINE_SQL`), in time order."""
        return self._select("timeline", "run_key", [key], order="time_s").drop(
            columns="run_key")

    def table(self, name: str) -> pd.DataFrame:
        """A whole table as stored (one of :data:`TABLES`), for export."""
        if name not in TABLES:
            raise ValueError(f"no table {name!r}")
        return pd.read_sql_query(f"SELECT * FROM {name}", self.conn)

    def _select(self, table: str, key_col: str, keys: Sequence[str] | None,
                order: str | None = None) -> pd.DataFrame:
        tail = f" ORDER BY {order}" if order else ""
        if keys is None:
            lead = f" ORDER BY {key_col}, {order}" if order else ""
            return pd.read_sql_query(f"SELECT * FROM {table}{lead}", self.conn)
        keys = list(keys)
        parts = [pd.read_sql_query(
            f"SELECT * FROM {table} WHERE {key_col} IN ({', '.join('?' * len(chunk))}){tail}",
            self.conn, params=chunk) for chunk in _chunks(keys)]
        if not parts:
            return pd.read_sql_query(f"SELECT * FROM {table} WHERE 0", self.conn)
        df = pd.concat(parts, ignore_index=True)
        # keep the caller's key order (a grid's order), then the row order within a run
        rank = {k: i for i, k in enumerate(keys)}
        df["_rank"] = df[key_col].map(rank)
        return (df.sort_values("_rank", kind="stable").drop(columns="_rank")
                .reset_index(drop=True))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _item_rows(items: pd.DataFrame) -> pd.DataFrame:
    """A kind's item table as ``items`` rows: ``idx`` by position, own columns as JSON."""
    own = [c for c in items.columns if c not in ITEM_COLUMNS]
    out = pd.DataFrame({c: items[c] if c in items.columns else None for c in ITEM_COLUMNS},
                       index=items.index)
    out.insert(0, "idx", range(len(items)))
    out["data"] = [json.dumps({c: _sql(v) for c, v in zip(own, r)}, allow_nan=False)
                   for r in items[own].itertuples(index=False)] if own else None
    return out.reset_index(drop=True)


def _normalise(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _normalise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_normalise(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"non-finite number {obj!r} in a scenario")
        return int(obj) if obj.is_integer() else obj
    raise TypeError(f"cannot put {type(obj).__name__} {obj!r} in a run key")


def _num(x: float) -> str:
    return f"{x:g}"


def _num_gpus(cluster: dict[str, Any]) -> int | None:
    try:
        return int(cluster["num_switch"] * cluster["nodes_per_switch"] * cluster["gpus_per_node"])
    except (KeyError, TypeError):
        return None


def _sql(v: Any) -> Any:
    """A pandas/numpy cell as an SQLite value (NaN/NA -> NULL, numpy scalars -> Python)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        v = v.item()  # numpy scalar
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(keys), _CHUNK):
        yield keys[i:i + _CHUNK]
