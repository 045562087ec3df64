"""Run a threeways scenario (many map instances, EMS store) in real mode on this machine.

The real-mode sibling of :func:`sim.workloads.threeways.run`, on the one real
executor: the same workload (:func:`~sim.workloads.threeways.workload`: processes
as task workers, instances as calls of the per-process library), the same policy
(``reuse``, libraries installed eagerly), the same outputs
(:class:`~sim.workloads.threeways.ThreeWaysResult`). What is real:

* each **process** is a Dask worker process (nanny) with ``threads`` threads,
  launched ``start_s`` after the run starts (a batch job's queue wait) into the
  run's LocalCluster; it connects when it has started, so the real process start
  (interpreter, imports) lies between the two;
* the **library start-up** imports the map function's module in that process;
* each **instance** is the study's SVD map function on its parameters
  (:func:`sim.real.trainer._svd_map`), computed for real;
* the **driver** stores each result row as it arrives through the real EMS store
  (:class:`sim.ems.ResultBuffer` on an SQLite file), in the executor's loop, and
  logs a progress line every 10 results.

Time is not compressed (``compression`` 1): instance and flush times are real.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from sim import registry
from sim.control import Controller
from sim.ems import PROGRESS_EVERY, EMSStore, ResultBuffer, progress_line
from sim.model.cluster import ClusterSpec
from sim.model.job import TaskSpec
from sim.model.throughput import ThroughputTable
from sim.real.cluster import Workers, connect
from sim.real.executor import RealConfig, RealExecutor, TaskWorker
from sim.workloads.threeways import ThreeWaysResult, ThreeWaysScenario, workload

NO_CLUSTER = ClusterSpec("tasks", 0, 0, 0)


def svd_call(t: TaskSpec) -> tuple[str, dict[str, Any]]:
    p = t.params
    return "svd_map", {"nrow": int(p["nrow"]), "ncol": int(p["ncol"]), "seed": int(p["seed"])}


def run_real(scn: ThreeWaysScenario, *, workers: Workers | None = None) -> ThreeWaysResult:
    """Run ``scn`` on Dask worker processes of this machine (a LocalCluster of its own
    unless ``workers`` is given; the processes are named ``p0``...)."""
    spec = scn.spec
    keys = list(scn.combos[0])
    rng = random.Random(scn.seed)
    with tempfile.TemporaryDirectory(prefix="clustersim-threeways-") as tmp:
        store = EMSStore(spec.store.db or str(Path(tmp) / "EMS.db3"), keys)
        own = workers is None
        w = workers or connect(NO_CLUSTER)
        try:
            todo = store.pending(scn.combos)
            rng.shuffle(todo)  # EMS shuffles the pending combinations
            wl = workload(spec, todo, rng)
            tws = [TaskWorker(ws.worker_id, ws.cores, connect_s=ws.connect_s,
                              launch=spec.threads, resources=f"proc-{ws.worker_id}")
                   for ws in wl.workers]
            buf = ResultBuffer(store, spec.store.flush_rows, spec.store.flush_s)
            lines: list[str] = []
            seen: list[float] = []
            flushes: list[tuple[float, float, int]] = []
            ended: list[dict] = []

            def flush(now: float) -> None:
                a = time.perf_counter()
                n = buf.flush(now)
                flushes.append((now, now + time.perf_counter() - a, n))

            def on_result(t: TaskSpec, value: Any, now: float) -> None:
                row = dict(value)
                seen.append(now)
                if len(seen) % PROGRESS_EVERY == 0:
                    lines.append(progress_line(len(seen), now, len(todo)))
                if not spec.store.enabled:
                    ended.append(row)
                elif buf.add(row, now):
                    flush(now)

            policy = registry.create("reuse", {"install": "eager"})
            ex = RealExecutor([], NO_CLUSTER, ThroughputTable("none", (), {}),
                              Controller(policy), w, Path(tmp) / "ckpt",
                              config=RealConfig(compression=1.0), tasks=list(wl.tasks),
                              task_workers=tws, task_call=svd_call, on_result=on_result,
                              libraries=dict(wl.libraries))
            t0 = time.perf_counter()
            ex.run()
            if spec.store.enabled and buf.rows:
                flush(ex.now())
            if not spec.store.enabled and ended:
                a = ex.now()
                store.write(ended)
                flushes.append((a, ex.now(), len(ended)))
            end = ex.now() if todo else 0.0
            wall = time.perf_counter() - t0
            stored = store.count()
        finally:
            store.close()
            if own:
                w.close()
    n = len(todo)
    joins = {e[4]: e[0] for e in ex.events if e[1] == "worker_joined"}
    launches = {e[4]: e[0] for e in ex.events if e[1] == "worker_launched"}
    startup = [joins[k] - launches[k] for k in launches if k in joins]
    summary: dict[str, Any] = {
        "name": scn.name, "strategy": spec.strategy, "instances": n,
        "skipped": len(scn.combos) - n, "processes": spec.processes, "threads": spec.threads,
        "slowdown": None, "makespan_s": end, "s_per_instance": end / n if n else None,
        "compute_end_s": seen[-1] if seen else 0.0,
        "flushes": len(flushes), "flush_total_s": sum(b - a for a, b, _ in flushes),
        "stored_rows": stored, "done": ex.tasks_done, "wall_s": wall, "mode": "real",
        "failed": sum(1 for t in ex.tasks.values() if t.status == "failed"),
        "process_start_mean_s": sum(startup) / len(startup) if startup else None,
    }
    for q in (0.1, 0.5, 0.9):
        k = max(1, math.ceil(q * n))
        summary[f"t{int(q * 100)}_s"] = seen[k - 1] if k <= len(seen) else None
    records = sorted(ex.records, key=lambda r: r[0])
    return ThreeWaysResult(scn, records, seen, lines, flushes, summary)
