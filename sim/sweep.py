"""Sweeps: a grid of scenarios, each run at most once, results in the store.

A grid file is YAML with a ``base`` scenario of any kind (:mod:`sim.kinds`; GPU jobs
take the keys of :mod:`sim.scenario`) and ``vary``, a mapping from scenario keys to
lists of values; the kind is recognised from the keys of ``base``, ``vary`` and
``--set`` together::

    name: fig9                       # optional label (default: the file stem)
    base:
      trace: {generate: {num_jobs: 1000, lam: 1500, seed: 0}}
      gpu_type: A100
      slot_s: 240
      preset: elasticflow-artifact
    vary:
      cluster: [n8g8, n16g8, n32g8]
      policy: [edf, edf-accessctrl, ef, ef-accessctrl]
      # dotted keys reach into mappings:   params.use_requested_gpus: [false, true]
      # keys joined by commas vary together, one list per value:
      #   trace,cluster: [[../traces/cluster01.csv, n64g8], [../traces/cluster04.csv, n128g8]]

The runs are the cross product of the ``vary`` entries, in file order (the last entry
varies fastest). Relative paths resolve against the grid file's folder.

Contract of :func:`run_sweep`:

* every run is identified by :func:`sim.store.run_key` of its resolved scenario
  (:func:`resolve_scenario`); runs already ``done`` in the store are skipped, ``failed``
  ones are retried;
* all input is validated before anything runs or the store is opened (:func:`load_grid`
  raises one :class:`~sim.errors.InputError` naming the grid file, line and field);
  errors that arise while simulating are recorded as ``failed`` runs with their
  traceback, and the sweep goes on;
* runs execute in :func:`execute_run`, in this process (one worker, no scheduler) or
  on Dask workers (a ``LocalCluster`` of one single-threaded process per core, or an
  existing scheduler); workers only compute and return a
  :class:`~sim.store.RunRecord`, the calling process alone writes the store, one
  transaction per run as each result arrives, so Ctrl-C loses no finished run (on
  Ctrl-C, runs the workers already finished are collected before stopping).

With ``--scheduler``, the workers must have clustersim installed and see the trace
files at the same absolute paths (a shared file system).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import itertools
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim import kinds
from sim.errors import InputError
from sim.scenario import Scenario, _line_map, read_yaml, set_dotted
from sim.store import GPU_KIND, RunRecord, Store, canonical_json, key_version, run_key
from sim.traces.generate import generate_trace

GRID_KEYS = {
    "name": "label of the grid (default: the file stem)",
    "base": "the scenario every run starts from",
    "vary": "scenario key (dotted, or several joined by commas) -> list of values",
}


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: its key, the validated scenario ready to run anywhere (trace
    and cluster files as absolute paths), the resolved scenario the key hashes, the
    ``vary`` values that distinguish it from the grid's other runs, and its scenario
    kind (:mod:`sim.kinds`)."""

    key: str
    name: str
    scenario: Any
    resolved: dict[str, Any]
    coords: dict[str, Any]
    kind: str = GPU_KIND

    @property
    def where(self) -> str:
        """``key=value, ...`` of its ``vary`` values (its name if it has none)."""
        return ", ".join(f"{k}={v}" for k, v in self.coords.items()) or self.name


@dataclass
class Grid:
    name: str
    source: str
    runs: list[RunSpec]
    axes: list[str] = field(default_factory=list)  # the vary keys (dotted), in file order


@dataclass
class SweepReport:
    """What :func:`run_sweep` did: ``total`` runs, ``skipped`` (already done), and the
    keys it ran, split into done and failed (with the error's first line)."""

    total: int
    skipped: int
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------- grid files
def load_grid(path: str | Path, overrides: Sequence[str] = ()) -> Grid:
    """Read, expand and validate a grid file; ``overrides`` (``key=value``, as ``--set``)
    apply to every run after ``vary``.

    Raises:
        InputError: missing file, bad YAML, unknown key, a value of the wrong type,
            missing trace or cluster file, malformed trace: naming file, line and field.
    """
    path = Path(path)
    data, text = read_yaml(path, "grid")
    return grid_from_dict(data, source=str(path), lines=_line_map(text),
                          base_dir=str(path.parent), overrides=overrides,
                          default_name=path.stem)


