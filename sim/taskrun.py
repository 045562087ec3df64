"""Task-workload scenarios: YAML -> workload + policy -> TaskExecutor -> output folder.

The task-side sibling of :mod:`sim.runner` (which runs GPU-job scenarios). With
the CLI it is the only place that imports :mod:`sim.engine.tasks`.

Scenario keys (unknown keys, wrong types and missing files are one
:class:`~sim.errors.InputError` naming file, line and key)::

    name: bgd-reuse
    workload: {taskvine_log: traces/taskvine/bgd.transactions}   # variant: 2023|current
    policy: reuse                  # reuse | no-reuse (see `clustersim policies`)
    params: {install: demand, overcommit_slots: true}
    seed: 0
    manager: {lookahead: 100}      # overrides of the measured ManagerSpec fields
    library: {slots: 1}            # overrides of the measured LibrarySpec fields
    horizon_s: 2000                # optional

Output folder: ``scenario.yaml``, ``transactions`` (the run as a TaskVine
transaction log, current variant), ``completions.csv`` (the completion curve)
and ``summary.json``; written atomically.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim import registry
from sim.atomic import atomic_dir
from sim.control import Controller
from sim.errors import InputError
from sim.model.tasks import LibrarySpec, ManagerSpec, TaskWorkload
from sim.scenario import read_scenario
from sim.traces.taskvine import read_log, workload_from_log, write_log

KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "label of the run"),
    "workload": ((dict,), "{taskvine_log: FILE, variant: 2023|current}"),
    "policy": ((str,), "task policy: reuse or no-reuse"),
    "params": ((dict,), "policy parameters"),
    "seed": ((int,), "seed of every random draw in the run"),
    "manager": ((dict,), "overrides of the manager costs measured from the log"),
    "library": ((dict,), "overrides of the library costs measured from the log"),
    "horizon_s": ((int, float), "stop the simulation at this time"),
}
QUANTILES = (0.1, 0.5, 0.9, 1.0)


@dataclass(frozen=True)
class TaskScenario:
    name: str
    log: str
    variant: str | None
    policy: str
    params: dict
    seed: int = 0
    manager: dict = dataclasses.field(default_factory=dict)
    library: dict = dataclasses.field(default_factory=dict)
    horizon_s: float | None = None
    source: str = ""

    def resolved(self) -> dict[str, Any]:
        d = {"name": self.name, "workload": {"taskvine_log": self.log}, "policy": self.policy,
             "params": self.params, "seed": self.seed, "manager": self.manager,
             "library": self.library}
        if self.variant:
            d["workload"]["variant"] = self.variant
        if self.horizon_s is not None:
            d["horizon_s"] = self.horizon_s
        return d


def load_task_scenario(path: str | Path, overrides: list[str] | None = None) -> TaskScenario:
    path = Path(path)
    data, lines = read_scenario(path, overrides or ())
    return task_scenario_from_dict(data, source=str(path), lines=lines, base_dir=path.parent)


def task_scenario_from_dict(data: dict[str, Any], *, source: str = "",
                            lines: dict[tuple[str, ...], int] | None = None,
                            base_dir: Path | None = None) -> TaskScenario:
    lines = lines or {}
    data = copy.deepcopy(data)
    src = source or None

    def where(*key: str) -> dict[str, Any]:
        return {"file": src, "line": lines.get(key), "field": ".".join(key)}

    for key, value in data.items():
        if key not in KEYS:
            raise InputError(f"unknown key {key!r}; valid keys: {', '.join(KEYS)}", **where(key))
        types = KEYS[key][0]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise InputError(f"{key!r} must be {want}, got {value!r}", **where(key))
    wl = data.get("workload")
    if wl is None:
        raise InputError("missing required key 'workload'", file=src, field="workload")
    bad = sorted(set(wl) - {"taskvine_log", "variant"})
    if bad:
        raise InputError(f"unknown workload key {bad[0]!r}; valid: taskvine_log, variant",
                         **where("workload", bad[0]))
    if "taskvine_log" not in wl:
        raise InputError("workload needs 'taskvine_log'", **where("workload"))
    log = str(wl["taskvine_log"])
    lp = Path(log)
    if not lp.is_absolute() and not lp.exists() and base_dir is not None:
        for cand in (base_dir / lp, base_dir.parent / lp):
            if cand.exists():
                log = str(cand)
                break
    if not Path(log).is_file():
        raise InputError(f"transaction log {wl['taskvine_log']!r} not found",
                         **where("workload", "taskvine_log"))
    for key, cls in (("manager", ManagerSpec), ("library", LibrarySpec)):
        names = {f.name for f in dataclasses.fields(cls)} - {"name"}
        for k, v in data.get(key, {}).items():
            if k not in names:
                raise InputError(f"unknown {key} key {k!r}; valid: {', '.join(sorted(names))}",
                                 **where(key, k))
            if isinstance(v, bool) != (k == "reserves_resources") or not isinstance(
                    v, (int, float, list)):
                raise InputError(f"{key}.{k} must be a number, got {v!r}", **where(key, k))
    pol = data.get("policy", "reuse")
    cls = registry.get(pol, source=src)
    try:
        cls.make_params(data.get("params"), source=source)
    except InputError as e:
        raise InputError(e.message, **where("params", e.field or "")) from None
    return TaskScenario(name=data.get("name", Path(source).stem if source else "run"), log=log,
                        variant=wl.get("variant"), policy=pol, params=data.get("params", {}),
                        seed=data.get("seed", 0), manager=data.get("manager", {}),
                        library=data.get("library", {}),
                        horizon_s=data.get("horizon_s"), source=source)


@dataclass
class TaskRunResult:
    scenario: TaskScenario
    workload: TaskWorkload
    records: list
    completions: list[float]
    summary: dict[str, Any]
    notes: tuple[str, ...]


def build_workload(scn: TaskScenario) -> tuple[TaskWorkload, tuple[str, ...]]:
    """Read the scenario's log into a workload and apply its overrides."""
    log = read_log(scn.log, variant=scn.variant)
    wl, ex = workload_from_log(log)
    if scn.manager:
        wl = dataclasses.replace(wl, manager=dataclasses.replace(wl.manager, **scn.manager))
    if scn.library:
        lib = dict(scn.library)
        if "startup_s" in lib:
            v = lib["startup_s"]
            lib["startup_s"] = tuple(v) if isinstance(v, list) else (float(v),)
        wl = dataclasses.replace(wl, libraries={
            n: dataclasses.replace(spec, **lib) for n, spec in wl.libraries.items()})
    return wl, ex.notes


