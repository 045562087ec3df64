"""Run a pool scenario (EMEWS GPR on Ackley) in real mode: Dask workers, wall-clock time.

The real-mode sibling of :func:`sim.poolrun.run_pool_scenario`, on the one real
executor (:class:`~sim.real.executor.RealExecutor` with ``pools``): the same
policy object and the same outputs (:class:`~sim.poolrun.PoolRunResult`, written
by :func:`sim.poolrun.write_pool_run`), so best value vs time can be compared with
a simulation of the same scenario line by line.

What is real: each Ackley task runs the Ackley function at its point in a Dask
worker and sleeps its modelled runtime divided by ``real.compression``; its value
reaches the policy as the task's returned value; the GPR retraining runs inside the
policy's ``decide`` with its modelled cost set to 0, so its measured wall time
(times the compression) is its cost; priorities go through the executor's queue;
each pool is one Dask worker process with a thread per pool worker, claiming in
batches. The pools' processes are started before the run and connect (may claim)
at their modelled join time, so a join costs what the scenario says, not a process
start-up. ``real.points`` scales the workload down (the first points of the same
seeded draw).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from sim import registry
from sim.control import Controller
from sim.model.cluster import ClusterSpec
from sim.model.job import TaskSpec
from sim.model.throughput import ThroughputTable
from sim.poolrun import PoolRunResult, PoolScenario, build_workload, summarise
from sim.real.cluster import Workers, connect
from sim.real.executor import RealConfig, RealExecutor
from sim.traces.ackley import AckleySpec

#: Policy parameters that model the retrain's cost; real mode measures it instead.
MODELLED_COSTS = {"retrain_s": 0.0, "retrain_n3_s": 0.0, "remote_latency_s": 0.0,
                  "point_kB": 0.0}
DEFAULT_COMPRESSION = 1.0
NO_CLUSTER = ClusterSpec("tasks", 0, 0, 0)
WARM_IMPORTS = ("sklearn.gaussian_process", "sklearn.preprocessing", "threadpoolctl")


def scaled(scn: PoolScenario) -> PoolScenario:
    """The scenario as real mode runs it: ``real.points`` points, modelled retrain cost 0."""
    ack = scn.ackley
    if "points" in scn.real:
        ack = dataclasses.replace(ack, points=int(scn.real["points"]))
    params = dict(scn.params)
    if scn.policy == "gpr":
        params.update(MODELLED_COSTS)
    return dataclasses.replace(scn, ackley=ack, params=params)


def ackley_call(spec: AckleySpec, compression: float) -> Callable[[TaskSpec], tuple[str, dict]]:
    def call(t: TaskSpec) -> tuple[str, dict[str, Any]]:
        return "ackley", {"x": t.params["x"], "sleep_s": t.duration_s / compression,
                          "a": spec.a, "b": spec.b, "c": spec.c}
    return call


def run_pool_real(scn: PoolScenario, *, workers: Workers | None = None,
                  progress: Callable[[float, int, int], None] | None = None) -> PoolRunResult:
    """Run ``scn`` (already :func:`scaled` or not: it is scaled here) on Dask workers.

    ``workers``: connected workers without task workers of their own (tests share
    one LocalCluster); otherwise a LocalCluster is started and closed.
    """
    scn = scaled(scn)
    C = float(scn.real.get("compression", DEFAULT_COMPRESSION))
    wl = build_workload(scn)
    own = workers is None
    w = workers or connect(NO_CLUSTER)
    try:
        t0 = time.perf_counter()
        ex = execute(scn, w, progress=progress)
        wall = time.perf_counter() - t0
    finally:
        if own:
            w.close()
    records = sorted(ex.records, key=lambda r: r[0])
    comps = []
    best = math.inf
    for t, subj, ident, ev, f in records:
        if subj == "TASK" and ev == "DONE" and f[0] == "SUCCESS":
            v = float(ex.results[ident])
            best = min(best, v)
            comps.append((t, ident, ex.tasks[ident].worker or "", v, best))
    summary = summarise(scn, wl, comps, ex.pool_events)
    decide = ex.decide_wall_s
    summary.update({
        "makespan_s": ex.now() if comps else 0.0, "decisions": ex.instant,
        "failed": sum(1 for t in ex.tasks.values() if t.status == "failed"),
        "wall_s": wall, "mode": "real", "compression": C,
        # the real function ran: its values equal the workload's modelled ones
        "value_mismatches": sum(1 for tid, v in ex.results.items()
                                if abs(float(v) - wl.results[tid]) > 1e-9),
        "decide_wall_total_s": sum(decide),
        "decide_wall_max_s": max(decide, default=0.0),
        "decide_wall_median_s": statistics.median(decide) if decide else 0.0,
    })
    if comps:
        summary["makespan_s"] = comps[-1][0]
    return PoolRunResult(scn, wl, records, comps, ex.pool_events, summary)


def execute(scn: PoolScenario, w: Workers, *,
            progress: Callable[[float, int, int], None] | None = None) -> RealExecutor:
    """Start the pools' worker processes on ``w`` and run the :func:`scaled` scenario."""
    C = float(scn.real.get("compression", DEFAULT_COMPRESSION))
    wl = build_workload(scn)
    policy = registry.create(scn.policy, scn.params, source=scn.source or None)
    _start_pools(w, scn)
    with tempfile.TemporaryDirectory(prefix="clustersim-pools-") as ckpt:
        ex = RealExecutor([], NO_CLUSTER, ThroughputTable("none", (), {}), Controller(policy), w,
                          ckpt, config=RealConfig(compression=C), tasks=list(wl.tasks),
                          pools=scn.pools, task_call=ackley_call(scn.ackley, C),
                          progress=progress)
        ex.run()
    return ex


def _start_pools(w: Workers, scn: PoolScenario) -> None:
    """One Dask worker process per pool, a thread per pool worker, started now."""
    for p in scn.pools:
        w.launch(p.name, p.workers, {f"pool-{p.name}": float(p.workers)})
    deadline = time.time() + 120
    want = {p.name for p in scn.pools}
    while not want <= w.joined():
        if time.time() > deadline:
            raise TimeoutError(f"pool workers did not start: {sorted(want - w.joined())}")
        time.sleep(0.1)
    for mod in ("sim.real.trainer", "sim.traces.ackley"):
        w.client.run(importlib.import_module, mod)
    # the policy's own imports (scikit-learn, ~2 s) are paid before the clock starts, as
    # a long-running driver has them loaded: the first retrain then costs a fit, not
    # an import
    for mod in WARM_IMPORTS:
        importlib.import_module(mod)
