"""Pool-workflow scenarios (EMEWS GPR on Ackley): YAML -> workload + pools + policy -> run.

The sibling of :mod:`sim.taskrun` for workloads run by batch-claiming worker pools
(:mod:`sim.engine.pools`). With the CLI it is the only place that imports
:mod:`sim.engine.pools`. A scenario is a pool scenario when it has a ``pools`` key::

    name: gpr-ackley
    workload:
      ackley: {points: 750, dim: 4, low: -32.768, high: 32.768,
               runtime_log_mean: 1.0, runtime_log_sd: 0.5}      # sim.traces.ackley.AckleySpec
    pools:                                # sim.model.pools.PoolSpec, in order
      - {name: pool1, workers: 4, batch_size: 8, threshold: 4}
      - {name: pool2, workers: 4, batch_size: 8, threshold: 4,
         join: {after: reprioritisation, count: 2, delay_s: 0}}
    policy: gpr
    params: {score: ei, retrain_every: 50}  # params.seed defaults to the scenario seed
    seed: 0                               # points, runtimes, random baseline
    epsilon: 0.5                          # "within epsilon of the optimum" metric
    manager: {dispatch_s: 0, retrieve_s: 0}   # queue round trips (ManagerSpec)
    horizon_s: 10000                      # optional
    real: {compression: 4, points: 240}   # real mode only (sim.real.pools)

Every problem is one :class:`~sim.errors.InputError` naming file, line and key, raised
before anything runs. Output folder (written atomically): ``scenario.yaml``,
``transactions`` (TaskVine format, with APPLICATION lines for reprioritisations and
pool joins), ``completions.csv`` (``done,time_s,task_id,pool,value,best``),
``events.csv`` (``time_s,kind,detail``: reprioritisations, pool joins, claims) and
``summary.json``.

Metrics: the optimum is the lowest value among the workload's tasks (the best any
order can find); ``time_to_eps_s``/``tasks_to_eps`` are the time and completions at
which the best value found first comes within ``epsilon`` of it, ``time_to_best_s``/
``tasks_to_best`` the same for the optimum itself.
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
from sim.model.pools import JOIN_EVENTS, JoinRule, PoolSpec, PoolWorkload
from sim.model.tasks import ManagerSpec
from sim.scenario import read_scenario
from sim.traces.ackley import AckleySpec, generate_ackley
from sim.traces.taskvine import write_log

KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "label of the run"),
    "workload": ((dict,), "{ackley: {points, dim, low, high, runtime_log_mean, ...}}"),
    "pools": ((list,), "worker pools: name, workers, batch_size, threshold, join"),
    "policy": ((str,), "policy that reorders the queue (gpr)"),
    "params": ((dict,), "policy parameters"),
    "seed": ((int,), "seed of the workload and of the policy's random draws"),
    "epsilon": ((int, float), "distance to the optimum the time-to-epsilon metric uses"),
    "manager": ((dict,), "queue round-trip costs: dispatch_s, retrieve_s"),
    "horizon_s": ((int, float), "stop the simulation at this time"),
    "real": ((dict,), "real mode: compression (simulated s per wall s), points (fewer "
                      "Ackley points)"),
}
REAL_KEYS = {"compression": (int, float), "points": (int,)}
POOL_KEYS = {"name": (str,), "workers": (int,), "batch_size": (int,), "threshold": (int,),
             "join": (dict,)}
JOIN_KEYS = {"after": (str,), "count": (int,), "delay_s": (int, float)}
MANAGER_KEYS = ("dispatch_s", "retrieve_s")


@dataclass(frozen=True)
class PoolScenario:
    name: str
    ackley: AckleySpec
    pools: tuple[PoolSpec, ...]
    policy: str
    params: dict
    seed: int = 0
    epsilon: float = 0.5
    manager: dict = dataclasses.field(default_factory=dict)
    horizon_s: float | None = None
    real: dict = dataclasses.field(default_factory=dict)
    source: str = ""

    def resolved(self) -> dict[str, Any]:
        """The scenario with every default spelled out (written next to the results)."""
        d: dict[str, Any] = {
            "name": self.name, "workload": {"ackley": dataclasses.asdict(self.ackley)},
            "pools": [{"name": p.name, "workers": p.workers, "batch_size": p.batch_size,
                       "threshold": p.threshold, "join": dataclasses.asdict(p.join)}
                      for p in self.pools],
            "policy": self.policy, "params": self.params, "seed": self.seed,
            "epsilon": self.epsilon, "manager": self.manager}
        if self.horizon_s is not None:
            d["horizon_s"] = self.horizon_s
        if self.real:
            d["real"] = dict(self.real)
        return d


def load_pool_scenario(path: str | Path, overrides: list[str] | None = None) -> PoolScenario:
    path = Path(path)
    data, lines = read_scenario(path, overrides or ())
    return pool_scenario_from_dict(data, source=str(path), lines=lines)


def pool_scenario_from_dict(data: dict[str, Any], *, source: str = "",
                            lines: dict[tuple[str, ...], int] | None = None) -> PoolScenario:
    lines = lines or {}
    data = copy.deepcopy(data)
    src = source or None

    def err(msg: str, *key: str) -> InputError:
        # the line of the deepest key that has one
        line = next((lines[key[:i]] for i in range(len(key), 0, -1) if key[:i] in lines), None)
        return InputError(msg, file=src, line=line, field=".".join(map(str, key)))

    def typed(value: Any, types: tuple[type, ...], *key: str) -> None:
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise err(f"{'.'.join(map(str, key))!r} must be {want}, got {value!r}", *key)

    for key, value in data.items():
        if key not in KEYS:
            raise err(f"unknown key {key!r}; valid keys: {', '.join(KEYS)}", key)
        typed(value, KEYS[key][0], key)
    for key in ("workload", "pools"):
        if key not in data:
            raise err(f"missing required key {key!r}", key)
    wl = data["workload"]
    if set(wl) != {"ackley"}:
        bad = sorted(set(wl) - {"ackley"}) or ["ackley"]
        raise err(f"workload must be {{ackley: {{...}}}}; bad or missing key {bad[0]!r}",
                  "workload", bad[0])
    ack = wl["ackley"] or {}
    typed(ack, (dict,), "workload", "ackley")
    fields = {f.name: f for f in dataclasses.fields(AckleySpec)}
    for k, v in ack.items():
        if k not in fields:
            raise err(f"unknown ackley key {k!r}; valid: {', '.join(fields)}",
                      "workload", "ackley", k)
        typed(v, (int,) if k in ("points", "dim") else (int, float), "workload", "ackley", k)
    values: dict[str, Any] = {k: (v if k in ("points", "dim") else float(v))
                              for k, v in ack.items()}
    spec = AckleySpec(**values)
    if spec.points < 1 or spec.dim < 1:
        raise err("points and dim must be >= 1", "workload", "ackley")
    if not spec.low < spec.high:
        raise err(f"low ({spec.low}) must be below high ({spec.high})", "workload", "ackley")
    if spec.runtime_log_sd < 0:
        raise err("runtime_log_sd must be >= 0", "workload", "ackley", "runtime_log_sd")
    pools: list[PoolSpec] = []
    if not data["pools"]:
        raise err("at least one pool is needed", "pools")
    for i, p in enumerate(data["pools"]):
        at = ("pools", str(i))
        typed(p, (dict,), *at)
        for k, v in p.items():
            if k not in POOL_KEYS:
                raise err(f"unknown pool key {k!r}; valid: {', '.join(POOL_KEYS)}", *at, k)
            typed(v, POOL_KEYS[k], *at, k)
        for k in ("workers", "batch_size"):
            if k not in p:
                raise err(f"pool needs {k!r}", *at)
            if p[k] < 1:
                raise err(f"{k} must be >= 1, got {p[k]}", *at, k)
        threshold = p.get("threshold", 1)
        if not 1 <= threshold <= p["batch_size"]:
            raise err(f"threshold must be in 1..batch_size ({p['batch_size']}), got {threshold}",
                      *at, "threshold")
        j = p.get("join", {})
        for k, v in j.items():
            if k not in JOIN_KEYS:
                raise err(f"unknown join key {k!r}; valid: {', '.join(JOIN_KEYS)}",
                          *at, "join", k)
            typed(v, JOIN_KEYS[k], *at, "join", k)
        rule = JoinRule(j.get("after", "start"), j.get("count", 0), float(j.get("delay_s", 0.0)))
        if rule.after not in JOIN_EVENTS:
            raise err(f"join.after must be one of {', '.join(JOIN_EVENTS)}, got {rule.after!r}",
                      *at, "join", "after")
        if rule.after != "start" and rule.count < 1:
            raise err(f"join.count must be >= 1 for after: {rule.after}", *at, "join", "count")
        if rule.delay_s < 0:
            raise err("join.delay_s must be >= 0", *at, "join", "delay_s")
        name = p.get("name", f"pool{i + 1}")
        if any(q.name == name for q in pools):
            raise err(f"duplicate pool name {name!r}", *at, "name")
        pools.append(PoolSpec(name, p["workers"], p["batch_size"], threshold, rule))
    for k, v in data.get("manager", {}).items():
        if k not in MANAGER_KEYS:
            raise err(f"unknown manager key {k!r}; valid: {', '.join(MANAGER_KEYS)}",
                      "manager", k)
        typed(v, (int, float), "manager", k)
        if v < 0:
            raise err(f"manager.{k} must be >= 0", "manager", k)
    pol = data.get("policy", "gpr")
    cls = registry.get(pol, source=src)
    seed = data.get("seed", 0)
    params = dict(data.get("params", {}))
    if "seed" in {f.name for f in dataclasses.fields(cls.Params)}:
        params.setdefault("seed", seed)
    try:
        cls.make_params(params, source=source)
    except InputError as e:
        raise err(e.message, "params", e.field or "") from None
    eps = float(data.get("epsilon", 0.5))
    if eps < 0:
        raise err("epsilon must be >= 0", "epsilon")
    real = data.get("real", {})
    for k, v in real.items():
        if k not in REAL_KEYS:
            raise err(f"unknown real key {k!r}; valid: {', '.join(REAL_KEYS)}", "real", k)
        typed(v, REAL_KEYS[k], "real", k)
        if v <= 0:
            raise err(f"real.{k} must be > 0, got {v!r}", "real", k)
    horizon = data.get("horizon_s")
    if horizon is not None and horizon <= 0:
        raise err("horizon_s must be > 0", "horizon_s")
    return PoolScenario(name=data.get("name", Path(source).stem if source else "run"),
                        ackley=spec, pools=tuple(pools), policy=pol, params=params, seed=seed,
                        epsilon=eps, manager=data.get("manager", {}),
                        horizon_s=None if horizon is None else float(horizon), real=real,
                        source=source)


# --------------------------------------------------------------------------- running
@dataclass
class PoolRunResult:
    scenario: PoolScenario
    workload: PoolWorkload
    records: list
    completions: list[tuple[float, str, str, float, float]]  # time, task, pool, value, best
    events: list[tuple[float, str, str]]
    summary: dict[str, Any]


def build_workload(scn: PoolScenario) -> PoolWorkload:
    tasks, results = generate_ackley(scn.ackley, scn.seed)
    return PoolWorkload(tasks, scn.pools, results, ManagerSpec(**scn.manager),
                        optimum=min(results.values()), source="ackley")


def run_pool_scenario(scn: PoolScenario, *,
                      progress: Callable[[float, int, int], None] | None = None
                      ) -> PoolRunResult:
    from sim.engine.pools import PoolExecutor

    wl = build_workload(scn)
    policy = registry.create(scn.policy, scn.params, source=scn.source or None)
    ex = PoolExecutor(wl, Controller(policy), seed=scn.seed, progress=progress,
                      horizon_s=math.inf if scn.horizon_s is None else scn.horizon_s)
    t0 = time.perf_counter()
    ex.run()
    wall = time.perf_counter() - t0
    pool_of = {tid: ex.pool_of[ex.tasks[tid].worker].spec.name  # type: ignore[index]
               for tid in ex.results}
    comps = []
    best = math.inf
    for t, subj, ident, ev, f in ex.records:
        if subj == "TASK" and ev == "DONE" and f[0] == "SUCCESS":
            v = wl.results[ident]
            best = min(best, v)
            comps.append((t, ident, pool_of[ident], v, best))
    summary = summarise(scn, wl, comps, ex.events)
    summary.update({"makespan_s": ex.now, "decisions": ex.decisions, "failed": ex.failed,
                    "wall_s": wall})
    return PoolRunResult(scn, wl, ex.records, comps, ex.events, summary)


def summarise(scn: PoolScenario, wl: PoolWorkload, comps: list, events: list) -> dict[str, Any]:
    """Run facts and the best-value metrics (see the module docstring)."""
    opt = wl.optimum if wl.optimum is not None else math.nan

    def first(limit: float) -> tuple[float | None, int | None]:
        for i, c in enumerate(comps, start=1):
            if c[4] <= limit + 1e-12:
                return c[0], i
        return None, None

    t_eps, n_eps = first(opt + scn.epsilon)
    t_best, n_best = first(opt)
    return {
        "name": scn.name, "policy": scn.policy, "score": scn.params.get("score"),
        "seed": scn.seed, "tasks": len(wl.tasks), "done": len(comps),
        "optimum": opt, "best_value": comps[-1][4] if comps else None,
        "epsilon": scn.epsilon, "time_to_eps_s": t_eps, "tasks_to_eps": n_eps,
        "time_to_best_s": t_best, "tasks_to_best": n_best,
        "reprioritisations": sum(1 for e in events if e[1] == "reprioritisation"),
        "pool_joins": {e[2]: e[0] for e in events if e[1] == "pool-join"},
    }


def write_pool_run(res: PoolRunResult, out_dir: str | Path) -> Path:
    """Write the run folder atomically: all files appear together, or none do."""
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        (tmp / "scenario.yaml").write_text(scenario_yaml(res.scenario))
        write_log(res.records, tmp / "transactions")
        with (tmp / "completions.csv").open("w") as fh:
            fh.write("done,time_s,task_id,pool,value,best\n")
            for i, (t, tid, pool, v, b) in enumerate(res.completions, start=1):
                fh.write(f"{i},{t:.6f},{tid},{pool},{v:.6f},{b:.6f}\n")
        with (tmp / "events.csv").open("w") as fh:
            fh.write("time_s,kind,detail\n")
            fh.writelines(f"{t:.6f},{k},{d}\n" for t, k, d in res.events)
        (tmp / "summary.json").write_text(json.dumps(res.summary, indent=2) + "\n")
    return out


def scenario_yaml(scn: PoolScenario) -> str:
    return yaml.safe_dump(scn.resolved(), sort_keys=False)