def run_task_scenario(scn: TaskScenario, *,
                      progress: Callable[[float, int, int], None] | None = None
                      ) -> TaskRunResult:
    from sim.engine.tasks import TaskExecutor

    wl, notes = build_workload(scn)
    policy = registry.create(scn.policy, scn.params, source=scn.source or None)
    ex = TaskExecutor(wl, Controller(policy), seed=scn.seed, progress=progress,
                      horizon_s=math.inf if scn.horizon_s is None else float(scn.horizon_s))
    t0 = time.perf_counter()
    ex.run()
    wall = time.perf_counter() - t0
    comp = sorted(r[0] for r in ex.records
                  if r[1] == "TASK" and r[3] == "DONE" and r[4][0] == "SUCCESS")
    summary: dict[str, Any] = {
        "name": scn.name, "policy": scn.policy, "tasks": len(wl.tasks),
        "workers": len(wl.workers), "done": ex.done, "failed": ex.failed,
        "makespan_s": ex.now, "decisions": ex.decisions, "wall_s": wall,
    }
    for q in QUANTILES:
        summary[f"t{int(q * 100)}_s"] = quantile_time(comp, q, len(wl.tasks))
    return TaskRunResult(scn, wl, ex.records, comp, summary, notes)


def quantile_time(times: list[float], q: float, total: int) -> float | None:
    """Time by which ``ceil(q * total)`` of ``total`` tasks were done (None if never)."""
    k = max(1, math.ceil(q * total - 1e-9))
    return times[k - 1] if k <= len(times) else None


def write_task_run(res: TaskRunResult, out_dir: str | Path) -> Path:
    """Write the run folder atomically: all files appear together, or none do."""
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(res.scenario.resolved(),
                                                          sort_keys=False))
        write_log(res.records, tmp / "transactions", origin_unix_s=res.workload.origin_unix_s)
        with (tmp / "completions.csv").open("w") as fh:
            fh.write("done,time_s\n")
            for i, t in enumerate(res.completions, start=1):
                fh.write(f"{i},{t:.6f}\n")
        (tmp / "summary.json").write_text(json.dumps(res.summary, indent=2) + "\n")
    return out
