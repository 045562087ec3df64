"""Scenario kinds: one registry of the kinds of work a scenario file can describe.

Who uses it: ``clustersim run`` (one scenario), :mod:`sim.sweep` (grids, and the runs a
figure set needs, into the results store) and the figure sets through the store. Each
kind declares, in one :class:`Kind` object,

* how to **recognise** its YAML (:meth:`Kind.matches`: its marker keys) and which
  top-level keys it takes (:attr:`Kind.keys`, for ``vary`` and ``--set``);
* how to **load and validate** it (:meth:`Kind.load`, :meth:`Kind.from_dict`: one
  :class:`~sim.errors.InputError` naming file, line and key) and **resolve** it
  (:meth:`Kind.resolve`: the resolved scenario a run key hashes, see :mod:`sim.store`);
* how to **run** it (:meth:`Kind.run`) and **summarise** it: a summary dict
  (:meth:`Kind.summary`) and a per-item table, jobs or tasks (:meth:`Kind.items`), plus
  the run-folder files its figures read back from the store (:meth:`Kind.files`);
* how ``clustersim run`` **writes** its run folder (:meth:`Kind.write`) and what it
  **prints** (:meth:`Kind.describe`).

The kinds: ``gpu-jobs`` (:mod:`sim.scenario`, :mod:`sim.runner`), ``tasks``
(:mod:`sim.taskrun`), ``pools`` (:mod:`sim.poolrun`), ``threeways`` and ``dragon``
(:mod:`sim.workloads`). The engine is imported only when a kind runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sim.errors import InputError
from sim.scenario import read_scenario
from sim.store import GPU_KIND, canonical_json, key_version

Progress = Callable[[float, int, int], None]


class Kind:
    """One kind of scenario; subclasses fill in the hooks. Instances are stateless."""

    #: registry name, also the store's ``runs.kind``
    name: str = ""
    #: what one row of its per-item table is (progress bars, messages)
    item: str = "task"
    #: the keys that mark a file as this kind, for the no-match error
    signature: str = ""
    #: top-level scenario keys -> help
    keys: Mapping[str, str] = {}
    #: run-folder files kept in the store for the figures (besides the summary)
    stored_files: tuple[str, ...] = ()
    #: summary keys ``clustersim sweep`` shows per run
    columns: tuple[str, ...] = ("makespan_s", "wall_s")

    def matches(self, data: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def load(self, path: Path, overrides: Sequence[str] = ()) -> Any:
        """Read and validate a scenario file of this kind (``--set`` overrides applied)."""
        data, lines = read_scenario(path, overrides)
        return self.from_dict(data, source=str(path), lines=lines, base_dir=path.parent)

    def from_dict(self, data: dict[str, Any], *, source: str = "",
                  lines: dict[tuple[str, ...], int] | None = None,
                  base_dir: Path | None = None) -> Any:
        raise NotImplementedError

    def resolve(self, scn: Any, cache: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """(resolved scenario, runnable scenario). The resolved scenario holds everything
        that can change the result (``kind`` and ``version`` included) and not the name;
        the runnable one runs anywhere (absolute paths). ``cache`` lives for one grid."""
        raise NotImplementedError

    def label(self, scn: Any) -> str:
        return str(scn.name)

    def default_out(self, scn: Any) -> str:
        return f"results/{scn.name}"

    def run(self, scn: Any, progress: Progress | None = None) -> Any:
        raise NotImplementedError

    def run_real(self, scn: Any, out: Path, scheduler: str | None,
                 progress: Progress | None) -> Any:
        """Run on actual workers, writing ``out``; kinds without a real mode refuse."""
        raise InputError(f"--real is not available for {self.name} scenarios", field="--real")

    def summary(self, res: Any) -> dict[str, Any]:
        return dict(res.summary)

    def items(self, res: Any) -> pd.DataFrame:
        raise NotImplementedError

    def timeline(self, res: Any) -> pd.DataFrame | None:
        return None

    def write(self, res: Any, out: Path) -> Path:
        raise NotImplementedError

    def files(self, res: Any) -> dict[str, bytes]:
        """The :attr:`stored_files` of the run folder :meth:`write` would write."""
        if not self.stored_files:
            return {}
        with tempfile.TemporaryDirectory() as tmp:
            d = self.write(res, Path(tmp) / "run")
            return {f: (d / f).read_bytes() for f in self.stored_files if (d / f).is_file()}

    def describe(self, res: Any) -> list[str]:
        return table_lines([self.summary(res)], list(self.columns))


# ------------------------------------------------------------------ the kinds
class GpuJobs(Kind):
    name = GPU_KIND
    item = "job"
    signature = "trace (and cluster, policy, ...)"
    columns = ("deadline_satisfactory_ratio", "jct_mean_s", "be_jct_mean_s", "wall_s")

    @property
    def keys(self) -> Mapping[str, str]:  # type: ignore[override]
        from sim.scenario import KEYS

        return {k: h for k, (_, h) in KEYS.items()}

    def matches(self, data: Mapping[str, Any]) -> bool:
        return "trace" in data

    def from_dict(self, data: dict[str, Any], *, source: str = "",
                  lines: dict[tuple[str, ...], int] | None = None,
                  base_dir: Path | None = None) -> Any:
        from sim.scenario import scenario_from_dict

        return scenario_from_dict(data, source=source, lines=lines,
                                  base_dir=str(base_dir) if base_dir is not None else ".")

    def resolve(self, scn: Any, cache: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        from sim.sweep import _Resolver

        resolver = cache.setdefault("gpu-resolver", _Resolver())
        return resolver.resolve(scn)

    def default_out(self, scn: Any) -> str:
        return f"results/{scn.name}-{scn.policy}"

    def label(self, scn: Any) -> str:
        return str(scn.policy)

    def run(self, scn: Any, progress: Progress | None = None) -> Any:
        from sim import runner

        p = runner.prepare(scn)
        return GpuRun(p, runner.run_prepared(p, progress=progress))

    def run_real(self, scn: Any, out: Path, scheduler: str | None,
                 progress: Progress | None) -> Any:
        from sim.real.run import run_real_to

        return GpuRun(None, run_real_to(scn, out, scheduler=scheduler, progress=progress))

    def summary(self, res: Any) -> dict[str, Any]:
        return dict(res.result.summary)

    def items(self, res: Any) -> pd.DataFrame:
        return res.result.jobs

    def timeline(self, res: Any) -> pd.DataFrame | None:
        from sim.sweep import cluster_efficiency

        p, r = res.prepared, res.result
        tl = r.timeline.copy()
        tl["ce"] = cluster_efficiency(r.events, p.jobs, p.table, tl["time_s"].to_numpy(),
                                      p.cluster.num_gpus)
        return tl

    def write(self, res: Any, out: Path) -> Path:
        from sim.runner import write_run

        return write_run(res.result, out)

    def describe(self, res: Any) -> list[str]:
        return summary_lines([res.result.summary])


@dataclasses.dataclass
class GpuRun:
    """A GPU-job run: its prepared inputs (``None`` for a real run) and result."""

    prepared: Any
    result: Any


class Tasks(Kind):
    name = "tasks"
    signature = "workload: {taskvine_log: FILE} (no pools)"
    stored_files = ("transactions", "completions.csv")
    columns = ("policy", "tasks", "done", "failed", "t10_s", "t50_s", "t90_s", "t100_s",
               "wall_s")

    @property
    def keys(self) -> Mapping[str, str]:  # type: ignore[override]
        from sim.taskrun import KEYS

        return {k: h for k, (_, h) in KEYS.items()}

    def matches(self, data: Mapping[str, Any]) -> bool:
        return "workload" in data and "pools" not in data

    def from_dict(self, data: dict[str, Any], *, source: str = "",
                  lines: dict[tuple[str, ...], int] | None = None,
                  base_dir: Path | None = None) -> Any:
        from sim.taskrun import task_scenario_from_dict

        return task_scenario_from_dict(data, source=source, lines=lines, base_dir=base_dir)

    def resolve(self, scn: Any, cache: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        from sim import registry

        log = Path(scn.log).resolve()
        d = scn.resolved()
        d.pop("name")
        d["workload"]["taskvine_log"] = {"file": log.name, "sha256": _sha256(log, cache)}
        d["params"] = dataclasses.asdict(registry.get(scn.policy).make_params(scn.params))
        return _stamp(self, d), dataclasses.replace(scn, log=str(log))

    def run(self, scn: Any, progress: Progress | None = None) -> Any:
        from sim.taskrun import run_task_scenario

        return run_task_scenario(scn, progress=progress)

    def items(self, res: Any) -> pd.DataFrame:
        return task_table(res.records)

    def write(self, res: Any, out: Path) -> Path:
        from sim.taskrun import write_task_run

        return write_task_run(res, out)

    def describe(self, res: Any) -> list[str]:
        return [f"note: {n}" for n in res.notes] + super().describe(res)


class Pools(Kind):
    name = "pools"
    signature = "pools and workload: {ackley: ...}"
    stored_files = ("transactions", "completions.csv", "events.csv")
    columns = ("score", "seed", "tasks", "done", "best_value", "optimum", "time_to_eps_s",
               "tasks_to_eps", "time_to_best_s", "tasks_to_best", "reprioritisations",
               "makespan_s", "wall_s")

    @property
    def keys(self) -> Mapping[str, str]:  # type: ignore[override]
        from sim.poolrun import KEYS

        return {k: h for k, (_, h) in KEYS.items()}

    def matches(self, data: Mapping[str, Any]) -> bool:
        return "pools" in data

    def from_dict(self, data: dict[str, Any], *, source: str = "",
                  lines: dict[tuple[str, ...], int] | None = None,
                  base_dir: Path | None = None) -> Any:
        from sim.poolrun import pool_scenario_from_dict

        return pool_scenario_from_dict(data, source=source, lines=lines)

    def resolve(self, scn: Any, cache: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        from sim import registry

        d = scn.resolved()
        d.pop("name")
        d["params"] = dataclasses.asdict(registry.get(scn.policy).make_params(scn.params))
        return _stamp(self, d), scn

    def run(self, scn: Any, progress: Progress | None = None) -> Any:
        from sim.poolrun import run_pool_scenario

        return run_pool_scenario(scn, progress=progress)

    def run_real(self, scn: Any, out: Path, scheduler: str | None,
                 progress: Progress | None) -> Any:
        """Ackley evaluations and GP retraining for real on a LocalCluster
        (:mod:`sim.real.pools`), written to ``out`` like a simulated run."""
        from sim.poolrun import write_pool_run
        from sim.real.pools import run_pool_real

        if scheduler:
            raise InputError("--scheduler is not supported for pool scenarios yet (they "
                             "start their own LocalCluster)", field="--scheduler")
        res = run_pool_real(scn, progress=progress)
        write_pool_run(res, out)
        return res

    def items(self, res: Any) -> pd.DataFrame:
        tasks = task_table(res.records).set_index("item_id", drop=False)
        rows = []
        for t, tid, pool, value, best in res.completions:
            rows.append({**tasks.loc[tid].to_dict(), "end_s": t, "pool": pool, "value": value,
                         "best": best})
        return pd.DataFrame(rows)

    def write(self, res: Any, out: Path) -> Path:
        from sim.poolrun import write_pool_run

        return write_pool_run(res, out)


class Workload(Kind):
    """A family of :mod:`sim.workloads`: one top-level section named after it."""

    _module = ""

    @property
    def keys(self) -> Mapping[str, str]:  # type: ignore[override]
        return {k: f"see {self._module}" for k in self._mod().TOP_KEYS}

    def _mod(self) -> Any:
        import importlib

        return importlib.import_module(self._module)

    def matches(self, data: Mapping[str, Any]) -> bool:
        return self.name in data

    def from_dict(self, data: dict[str, Any], *, source: str = "",
                  lines: dict[tuple[str, ...], int] | None = None,
                  base_dir: Path | None = None) -> Any:
        return self._mod().from_dict(data, source=source, lines=lines)

    def resolve(self, scn: Any, cache: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        # the validated section with every default spelled out, and the seed
        return _stamp(self, {self.name: dataclasses.asdict(scn.spec), "seed": scn.seed}), scn

    def run(self, scn: Any, progress: Progress | None = None) -> Any:
        return self._mod().run(scn)

    def write(self, res: Any, out: Path) -> Path:
        return self._mod().write(res, out)


class ThreeWays(Workload):
    name = "threeways"
    signature = "threeways: {strategy, ...}"
    _module = "sim.workloads.threeways"
    stored_files = ("transactions", "completions.csv", "progress.log", "flushes.csv")
    columns = ("strategy", "instances", "makespan_s", "s_per_instance", "flushes", "wall_s")

    def items(self, res: Any) -> pd.DataFrame:
        df = task_table(res.records)
        params = {f"i{n}": c for n, c in enumerate(res.scenario.combos)}
        extra = pd.DataFrame([params.get(i, {}) for i in df["item_id"]], index=df.index)
        return pd.concat([df, extra], axis=1)

    def describe(self, res: Any) -> list[str]:
        lines = res.lines if len(res.lines) <= 6 else [*res.lines[:3], "...", *res.lines[-3:]]
        s = res.summary
        return [*lines,
                f"{s['strategy']}: {s['instances']} instances ({s['skipped']} already stored) "
                f"in {_f(s['makespan_s'])} s, {_f(s['s_per_instance'], 4)} s/instance; "
                f"{s['flushes']} flushes ({_f(s['flush_total_s'], 2)} s)"]


class Dragon(Workload):
    name = "dragon"
    signature = "dragon: {batch_size, workers, costs, ...}"
    _module = "sim.workloads.dragon"
    stored_files = ("transactions", "results.csv", "edges.csv")
    columns = ("tasks", "batch_size", "passes", "makespan_s", "sched_overhead_s", "wall_s")

    def items(self, res: Any) -> pd.DataFrame:
        df = task_table(res.records).set_index("item_id", drop=False)
        rows = []
        for r in res.results.values():
            base = df.loc[r.name].to_dict() if r.name in df.index else {"item_id": r.name}
            rows.append({**base, "status": r.status, "end_s": r.done_s,
                         "rank": res.compiled.ranks[r.name], "error": r.error})
        return pd.DataFrame(rows)

    def describe(self, res: Any) -> list[str]:
        s = res.summary
        return [f"{s['name']}: {s['tasks']} tasks in {s['passes']} compile passes "
                f"(batch {s['batch_size']}, {s['ranking']}): makespan {_f(s['makespan_s'], 2)} "
                f"s, scheduling overhead {_f(s['sched_overhead_s'], 2)} s; ok {s['ok']}, "
                f"errors {s['errors']}, not run {s['skipped']}; edges {s['edges']}",
                *(f"  {r.name}: error: {r.error}" for r in res.results.values()
                  if r.status == "error")]


#: name -> kind, in the order files are matched against them
KINDS: dict[str, Kind] = {k.name: k for k in (GpuJobs(), Tasks(), Pools(), ThreeWays(),
                                              Dragon())}


def get(name: str) -> Kind:
    """The kind called ``name``; an unknown name is an InputError listing the kinds."""
    try:
        return KINDS[name]
    except KeyError:
        raise InputError(f"unknown scenario kind {name!r}; kinds: {', '.join(KINDS)}",
                         field="kind") from None


def kind_of(data: Any, source: str | Path | None = None) -> Kind:
    """The one kind whose marker keys ``data`` has.

    Raises:
        InputError: ``data`` is not a mapping, or matches no kind or several (naming
            ``source`` and the keys each kind expects).
    """
    data = _mapping(data, source)
    hits = [k for k in KINDS.values() if k.matches(data)]
    if len(hits) == 1:
        return hits[0]
    expected = "; ".join(f"{k.name}: {k.signature}" for k in KINDS.values())
    if not hits:
        raise InputError(f"not a scenario of any kind (keys {', '.join(map(str, data)) or 'none'})"
                         f"; expected the keys of one of {expected}", file=source, line=1)
    raise InputError(f"a scenario of several kinds ({', '.join(k.name for k in hits)}); "
                     f"give the keys of one: {expected}", file=source, line=1)


def load(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Kind, Any]:
    """(kind, validated scenario) of a scenario file, ``--set`` overrides applied."""
    path = Path(path)
    data, lines = read_scenario(path, overrides)  # read once: detect, then validate
    kind = kind_of(data, path)
    return kind, kind.from_dict(data, source=str(path), lines=lines, base_dir=path.parent)


# ------------------------------------------------------------------ helpers
def task_table(records: Sequence[tuple]) -> pd.DataFrame:
    """One row per task of a task-engine record list (library tasks excluded):
    ``item_id``, ``status`` (the last DONE result, ``not run`` without one), ``start_s``
    and ``end_s`` (execution start of the last attempt and its DONE time), then
    ``ready_s`` (first READY), ``dispatched_s`` (last RUNNING), ``exec_end_s``,
    ``worker`` and ``attempts``."""
    rows: dict[str, dict[str, Any]] = {}
    for t, subj, ident, ev, f in records:
        if subj != "TASK":
            continue
        r = rows.get(ident)
        if r is None:
            r = rows[ident] = {"item_id": ident, "status": "not run", "start_s": None,
                               "end_s": None, "ready_s": t, "dispatched_s": None,
                               "exec_end_s": None, "worker": None, "attempts": 0}
        if ev == "RUNNING":
            r.update(dispatched_s=t, worker=f[0], attempts=r["attempts"] + 1)
        elif ev == "RETRIEVED":
            r.update(start_s=f[2], exec_end_s=f[3])
        elif ev == "DONE":
            r.update(status=f[0], end_s=t)
    return pd.DataFrame(list(rows.values()),
                        columns=["item_id", "status", "start_s", "end_s", "ready_s",
                                 "dispatched_s", "exec_end_s", "worker", "attempts"])


def table_lines(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    """A plain-text table of ``rows`` (``_s`` suffixes dropped from the headings)."""
    if not rows:
        return []
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    heads = [c.removesuffix("_s").replace("deadline_satisfactory_ratio", "ratio") for c in cols]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(heads)]
    return ["  ".join(h.ljust(w) for h, w in zip(heads, widths)),
            *("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells)]


def summary_lines(summaries: list[dict[str, Any]]) -> list[str]:
    """The GPU-job summary table (``run`` and ``compare``)."""
    cols = [("policy", "policy"), ("deadline_satisfactory_ratio", "ratio"),
            ("accepted", "met"), ("declined", "declined+late"), ("jct_mean_s", "JCT mean s"),
            ("be_jct_mean_s", "BE JCT mean s"), ("makespan_s", "makespan s"),
            ("gpu_utilisation", "GPU util"), ("wall_s", "wall s")]
    rows = [[_fmt(s.get(k)) for k, _ in cols] for s in summaries]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (_, h) in enumerate(cols)]
    return ["  ".join(h.ljust(w) for (_, h), w in zip(cols, widths)),
            *("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)]


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def _f(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _mapping(data: Any, source: str | Path | None) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("a scenario must be a mapping of keys", file=source, line=1)
    return data


def _stamp(kind: Kind, d: dict[str, Any]) -> dict[str, Any]:
    d = {"kind": kind.name, "version": key_version(), **d}
    canonical_json(d)  # fails early on anything a key cannot hold
    return d


def _sha256(path: Path, cache: dict[str, Any]) -> str:
    shas = cache.setdefault("sha256", {})
    if str(path) not in shas:
        shas[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return str(shas[str(path)])