def grid_from_dict(
    data: Any,
    *,
    source: str = "<grid>",
    lines: dict[tuple[str, ...], int] | None = None,
    base_dir: str = ".",
    overrides: Sequence[str] = (),
    default_name: str = "grid",
) -> Grid:
    """Expand a grid mapping into validated, resolved :class:`RunSpec` objects."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise InputError("a grid must be a mapping with 'base' and 'vary'", file=source, line=1)
    for k in data:
        if k not in GRID_KEYS:
            raise InputError(f"unknown grid key {k!r}; valid keys: {', '.join(GRID_KEYS)}",
                             file=source, line=lines.get((str(k),)), field=str(k))
    base = data.get("base")
    if not isinstance(base, dict):
        raise InputError("'base' must be a mapping of scenario keys", file=source,
                         line=lines.get(("base",)), field="base")
    vary = data.get("vary") or {}
    if not isinstance(vary, dict):
        raise InputError("'vary' must map scenario keys to lists of values", file=source,
                         line=lines.get(("vary",)), field="vary")
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise InputError("'name' must be a string", file=source, line=lines.get(("name",)),
                         field="name")
    # the kind from the keys every run has: base's, vary's and --set's
    tops = [str(k).split(".")[0].strip() for ks in vary for k in str(ks).split(",")]
    tops += [o.split("=", 1)[0].strip().split(".")[0] for o in overrides]
    try:
        kind = kinds.kind_of({**dict.fromkeys(tops), **base}, source)
    except InputError as e:
        raise InputError(f"'base' is {e.message}", file=source, line=lines.get(("base",)),
                         field="base") from None
    keys = kind.keys
    for o in overrides:
        top = o.split("=", 1)[0].strip().split(".")[0]
        if "=" not in o or top not in keys:
            raise InputError(f"--set expects KEY=VALUE with KEY one of {', '.join(keys)}, "
                             f"got {o!r}", field="--set")

    axes = _axes(vary, source, lines, keys)
    base_lines = {k[1:]: v for k, v in lines.items() if len(k) > 1 and k[0] == "base"}
    cache: dict[str, Any] = {}
    runs: list[RunSpec] = []
    seen: dict[str, dict] = {}
    for combo in itertools.product(*(values for _, _, values in axes)):
        d = copy.deepcopy(base)
        run_lines = dict(base_lines)
        coords: dict[str, Any] = {}
        for (paths, line, _), value in zip(axes, combo):
            for p, v in zip(paths, value):
                _assign(d, p, copy.deepcopy(v), source, line)
                coords[p] = v
                run_lines[tuple(p.split("."))] = line
                run_lines.setdefault((p.split(".")[0],), line)
        for o in overrides:
            set_dotted(d, o)
            path = tuple(o.split("=", 1)[0].strip().split("."))
            for k in [k for k in run_lines if k[:len(path)] == path] + [path]:
                run_lines[k] = "--set"
        d.setdefault("name", name)
        try:
            if kinds.kind_of(d, source) is not kind:
                raise InputError(f"vary turns the {kind.name} scenario of 'base' into another "
                                 f"kind", field="vary")
            scn = kind.from_dict(d, source=source,
                                 lines={k: v for k, v in run_lines.items() if v != "--set"},
                                 base_dir=Path(base_dir))
            resolved, runnable = kind.resolve(scn, cache)
        except InputError as e:
            raise _relocate(e, source, run_lines, coords) from None
        key = run_key(resolved)
        if key in seen:  # two grid points that are the same run: run (and draw) it once
            continue
        seen[key] = coords
        runs.append(RunSpec(key, scn.name, runnable, resolved, coords, kind.name))
    return Grid(name=name, source=source, runs=runs,
                axes=[p for paths, _, _ in axes for p in paths])


def runs_grid(name: str, runs: Sequence[tuple[str, str | Path, Sequence[str]]],
              overrides: Sequence[str] = ()) -> Grid:
    """A grid of named runs, each a scenario file (of any kind) with its own ``--set``
    overrides, then ``overrides`` (every run). A figure set declares its runs this way.

    Each run's ``name`` is its label and ``coords`` is ``{"run": label}``. Validates
    every file before returning (the first problem is one InputError).
    """
    cache: dict[str, Any] = {}
    out: list[RunSpec] = []
    seen: set[str] = set()
    for label, path, sets in runs:
        kind, scn = kinds.load(path, [*sets, *overrides])
        resolved, runnable = kind.resolve(scn, cache)
        key = run_key(resolved)
        if key not in seen:
            seen.add(key)
            out.append(RunSpec(key, label, runnable, resolved, {"run": label}, kind.name))
    return Grid(name=name, source=name, runs=out, axes=["run"])


def _axes(vary: dict, source: str, lines: dict,
          keys: Any) -> list[tuple[list[str], int | None, list]]:
    """``vary`` as (dotted paths, line, list of value tuples), validated."""
    axes = []
    used: set[str] = set()
    for raw_key, values in vary.items():
        line = lines.get(("vary", str(raw_key)))
        where = {"file": source, "line": line, "field": f"vary.{raw_key}"}
        paths = [p.strip() for p in str(raw_key).split(",")]
        for p in paths:
            top = p.split(".")[0]
            if top not in keys or top == "name" or not all(p.split(".")):
                raise InputError(f"unknown scenario key {p!r} in vary; valid keys: "
                                 f"{', '.join(k for k in keys if k != 'name')}", **where)
            clash = [u for u in used if u == p or u.startswith(p + ".") or p.startswith(u + ".")]
            if clash:
                raise InputError(f"{p!r} overlaps {clash[0]!r}, varied elsewhere", **where)
            used.add(p)
        if not isinstance(values, list) or not values:
            raise InputError("vary values must be a non-empty list", **where)
        if len(paths) == 1:
            tuples = [(v,) for v in values]
        else:
            bad = [v for v in values if not isinstance(v, list) or len(v) != len(paths)]
            if bad:
                raise InputError(f"each value of {raw_key!r} must be a list of {len(paths)} "
                                 f"({', '.join(paths)}), got {bad[0]!r}", **where)
            tuples = [tuple(v) for v in values]
        axes.append((paths, line, tuples))
    return axes


def _assign(d: dict, dotted: str, value: Any, source: str, line: int | None) -> None:
    parts = dotted.split(".")
    cur = d
    for i, p in enumerate(parts[:-1]):
        nxt = cur.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise InputError(f"cannot set {dotted!r}: {'.'.join(parts[:i + 1])!r} in base is "
                             f"not a mapping", file=source, line=line, field=f"vary.{dotted}")
        cur = nxt
    cur[parts[-1]] = value


def _relocate(e: InputError, source: str, run_lines: dict, coords: dict) -> InputError:
    """Point an error about one run's scenario at the grid line that set the field."""
    if e.file not in (None, "", source):  # about another file (a trace): already precise
        return e
    line, fld, file = e.line, e.field, source
    if fld:
        cands = [(fld,), tuple(fld.split(".")), ("params", fld)]
        cands += sorted(k for k in run_lines if k[-1] == fld.split(".")[-1])
        for c in cands:
            if c in run_lines and (line is None or run_lines[c] == "--set"):
                line, fld = run_lines[c], ".".join(c)
                break
    msg = e.message
    if line == "--set":  # the value came from the command line, not the file
        line, fld, file = None, f"--set {fld}", None
    if coords:
        msg += " (in the run with " + ", ".join(f"{k}={v}" for k, v in coords.items()) + ")"
    return InputError(msg, file=file, line=line, field=fld)


