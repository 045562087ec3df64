"""Many jobs three ways: 1000 map instances on a job array, one node, or a Dask cluster.

The Stats285 F23 study (WORKFLOWS.md 1(c)): 1000 independent SVD instances run as
(a) a batch-system job array (10 array tasks, 100 instances each in sequence),
(b) one large node with a Dask pool, (c) a Dask cluster whose workers are 8 batch
jobs x 8 threads. Results go through an EMS-style store (:mod:`sim.ems`).

One mechanism for all three, on the task model (:mod:`sim.model.tasks`):

* a **process** (array task, Dask worker job, local Dask worker) is a worker that
  connects after its queue wait or start delay (``start_s``) with ``threads`` slots;
* the **per-process start-up** (interpreter, imports) is a library start-up paid
  once per process (library ``python``, installed eagerly by the ``reuse`` policy);
* an **instance** is a call of that library; its time is one draw of the
  single-instance time (lognormal, ``instance``) times the deployment's
  **slowdown** ``threads / min(threads, process_parallelism) * (1 + node_contention
  * (processes_per_node - 1))``: threads of one process that cannot all make
  progress at once share it, and processes on one node share its memory bandwidth.
  Every process in a scenario is alike and stays saturated until the tail, so a
  fixed factor per scenario stands in for processor sharing (it overestimates the
  last few instances of each process, which in reality speed up as threads free);
* the **scheduler** (Dask) is the manager: ``dispatch_s`` per task sent,
  ``retrieve_s`` plus the result bytes per result; a batch-system array has none;
* the **driver** consumes results one at a time and flushes the EMS buffer
  (:func:`sim.ems.consume`, flush cost modelled); an array path has no driver and
  ends with a ``gather_s`` step (CSV collection and upload) instead.

Deviations: the array's static split (instances 100k..100k+99 on array task k) is
a shared queue the ten processes pull from; with ~100 instances each the two
differ by the load-balancing of the last instances only. The study's slower first
instance per array task (1.4-1.8 s vs 0.9-1.0 s steady) is not modelled.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.atomic import atomic_dir
from sim.ems import EMSStore, FlushCost, ResultBuffer, consume, unroll
from sim.errors import InputError
from sim.model.job import TaskSpec
from sim.model.tasks import LibrarySpec, ManagerSpec, TaskWorkload, WorkerSpec
from sim.scenario import read_scenario
from sim.workloads import Where, build

LIBRARY = "python"
TOP_KEYS = ("name", "threeways", "seed")


@dataclass(frozen=True)
class StoreSpec:
    """The EMS result store and the driver that feeds it.

    Attributes:
        flush_rows: flush when this many rows are buffered (EMS: 200 rows of 1004 columns).
        flush_s: flush when more than this many seconds passed since the last save (EMS: 60).
        flush_base_s: modelled time of one flush besides its rows (open, commit).
        flush_per_row_s: modelled time per row written.
        result_s: driver time per result (deserialise and append the row).
        db: SQLite file that persists results across runs (re-runs skip stored
            combinations); empty: a fresh in-memory store each run.
        enabled: ``false`` for the array path (no driver; see ``gather_s``).
    """

    flush_rows: int = 200
    flush_s: float = 60.0
    flush_base_s: float = 0.0
    flush_per_row_s: float = 0.0
    result_s: float = 0.0
    db: str = ""
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.flush_rows < 1:
            raise InputError("must be >= 1", field="flush_rows")
        for k in ("flush_s", "flush_base_s", "flush_per_row_s", "result_s"):
            if getattr(self, k) < 0:
                raise InputError("must be >= 0", field=k)


@dataclass(frozen=True)
class InstanceTime:
    """Time of one instance on an otherwise idle node: lognormal(log median_s, sigma)."""

    median_s: float = 0.51
    sigma: float = 0.1

    def __post_init__(self) -> None:
        if self.median_s <= 0:
            raise InputError("must be > 0", field="median_s")
        if self.sigma < 0:
            raise InputError("must be >= 0", field="sigma")


@dataclass(frozen=True)
class ThreeWays:
    """One deployment of the map (the ``threeways:`` section).

    Attributes:
        strategy: label (``array``, ``large-node``, ``dask-jobs``).
        params: the EMS parameter grid: key -> list of values, or ``{range: [a, b]}``.
        instance: single-instance time.
        processes: worker processes (array tasks, worker jobs, local workers).
        threads: instances one process runs at once.
        process_parallelism: threads of one process that make progress at once.
        processes_per_node: processes sharing one node.
        node_contention: slowdown per extra process on a node.
        start_s: queue wait / start delay of each process, cycled over processes.
        startup_s: per-process start-up (interpreter and imports).
        dispatch_s, retrieve_s: scheduler time per task sent / result received.
        result_MB: size of one result row sent back.
        bandwidth_MBps: scheduler link for results.
        gather_s: time after the last result before results are stored (array path).
        store: the EMS store and driver.
    """

    strategy: str
    params: dict = field(default_factory=dict)
    instance: InstanceTime = field(default_factory=InstanceTime)
    processes: int = 1
    threads: int = 1
    process_parallelism: float = 1.0
    processes_per_node: int = 1
    node_contention: float = 0.0
    start_s: tuple[float, ...] = (0.0,)
    startup_s: float = 0.0
    dispatch_s: float = 0.0
    retrieve_s: float = 0.0
    result_MB: float = 0.0
    bandwidth_MBps: float = 100.0
    gather_s: float = 0.0
    store: StoreSpec = field(default_factory=StoreSpec)

    def __post_init__(self) -> None:
        for k in ("processes", "threads", "processes_per_node"):
            if getattr(self, k) < 1:
                raise InputError("must be >= 1", field=k)
        if self.process_parallelism <= 0:
            raise InputError("must be > 0", field="process_parallelism")
        for k in ("node_contention", "startup_s", "dispatch_s", "retrieve_s", "result_MB",
                  "gather_s"):
            if getattr(self, k) < 0:
                raise InputError("must be >= 0", field=k)
        if any(s < 0 for s in self.start_s):
            raise InputError("must be >= 0", field="start_s")
        if self.bandwidth_MBps <= 0:
            raise InputError("must be > 0", field="bandwidth_MBps")

    @property
    def slowdown(self) -> float:
        """Instance time on this deployment over instance time alone."""
        share = self.threads / min(self.threads, self.process_parallelism)
        return share * (1.0 + self.node_contention * (self.processes_per_node - 1))


@dataclass(frozen=True)
class ThreeWaysScenario:
    name: str
    spec: ThreeWays
    combos: tuple[dict, ...]  # the unrolled parameter grid
    seed: int = 0
    source: str = ""
    raw: dict = field(default_factory=dict, compare=False)

    def resolved(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)


def load(path: str | Path, overrides: list[str] | None = None) -> ThreeWaysScenario:
    """Read and validate a ``threeways`` scenario file (``--set`` overrides applied)."""
    path = Path(path)
    data, lines = read_scenario(path, overrides or ())
    return from_dict(data, source=str(path), lines=lines)


def from_dict(data: dict[str, Any], *, source: str = "",
              lines: dict[tuple[str, ...], int] | None = None) -> ThreeWaysScenario:
    where = Where(source or None, lines or {})
    data = copy.deepcopy(data)
    for k in data:
        if k not in TOP_KEYS:
            raise where.error(f"unknown key {k!r}; valid keys: {', '.join(TOP_KEYS)}", k)
    if "threeways" not in data:
        raise where.error("missing required key 'threeways'", "threeways")
    if not isinstance(data.get("name", ""), str):
        raise where.error("must be a string", "name")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise where.error(f"must be an integer, got {seed!r}", "seed")
    sec = data["threeways"]
    w = where.sub("threeways")
    if not isinstance(sec, dict):
        raise w.error("must be a mapping")
    if "strategy" not in sec:
        raise w.error("missing required key 'strategy'", "strategy")
    spec = build(ThreeWays, sec, w, skip=("instance", "store"))
    spec = dataclasses.replace(
        spec, instance=build(InstanceTime, sec.get("instance"), w.sub("instance")),
        store=build(StoreSpec, sec.get("store"), w.sub("store")))
    combos = tuple(unroll(_grid(spec.params, w.sub("params"))))
    if not combos:
        raise w.error("the parameter grid is empty", "params")
    name = data.get("name") or (Path(source).stem if source else "threeways")
    return ThreeWaysScenario(name, spec, combos, seed, source, data)


def _grid(params: Any, where: Where) -> dict[str, list]:
    if not isinstance(params, dict) or not params:
        raise where.error("must be a mapping of parameter -> list of values")
    out: dict[str, list] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            r = v.get("range")
            if set(v) != {"range"} or not (isinstance(r, list) and len(r) == 2
                                           and all(isinstance(x, int) for x in r)):
                raise where.error("a range is {range: [start, stop]} of integers", k)
            v = list(range(r[0], r[1]))
        if not isinstance(v, list) or not v:
            raise where.error("must be a non-empty list or {range: [start, stop]}", k)
        if any(not isinstance(x, (int, float, str)) or isinstance(x, bool) for x in v):
            raise where.error("values must be numbers or strings", k)
        out[str(k)] = v
    return out


def workload(spec: ThreeWays, combos: list[dict], rng: random.Random) -> TaskWorkload:
    """Processes as workers, instances as calls of the per-process library."""
    mu = math.log(spec.instance.median_s)
    slow = spec.slowdown
    tasks = tuple(
        TaskSpec(task_id=f"i{n}", cores=1.0, output_MB=spec.result_MB, library=LIBRARY,
                 duration_s=rng.lognormvariate(mu, spec.instance.sigma) * slow,
                 params=dict(c))
        for n, c in enumerate(combos))
    workers = tuple(
        WorkerSpec(worker_id=f"p{j}", connect_s=spec.start_s[j % len(spec.start_s)],
                   cores=float(spec.threads))
        for j in range(spec.processes))
    lib = LibrarySpec(LIBRARY, startup_s=(spec.startup_s,), slots=spec.threads, cores=0.0,
                      reserves_resources=False)
    mgr = ManagerSpec(bandwidth_MBps=spec.bandwidth_MBps, dispatch_s=spec.dispatch_s,
                      retrieve_s=spec.retrieve_s)
    return TaskWorkload(tasks=tasks, workers=workers, libraries={LIBRARY: lib}, manager=mgr,
                        source=spec.strategy)


@dataclass
class ThreeWaysResult:
    scenario: ThreeWaysScenario
    records: list
    completions: list[float]  # when the driver saw each result (array: worker end)
    lines: list[str]
    flushes: list[tuple[float, float, int]]
    summary: dict[str, Any]


def run(scn: ThreeWaysScenario) -> ThreeWaysResult:
    """Run the scenario: skip stored combinations, simulate the rest, feed the store."""
    from sim import registry
    from sim.control import Controller
    from sim.engine.tasks import TaskExecutor

    spec = scn.spec
    keys = list(scn.combos[0])
    rng = random.Random(scn.seed)
    store = EMSStore(spec.store.db or ":memory:", keys)
    try:
        todo = store.pending(scn.combos)
        rng.shuffle(todo)  # EMS shuffles the pending combinations
        wl = workload(spec, todo, rng)
        policy = registry.create("reuse", {"install": "eager"})
        ex = TaskExecutor(wl, Controller(policy), seed=scn.seed)
        t0 = time.perf_counter()
        ex.run()
        wall = time.perf_counter() - t0
        ended = _ends(ex.records, wl)
        if spec.store.enabled:
            buf = ResultBuffer(store, spec.store.flush_rows, spec.store.flush_s)
            cost = FlushCost(spec.store.flush_base_s, spec.store.flush_per_row_s)
            got = consume(ended, len(todo), buf, cost, result_s=spec.store.result_s)
            seen, lines, flushes, end = got.seen_s, got.lines, got.flushes, got.end_s
        else:
            from sim.ems import PROGRESS_EVERY, progress_line

            seen = [t for t, _ in ended]
            lines = [progress_line(i, seen[i - 1], len(todo))
                     for i in range(PROGRESS_EVERY, len(seen) + 1, PROGRESS_EVERY)]
            end = (seen[-1] if seen else 0.0) + spec.gather_s
            store.write([row for _, row in ended])
            flushes = [(end - spec.gather_s, end, len(ended))] if ended else []
        stored = store.count()
    finally:
        store.close()
    n = len(todo)
    summary: dict[str, Any] = {
        "name": scn.name, "strategy": spec.strategy, "instances": n,
        "skipped": len(scn.combos) - n, "processes": spec.processes, "threads": spec.threads,
        "slowdown": spec.slowdown, "makespan_s": end,
        "s_per_instance": end / n if n else None,
        "compute_end_s": ended[-1][0] if ended else 0.0,
        "flushes": len(flushes), "flush_total_s": sum(b - a for a, b, _ in flushes),
        "stored_rows": stored, "done": ex.done, "failed": ex.failed, "wall_s": wall,
    }
    for q in (0.1, 0.5, 0.9):
        k = max(1, math.ceil(q * n))
        summary[f"t{int(q * 100)}_s"] = seen[k - 1] if k <= len(seen) else None
    return ThreeWaysResult(scn, ex.records, seen, lines, flushes, summary)


def _ends(records: list, wl: TaskWorkload) -> list[tuple[float, dict]]:
    """(time the result reached the scheduler, result row) in completion order."""
    spec = {t.task_id: t for t in wl.tasks}
    start: dict[str, float] = {}
    where: dict[str, str] = {}
    out = []
    for t, subj, ident, ev, f in records:
        if subj != "TASK":
            continue
        if ev == "RUNNING":
            where[ident] = f[0]
        elif ev == "RETRIEVED":
            start[ident] = f[2]
        elif ev == "DONE" and f[0] == "SUCCESS":
            s = spec[ident]
            out.append((t, {**s.params, "worker": where[ident], "start_s": start[ident],
                            "end_s": t}))
    return out


def write(res: ThreeWaysResult, out_dir: str | Path) -> Path:
    """Write the run folder atomically: all files appear together, or none do."""
    from sim.traces.taskvine import write_log

    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(res.scenario.resolved(),
                                                          sort_keys=False))
        write_log(res.records, tmp / "transactions")
        with (tmp / "completions.csv").open("w") as fh:
            fh.write("done,time_s\n")
            fh.writelines(f"{i},{t:.6f}\n" for i, t in enumerate(res.completions, start=1))
        (tmp / "progress.log").write_text("".join(f"{ln}\n" for ln in res.lines))
        with (tmp / "flushes.csv").open("w") as fh:
            fh.write("start_s,end_s,rows\n")
            fh.writelines(f"{a:.6f},{b:.6f},{n}\n" for a, b, n in res.flushes)
        (tmp / "summary.json").write_text(json.dumps(res.summary, indent=2) + "\n")
    return out

