"""Dragon-style batches: data-declared DAGs, compiled in batches, ranked by critical path.

Behaviour from Dragon's ``doc/uses/batch.rst`` and ``workflows/batch/DESIGN.md``
(WORKFLOWS.md 1(d); read for behaviour only, no code taken):

* A task declares what it **reads** and **writes**: ``store:key`` pairs, e.g.
  ``file:/scratch/A1.npy`` or ``ddict:norm3``. A frontier per key infers the
  edges in submission order: **RAW** (a reader waits for the key's last writer),
  **WAR** (a writer waits for every reader of the key's current version),
  **WAW** (a writer waits for the key's last writer); readers of one version run
  concurrently. Passing a task's result as an **argument** adds an edge too.
* Submissions are compiled into the DAG either one by one (``batch_size: 1``) or
  in batches of ``batch_size``: the client pays ``submit_s`` per task, the
  compiler one ``compile_s`` per pass plus ``compile_task_s`` per task, on one
  thread, so a batch's tasks reach the runtime when its pass ends. That per-pass
  cost is the scheduling overhead batching amortises.
* Within a pass, tasks are ranked HEFTY-style by **upward rank** (critical path):
  rank = cost + max rank of its successors in the same pass, cost 1 for a
  function and ``100 * procs`` for a parallel job; the ready queue runs higher
  ranks first (``ranking: fifo`` turns this off).
* A task that raises has its error on its **result**; tasks that depend on it do
  not run, and their results say which upstream task failed.

On the task model: nodes are workers; the runtime's per-task launch is the
manager's ``dispatch_s`` (``launch_s``) and the completion notification its
``retrieve_s`` (``notify_s``); the ready queue and dependency release are the task
engine's. Deviation: Dragon launches on a manager per node; here one manager
serialises launches (they are milliseconds against second-long tasks).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.atomic import atomic_dir
from sim.errors import InputError
from sim.model.job import TaskSpec
from sim.model.tasks import ManagerSpec, TaskWorkload, WorkerSpec
from sim.scenario import read_scenario
from sim.workloads import Where, build

RAW, WAR, WAW, ARG = "RAW", "WAR", "WAW", "ARG"
TOP_KEYS = ("name", "dragon", "seed")


@dataclass(frozen=True)
class DTask:
    """One submitted task.

    Attributes:
        name: unique id.
        reads, writes: ``store:key`` data it accesses.
        args: names of earlier tasks whose results it takes as arguments.
        duration_s: run time once launched.
        procs: cores it holds (>1: a parallel job, HEFTY cost 100 x procs).
        error: it raises this (its result carries it); ``None``: it succeeds.
    """

    name: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    duration_s: float = 1.0
    procs: int = 1
    error: str | None = None

    @property
    def cost(self) -> float:
        return 1.0 if self.procs <= 1 else 100.0 * self.procs


def infer_edges(tasks: Sequence[DTask]) -> dict[tuple[str, str], set[str]]:
    """``(producer, consumer) -> kinds`` from declared accesses and arguments.

    Tasks are taken in submission order. A task that reads and writes one key is
    a reader of the current version, then its writer.
    """
    last_writer: dict[str, str] = {}
    readers: dict[str, list[str]] = {}
    edges: dict[tuple[str, str], set[str]] = {}

    def add(src: str, dst: str, kind: str) -> None:
        if src != dst:
            edges.setdefault((src, dst), set()).add(kind)

    seen: set[str] = set()
    for t in tasks:
        for a in t.args:
            if a not in seen:
                raise ValueError(f"task {t.name!r} takes the result of {a!r}, "
                                 "which is not submitted before it")
            add(a, t.name, ARG)
        for k in t.reads:
            if k in last_writer:
                add(last_writer[k], t.name, RAW)
            readers.setdefault(k, []).append(t.name)
        for k in t.writes:
            for r in readers.get(k, ()):
                add(r, t.name, WAR)
            if k in last_writer:
                add(last_writer[k], t.name, WAW)
            last_writer[k] = t.name
            readers[k] = []
        seen.add(t.name)
    return edges


def upward_ranks(tasks: Sequence[DTask], edges: dict[tuple[str, str], set[str]]
                 ) -> dict[str, float]:
    """HEFTY weight of each task: cost + the largest weight of its successors among ``tasks``."""
    names = {t.name for t in tasks}
    succ: dict[str, list[str]] = {t.name: [] for t in tasks}
    for a, b in edges:
        if a in names and b in names:
            succ[a].append(b)
    cost = {t.name: t.cost for t in tasks}
    rank: dict[str, float] = {}
    for t in reversed(tasks):  # successors come later in submission order
        rank[t.name] = cost[t.name] + max((rank[s] for s in succ[t.name]), default=0.0)
    return rank


@dataclass(frozen=True)
class Costs:
    """Scheduling costs (seconds).

    Attributes:
        submit_s: client time per submission.
        compile_s: one compile pass (build DAG, rank, route), whatever its size.
        compile_task_s: compile time per task in a pass.
        launch_s: runtime time to launch one task (manager dispatch).
        notify_s: completion notification per task (manager retrieve).
    """

    submit_s: float = 0.0
    compile_s: float = 0.0
    compile_task_s: float = 0.0
    launch_s: float = 0.0
    notify_s: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise InputError("must be >= 0", field=f.name)


@dataclass(frozen=True)
class Nodes:
    nodes: int = 1
    cores: int = 1

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.cores < 1:
            raise InputError("nodes and cores must be >= 1", field="nodes")


@dataclass(frozen=True)
class DragonSpec:
    """The ``dragon:`` section: a program and how it is submitted.

    Attributes:
        batch_size: tasks per compile pass (1 = submitted one by one).
        ranking: ``critical-path`` (HEFTY upward rank) or ``fifo``.
        workers: nodes and cores per node.
        costs: scheduling costs.
        tasks: explicit tasks (mappings with DTask's keys), or use a generator:
        matrix_powers: ``{powers, mul_s, norm_s, in_place}``.
        wide_map: ``{tasks, map_s, sigma, reduce_s}``.
        errors: task name -> error it raises.
    """

    batch_size: int = 1
    ranking: str = "critical-path"
    workers: Nodes = field(default_factory=Nodes)
    costs: Costs = field(default_factory=Costs)
    tasks: list = field(default_factory=list)
    matrix_powers: dict = field(default_factory=dict)
    wide_map: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError("must be >= 1", field="batch_size")
        if self.ranking not in ("critical-path", "fifo"):
            raise InputError(f"must be 'critical-path' or 'fifo', got {self.ranking!r}",
                             field="ranking")
        given = [k for k in ("tasks", "matrix_powers", "wide_map") if getattr(self, k)]
        if len(given) != 1:
            raise InputError("give exactly one of tasks, matrix_powers, wide_map",
                             field=given[1] if len(given) > 1 else "tasks")


@dataclass(frozen=True)
class DragonScenario:
    name: str
    spec: DragonSpec
    program: tuple[DTask, ...]
    seed: int = 0
    source: str = ""
    raw: dict = field(default_factory=dict, compare=False)

    def resolved(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)


def load(path: str | Path, overrides: list[str] | None = None) -> DragonScenario:
    """Read and validate a ``dragon`` scenario file (``--set`` overrides applied)."""
    path = Path(path)
    data, lines = read_scenario(path, overrides or ())
    return from_dict(data, source=str(path), lines=lines)


def from_dict(data: dict[str, Any], *, source: str = "",
              lines: dict[tuple[str, ...], int] | None = None) -> DragonScenario:
    where = Where(source or None, lines or {})
    data = copy.deepcopy(data)
    for k in data:
        if k not in TOP_KEYS:
            raise where.error(f"unknown key {k!r}; valid keys: {', '.join(TOP_KEYS)}", k)
    if "dragon" not in data:
        raise where.error("missing required key 'dragon'", "dragon")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise where.error(f"must be an integer, got {seed!r}", "seed")
    sec = data["dragon"]
    w = where.sub("dragon")
    spec = build(DragonSpec, sec, w, skip=("workers", "costs"))
    spec = dataclasses.replace(spec, workers=build(Nodes, sec.get("workers"), w.sub("workers")),
                               costs=build(Costs, sec.get("costs"), w.sub("costs")))
    program = _program(spec, w, random.Random(seed))
    name = data.get("name") or (Path(source).stem if source else "dragon")
    return DragonScenario(str(name), spec, program, seed, source, data)


def _program(spec: DragonSpec, w: Where, rng: random.Random) -> tuple[DTask, ...]:
    if spec.tasks:
        tasks = [build(DTask, t, w.sub("tasks", str(i))) for i, t in enumerate(spec.tasks)]
        tasks = [dataclasses.replace(t, reads=_strs(t.reads, w, "tasks"),
                                     writes=_strs(t.writes, w, "tasks"),
                                     args=_strs(t.args, w, "tasks")) for t in tasks]
    elif spec.matrix_powers:
        tasks = matrix_powers(**_kw(spec.matrix_powers, w.sub("matrix_powers"),
                                    {"powers": int, "mul_s": float, "norm_s": float,
                                     "in_place": bool}))
    else:
        kw = _kw(spec.wide_map, w.sub("wide_map"),
                 {"tasks": int, "map_s": float, "sigma": float, "reduce_s": float})
        tasks = wide_map(rng=rng, **kw)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise w.error(f"duplicate task name {dup!r}", "tasks")
    for n, err in spec.errors.items():
        if n not in names:
            raise w.error(f"no task named {n!r}", "errors", str(n))
        if not isinstance(err, str):
            raise w.error("an error is a message string", "errors", str(n))
    tasks = [dataclasses.replace(t, error=spec.errors.get(t.name, t.error)) for t in tasks]
    try:
        infer_edges(tasks)
    except ValueError as e:
        raise w.error(str(e), "tasks") from None
    return tuple(tasks)


def _strs(v: Any, w: Where, key: str) -> tuple[str, ...]:
    vals = v if isinstance(v, (list, tuple)) else [v]
    if not all(isinstance(x, str) for x in vals):
        raise w.error("reads, writes and args are lists of strings", key)
    return tuple(vals)


def _kw(d: Any, w: Where, types: dict[str, type]) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise w.error("must be a mapping")
    out = {}
    for k, v in d.items():
        if k not in types:
            raise w.error(f"unknown key {k!r}; valid: {', '.join(types)}", k)
        want = types[k]
        ok = isinstance(v, bool) if want is bool else (
            not isinstance(v, bool) and isinstance(v, (int, float) if want is float else want))
        if not ok or (want is not bool and v < 0):
            raise w.error(f"must be a non-negative {want.__name__}, got {v!r}", k)
        out[k] = want(v)
    return out


def matrix_powers(powers: int = 16, mul_s: float = 1.0, norm_s: float = 0.2,
                  in_place: bool = False) -> list[DTask]:
    """A^1..A^powers by repeated multiplication, a norm of each power, their sum.

    ``mul_i`` reads ``file:A`` and the previous power, writes the next; ``norm_i``
    reads power i and writes ``ddict:norm_i``; ``total`` takes every norm as an
    argument. ``in_place`` keeps every power in one file ``file:P``: the next
    multiplication then also waits for the previous norm (WAR) and the previous
    multiplication's write (WAW).
    """
    out = [DTask("load", writes=("file:A",), duration_s=mul_s)]
    prev = "file:A"
    for i in range(1, powers + 1):
        cur = "file:P" if in_place else f"file:A{i}"
        reads = ("file:A",) if i == 1 else ("file:A", prev)
        out.append(DTask(f"mul_{i}", reads=reads, writes=(cur,), duration_s=mul_s))
        out.append(DTask(f"norm_{i}", reads=(cur,), writes=(f"ddict:norm{i}",),
                         duration_s=norm_s))
        prev = cur
    out.append(DTask("total", args=tuple(f"norm_{i}" for i in range(1, powers + 1)),
                     duration_s=norm_s))
    return out


def wide_map(tasks: int = 256, map_s: float = 1.0, sigma: float = 0.0, reduce_s: float = 0.0,
             *, rng: random.Random) -> list[DTask]:
    """``tasks`` independent maps (read ``file:input``, write ``ddict:out_i``), then a
    reduce reading every output when ``reduce_s`` > 0."""
    out = [DTask(f"map_{i}", reads=("file:input",), writes=(f"ddict:out{i}",),
                 duration_s=map_s * (rng.lognormvariate(0.0, sigma) if sigma else 1.0))
           for i in range(tasks)]
    if reduce_s > 0:
        out.append(DTask("reduce", reads=tuple(f"ddict:out{i}" for i in range(tasks)),
                         writes=("file:result",), duration_s=reduce_s))
    return out


@dataclass(frozen=True)
class Compiled:
    """The program as the runtime receives it."""

    workload: TaskWorkload
    edges: dict[tuple[str, str], set[str]]
    passes: tuple[tuple[float, float, int], ...]  # (start_s, end_s, tasks) per compile pass
    ranks: dict[str, float]


def compile_program(spec: DragonSpec, program: Sequence[DTask]) -> Compiled:
    """Submission, compile passes and ranks -> a task workload for the engine."""
    c = spec.costs
    edges = infer_edges(program)
    deps: dict[str, list[str]] = {t.name: [] for t in program}
    for a, b in edges:
        deps[b].append(a)
    order = {t.name: i for i, t in enumerate(program)}
    passes: list[tuple[float, float, int]] = []
    ranks: dict[str, float] = {}
    ready_at: dict[str, float] = {}
    end = 0.0
    k = spec.batch_size
    for j in range(0, len(program), k):
        batch = program[j:j + k]
        submitted = (j + len(batch)) * c.submit_s  # the client is one thread
        start = max(submitted, end)
        end = start + c.compile_s + len(batch) * c.compile_task_s
        passes.append((start, end, len(batch)))
        r = upward_ranks(batch, edges) if spec.ranking == "critical-path" else {}
        for t in batch:
            ranks[t.name] = r.get(t.name, 0.0)
            ready_at[t.name] = end
    tasks = tuple(
        TaskSpec(task_id=t.name, submit_s=ready_at[t.name], cores=float(t.procs),
                 duration_s=t.duration_s, priority=ranks[t.name], error=t.error,
                 depends_on=tuple(sorted(deps[t.name], key=order.__getitem__)))
        for t in program)
    workers = tuple(WorkerSpec(f"node{i}", 0.0, cores=float(spec.workers.cores))
                    for i in range(spec.workers.nodes))
    mgr = ManagerSpec(dispatch_s=c.launch_s, retrieve_s=c.notify_s, lookahead=10**9)
    return Compiled(TaskWorkload(tasks, workers, manager=mgr, source="dragon"), edges,
                    tuple(passes), ranks)


class TaskFailed(Exception):
    """Raised by :meth:`Result.get` for a task that failed or did not run."""


@dataclass(frozen=True)
class Result:
    """A task's result handle: ``status`` is ``ok``, ``error`` or ``skipped``."""

    name: str
    status: str
    done_s: float | None
    error: str | None = None

    def get(self) -> str:
        if self.status != "ok":
            raise TaskFailed(f"{self.name}: {self.error}")
        return "ok"


@dataclass
class DragonResult:
    scenario: DragonScenario
    compiled: Compiled
    records: list
    results: dict[str, Result]
    summary: dict[str, Any]


def run(scn: DragonScenario) -> DragonResult:
    """Compile the program, run it on the task engine, collect every task's result."""
    from sim import registry
    from sim.control import Controller
    from sim.engine.tasks import TASK_ERROR, TaskExecutor

    comp = compile_program(scn.spec, scn.program)
    ex = TaskExecutor(comp.workload, Controller(registry.create("no-reuse", {})), seed=scn.seed)
    t0 = time.perf_counter()
    ex.run()
    wall = time.perf_counter() - t0
    outcome = {ident: (t, f[0]) for t, subj, ident, ev, f in ex.records
               if subj == "TASK" and ev == "DONE"}
    deps = {t.task_id: t.depends_on for t in comp.workload.tasks}
    by_name = {t.name: t for t in scn.program}
    results: dict[str, Result] = {}
    for t in scn.program:  # submission order: dependencies come first
        at, res = outcome.get(t.name, (None, "NOT_RUN"))
        if res == "SUCCESS":
            results[t.name] = Result(t.name, "ok", at)
        elif res == TASK_ERROR:
            results[t.name] = Result(t.name, "error", at, by_name[t.name].error)
        else:
            up = next((d for d in deps[t.name] if results[d].status != "ok"), None)
            root = up
            while root is not None and results[root].status == "skipped":
                root = next(d for d in deps[root] if results[d].status != "ok")
            why = (f"not run: depends on {up!r}; {root!r} failed: {results[root].error}"
                   if up is not None and root is not None else f"not run ({res})")
            results[t.name] = Result(t.name, "skipped", at, why)
    n = len(scn.program)
    c = scn.spec.costs
    compile_busy = sum(b - a for a, b, _ in comp.passes)
    overhead = compile_busy + n * (c.submit_s + c.launch_s + c.notify_s)
    work = sum(t.duration_s * t.procs for t in scn.program)
    counts: dict[str, int] = {}
    for kinds in comp.edges.values():
        for kd in kinds:
            counts[kd] = counts.get(kd, 0) + 1
    summary: dict[str, Any] = {
        "name": scn.name, "tasks": n, "batch_size": scn.spec.batch_size,
        "ranking": scn.spec.ranking, "passes": len(comp.passes),
        "makespan_s": ex.now, "sched_overhead_s": overhead, "compile_s": compile_busy,
        "first_ready_s": comp.passes[0][1] if comp.passes else 0.0,
        "critical_path_s": _critical_path(scn.program, comp.edges),
        "work_core_s": work, "cores": scn.spec.workers.nodes * scn.spec.workers.cores,
        "ok": sum(r.status == "ok" for r in results.values()),
        "errors": sum(r.status == "error" for r in results.values()),
        "skipped": sum(r.status == "skipped" for r in results.values()),
        "edges": {k: counts.get(k, 0) for k in (RAW, WAR, WAW, ARG)}, "wall_s": wall,
    }
    return DragonResult(scn, comp, ex.records, results, summary)


def _critical_path(program: Sequence[DTask], edges: dict[tuple[str, str], set[str]]) -> float:
    """Longest path of task durations through the DAG (a lower bound on the makespan)."""
    succ: dict[str, list[str]] = {t.name: [] for t in program}
    for a, b in edges:
        succ[a].append(b)
    longest: dict[str, float] = {}
    for t in reversed(program):
        longest[t.name] = t.duration_s + max((longest[s] for s in succ[t.name]), default=0.0)
    return max(longest.values(), default=0.0)


def write(res: DragonResult, out_dir: str | Path) -> Path:
    """Write the run folder atomically: all files appear together, or none do."""
    from sim.traces.taskvine import write_log

    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(res.scenario.resolved(),
                                                          sort_keys=False))
        write_log(res.records, tmp / "transactions")
        with (tmp / "results.csv").open("w") as fh:
            fh.write("task,status,done_s,rank,error\n")
            for r in res.results.values():
                err = (r.error or "").replace('"', "'")
                done = "" if r.done_s is None else f"{r.done_s:.6f}"
                fh.write(f'{r.name},{r.status},{done},{res.compiled.ranks[r.name]:g},"{err}"\n')
        with (tmp / "edges.csv").open("w") as fh:
            fh.write("src,dst,kinds\n")
            for (a, b), kinds in res.compiled.edges.items():
                fh.write(f"{a},{b},{'+'.join(sorted(kinds))}\n")
        (tmp / "summary.json").write_text(json.dumps(res.summary, indent=2) + "\n")
    return out