# ---------------------------------------------------------------- resolution
_GEN_PARAMS = inspect.signature(generate_trace).parameters
_GEN_REQUIRED = [n for n, p in _GEN_PARAMS.items() if p.default is inspect.Parameter.empty]
_GEN_DEFAULTS = {n: p.default for n, p in _GEN_PARAMS.items()
                 if p.default is not inspect.Parameter.empty and n != "table"}


def resolve_scenario(scn: Scenario) -> tuple[dict[str, Any], Scenario]:
    """(resolved scenario, runnable scenario) for one validated scenario.

    The resolved scenario is what :func:`sim.store.run_key` hashes (see :mod:`sim.store`
    for its fields). The runnable scenario has the trace and cluster files as absolute
    paths and the GPU type filled in, so a worker in another folder runs the same thing.
    Reads every input once to validate it.

    Raises:
        InputError: missing or malformed trace or cluster, bad generator arguments.
    """
    return _Resolver().resolve(scn)


class _Resolver:
    """:func:`resolve_scenario` with per-grid caches (a trace is hashed and read once)."""

    def __init__(self) -> None:
        self._sha: dict[str, str] = {}
        self._checked: set[str] = set()

    def resolve(self, scn: Scenario) -> tuple[dict[str, Any], Scenario]:
        from sim import registry
        from sim.model.cluster_io import cluster_from_dict, load_cluster
        from sim.model.throughput import bundled_table
        from sim.traces import read_trace

        cluster_ref: str | dict
        if isinstance(scn.cluster, dict):
            cluster = cluster_from_dict(scn.cluster, source=scn.source or "<scenario>")
            cluster_ref = scn.cluster
        else:
            p = scn.path(scn.cluster)
            try:
                cluster = load_cluster(p if p.exists() else scn.cluster)
            except InputError as e:
                if e.file != scn.cluster:  # a problem inside an existing spec file
                    raise
                raise InputError(f"{scn.cluster!r}: {e.message}", field="cluster") from None
            src = Path(cluster.source) if cluster.source else None
            cluster_ref = str(src.resolve()) if src and src.is_file() else scn.cluster
        cluster_d = dataclasses.asdict(cluster)
        cluster_d.pop("source")
        gpu_type = scn.gpu_type or cluster.gpu_type or "A100"

        trace_ref: str | dict
        if isinstance(scn.trace, dict):
            gen = {**_GEN_DEFAULTS, "seed": scn.seed, **scn.trace["generate"]}
            gen.pop("gpu_type", None)  # the table follows the scenario's GPU type (runner)
            missing = [n for n in _GEN_REQUIRED if n not in gen]
            if missing:
                raise InputError(f"trace.generate needs {', '.join(missing)}",
                                 field="trace.generate")
            check = canonical_json([gen, gpu_type])
            if check not in self._checked:
                generate_trace(table=bundled_table(gpu_type), **gen)
                self._checked.add(check)
            trace_d: dict[str, Any] = {"generate": gen}
            trace_ref = scn.trace
        else:
            p = scn.path(scn.trace)
            if not p.is_file():
                raise InputError(f"trace file not found: {scn.trace}", field="trace")
            p = p.resolve()
            sha = self._sha.get(str(p))
            if sha is None:
                sha = self._sha[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            check = canonical_json([str(p), gpu_type, cluster_d])
            if check not in self._checked:
                read_trace(p, table=bundled_table(gpu_type), cluster=cluster)
                self._checked.add(check)
            trace_d = {"file": p.name, "sha256": sha}
            trace_ref = str(p)

        params = registry.get(scn.policy).make_params(scn.params, source=scn.source)
        resolved = {
            "version": key_version(),
            "trace": trace_d,
            "cluster": cluster_d,
            "gpu_type": gpu_type,
            "policy": scn.policy,
            "params": dataclasses.asdict(params),
            "slot_s": scn.slot_s,
            "preset": scn.preset,
            "seed": scn.seed,
            "comm": scn.comm,
            "horizon_s": scn.horizon_s,
        }
        canonical_json(resolved)  # fails early on anything a key cannot hold
        runnable = dataclasses.replace(scn, trace=trace_ref, cluster=cluster_ref,
                                       gpu_type=gpu_type)
        return resolved, runnable


# ---------------------------------------------------------------- one run (worker side)
def execute_run(spec: RunSpec) -> RunRecord:
    """Run one scenario and return its record; never raises for a failing simulation.

    Runs in a Dask worker (or in-process) through the run's kind (:mod:`sim.kinds`):
    simulates, summarises, and builds what the store keeps (jobs and the timeline with
    its cluster-efficiency column, or items and files). An exception becomes a
    ``failed`` record carrying its traceback. ``KeyboardInterrupt`` propagates.
    """
    started = _now()
    t0 = time.perf_counter()
    try:
        kind = kinds.get(spec.kind)
        res = kind.run(spec.scenario)
        summary = kind.summary(res)
        items = kind.items(res)
        if spec.kind == GPU_KIND:  # the store's typed jobs table, and the timeline
            extra: dict[str, Any] = {"jobs": items, "timeline": kind.timeline(res)}
        else:
            extra = {"items": items, "files": kind.files(res)}
        return RunRecord(spec.key, spec.resolved, spec.name, "done", None, started, _now(),
                         time.perf_counter() - t0, summary, kind=spec.kind, **extra)
    except Exception as e:  # recorded, not raised: the sweep goes on
        error = f"{type(e).__name__}: {e}\n\n{traceback.format_exc()}"
        return RunRecord(spec.key, spec.resolved, spec.name, "failed", error, started, _now(),
                         time.perf_counter() - t0, kind=spec.kind)


_HOLD = frozenset({"started", "resized", "resumed"})
_RELEASE = frozenset({"stopped", "finished", "unfinished"})


def cluster_efficiency(events: pd.DataFrame, specs: Sequence[Any], table: Any,
                       times: np.ndarray, num_gpus: int) -> np.ndarray:
    """Cluster efficiency at each of ``times`` (POLICIES.md 1.7): sum over jobs holding
    GPUs of ``tput(model, batch, g) / tput(model, batch, 1)``, divided by ``num_gpus``.

    Reconstructed from the event log (GPU counts change only at ``started``, ``resized``,
    ``resumed``, ``stopped``, ``finished``), taking the state after every event at a time.
    A table without a 1-GPU rate scales linearly from the smallest allowed level.
    """
    by_id = {s.job_id: s for s in specs}
    cache: dict[tuple[str, int, int], float] = {}
    held: dict[str, float] = {}
    ts: list[float] = []
    deltas: list[float] = []
    ev = events[events["event"].isin(_HOLD | _RELEASE)]
    for t, kind, jid, g in ev[["time_s", "event", "job_id", "gpus"]].itertuples(index=False):
        s = by_id[jid]
        g = int(g) if kind in _HOLD else 0
        k = (s.model, s.batch_size, g)
        e = cache.get(k)
        if e is None:
            e = cache[k] = _efficiency(table, s.model, s.batch_size, g)
        prev = held.get(jid, 0.0)
        if e != prev:
            ts.append(float(t))
            deltas.append(e - prev)
            held[jid] = e
    if not ts:
        return np.zeros(len(times))
    order = np.argsort(np.asarray(ts), kind="stable")
    t_sorted = np.asarray(ts)[order]
    level = np.cumsum(np.asarray(deltas)[order])
    pos = np.searchsorted(t_sorted, np.asarray(times, dtype=float), side="right") - 1
    out = np.where(pos >= 0, level[np.clip(pos, 0, None)], 0.0) / num_gpus
    return np.round(out, 12)


def _efficiency(table: Any, model: str, batch: int, g: int) -> float:
    if g <= 0:
        return 0.0
    try:
        rate_g = table.rate(model, batch, g)
        base = table.rate(model, batch, 1)
        if base > 0:
            return rate_g / base
        levels = table.levels(model, batch)
        if levels and table.rate(model, batch, levels[0]) > 0:
            return rate_g * levels[0] / table.rate(model, batch, levels[0])
    except KeyError:
        pass
    return float(g)


# ---------------------------------------------------------------- the sweep (client side)
def run_sweep(
    runs: Sequence[RunSpec],
    store: Store,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | str = False,
    label: str = "sweep",
    on_failure: Callable[[RunSpec, str], None] | None = None,
    client: Any = None,
) -> SweepReport:
    """Run every run of ``runs`` not yet ``done`` in ``store``, writing each as it ends.

    Args:
        workers: Dask worker processes (default: one per core). With 1 (or one run to do)
            and no ``scheduler``, runs execute serially in this process.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``).
        progress: ``True`` (or ``"bar"``): a tqdm bar on stderr with runs done, failed
            and remaining, elapsed time and ETA; ``"lines"``: the same as one plain line
            per finished run (for logs: stderr not a terminal); ``False``: nothing.
        on_failure: called with each failed run and its error's first line.
        client: a Dask client to use (see :func:`dask_client`; several sweeps can share
            one), instead of ``workers`` and ``scheduler``.

    Raises:
        KeyboardInterrupt: after writing every run that had finished.
        InputError: the scheduler cannot be reached.
    """
    statuses = store.statuses(r.key for r in runs)
    todo = [r for r in runs if statuses.get(r.key) != "done"]
    report = SweepReport(total=len(runs), skipped=len(runs) - len(todo))
    if not todo:
        return report
    from tqdm import tqdm

    def status() -> str:
        left = len(todo) - len(report.done) - len(report.failed)
        skipped = f", {report.skipped} already done" if report.skipped else ""
        return f"done {len(report.done)}, failed {len(report.failed)}, remaining {left}{skipped}"

    # redrawn at every finished run (mininterval=0): runs are seconds to hours apart
    lines = progress == "lines"
    bar = tqdm(total=len(todo), desc=label, unit="run", file=sys.stderr,
               disable=not progress or lines, leave=False, mininterval=0, postfix=status())
    t0 = time.monotonic()

    def record(spec: RunSpec, rec: RunRecord) -> None:
        store.put(rec)
        if rec.status == "done":
            report.done.append(spec.key)
        else:
            first = (rec.error or "").splitlines()[0] if rec.error else "unknown error"
            report.failed.append((spec.key, first))
            if on_failure is not None:
                on_failure(spec, first)
        bar.set_postfix_str(status(), refresh=False)
        bar.update(1)
        if lines:
            n_end = len(report.done) + len(report.failed)
            el = time.monotonic() - t0
            eta = el / n_end * (len(todo) - n_end)
            print(f"{label}: {n_end}/{len(todo)} ({status()}); {rec.status} {spec.where} in "
                  f"{rec.wall_s:.1f} s; elapsed {_hms(el)}, ETA {_hms(eta)}",
                  file=sys.stderr, flush=True)

    n = min(workers if workers is not None else cores(), len(todo))
    try:
        if client is not None:
            _run_dask(todo, record, client)
        elif scheduler is None and n <= 1:
            for spec in todo:
                record(spec, execute_run(spec))
        else:
            with dask_client(n, scheduler) as own:
                _run_dask(todo, record, own)
    finally:
        bar.close()
    return report


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


#: Seconds to wait for ``--scheduler`` to answer before giving up.
SCHEDULER_TIMEOUT_S = 10


@contextmanager
def dask_client(workers: int, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: on ``scheduler`` if given, else on a new ``LocalCluster`` of
    ``workers`` single-threaded worker processes (closed on exit).

    Raises:
        InputError: the scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
        except ValueError as e:  # malformed address: no port, unknown scheme
            raise InputError(f"bad Dask scheduler address {scheduler!r} ({e}); expected "
                             f"e.g. tcp://host:8786", field="--scheduler") from None
        except (OSError, TimeoutError) as e:
            raise InputError(f"cannot reach Dask scheduler {scheduler}: {e}",
                             field="--scheduler") from None
        try:
            yield client
        finally:
            client.close()
        return
    # Worker processes inherit an ignored SIGINT: Ctrl-C reaches only this process, which
    # collects finished runs and then shuts the workers down (a worker dying of Ctrl-C
    # first would lose its finished result and spray tracebacks).
    main = threading.current_thread() is threading.main_thread()
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        # the compiled ef kernels use a thread per core; workers share the cores
        n = max(1, workers)
        threads = str(max(1, (os.cpu_count() or 1) // n))
        cluster = LocalCluster(n_workers=n, processes=True, threads_per_worker=1,
                               dashboard_address=":0", silence_logs=logging.ERROR,
                               env={"NUMBA_NUM_THREADS": threads})
    finally:
        if main:
            signal.signal(signal.SIGINT, handler)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _run_dask(todo: Sequence[RunSpec], record: Callable[[RunSpec, RunRecord], None],
              client: Any) -> None:
    from distributed import as_completed

    futures: dict[Any, RunSpec] = {}
    written: set[str] = set()

    def collect(fut: Any, spec: RunSpec, submitted: str) -> None:
        try:
            rec = fut.result()
        except Exception as e:  # the worker died or the task could not run
            rec = RunRecord(spec.key, spec.resolved, spec.name, "failed",
                            f"{type(e).__name__}: {e}", submitted, _now(), 0.0, kind=spec.kind)
        record(spec, rec)
        written.add(spec.key)
        fut.release()

    submitted = _now()
    try:
        for spec in todo:
            futures[client.submit(execute_run, spec, pure=False)] = spec
        for fut in as_completed(futures):
            collect(fut, futures[fut], submitted)
    except KeyboardInterrupt:
        # keep what the workers already finished, then stop
        for fut, spec in futures.items():
            if spec.key not in written and fut.status == "finished":
                collect(fut, spec, submitted)
        raise
    finally:
        client.cancel([f for f, spec in futures.items() if spec.key not in written])


def cores() -> int:
    """CPU cores this process may use (the default number of workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
