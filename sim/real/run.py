"""Run one scenario in real mode: Dask workers, wall-clock time, the same outputs as a simulation.

Called by the CLI (``clustersim run --real``) and by :mod:`sim.fidelity`. The
output folder has the simulation's files (``jobs.csv``, ``events.csv``,
``timeline.csv``, ``summary.json``, ``scenario.yaml``) plus ``checkpoints/``,
the jobs' final checkpoints. It appears complete or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from sim.control import Controller
from sim.errors import InputError
from sim.metrics.summary import job_table, summarise
from sim.real.cluster import Workers, connect
from sim.real.executor import RealConfig, RealExecutor
from sim.runner import (
    EVENT_COLUMNS,
    TIMELINE_COLUMNS,
    Prepared,
    RunResult,
    prepare,
    run_fields,
    write_run,
)
from sim.scenario import REAL_KEYS, Scenario


def real_config(scn: Scenario) -> RealConfig:
    """The scenario's ``real:`` block as executor knobs (defaults from REAL_KEYS)."""
    vals = {k: scn.real.get(k, default) for k, (_t, default, _h) in REAL_KEYS.items()}
    return RealConfig(compression=float(vals["compression"]), step_s=float(vals["step_s"]),
                      checkpoint_every_s=float(vals["checkpoint_every_s"]), dim=int(vals["dim"]))


def check_real(p: Prepared) -> None:
    """Refuse what real mode does not do, naming the scenario key."""
    scn = p.scenario
    src = scn.source or None
    if scn.preset != "clean":
        raise InputError("real mode runs the clean preset only (the artifact preset's event "
                         "queue is a simulation artefact)", file=src, field="preset")
    if scn.slot_s:
        raise InputError("real mode decides at exact event times: set slot_s to 0",
                         file=src, field="slot_s")


def run_real_to(scn: Scenario, out: str | Path, *, scheduler: str | None = None,
                progress: Callable[[float, int, int], None] | None = None,
                workers: Workers | None = None) -> RunResult:
    """Validate, connect, run and write ``out`` (with ``out/checkpoints``).

    ``workers``: reuse connected workers (tests); otherwise a LocalCluster with one
    worker per node is started (or ``scheduler`` reached) and closed afterwards.
    """
    p = prepare(scn)
    check_real(p)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = Path(tempfile.mkdtemp(prefix=f".{out.name}.ckpt.", dir=out.parent))
    try:
        own = workers is None
        slots = int(scn.real.get("cpu_slots", REAL_KEYS["cpu_slots"][1]))
        w = workers or connect(p.cluster, scheduler=scheduler, cpu_slots=slots)
        try:
            res = run_real(p, w, ckpt, progress=progress)
        finally:
            if own:
                w.close()
        write_run(res, out)
        os.replace(ckpt, out / "checkpoints")
    except BaseException:
        shutil.rmtree(ckpt, ignore_errors=True)
        raise
    return res


def run_real(p: Prepared, workers: Workers, ckpt_dir: Path, *,
             progress: Callable[[float, int, int], None] | None = None) -> RunResult:
    cfg = real_config(p.scenario)
    ex = RealExecutor(p.jobs, p.cluster, p.table, Controller(p.policy), workers, ckpt_dir,
                      config=cfg, progress=progress, work=p.policy.WORK)
    t0 = time.perf_counter()
    ex.run()
    wall = time.perf_counter() - t0
    jobs = job_table(ex.runs.values())
    events = pd.DataFrame(ex.sorted_events(), columns=EVENT_COLUMNS)
    timeline = pd.DataFrame(ex.timeline, columns=TIMELINE_COLUMNS)
    summary: dict[str, Any] = summarise(jobs, timeline, p.cluster.num_gpus)
    ov = events[events.event == "overhead"].detail.str.extract(
        r"kind=(\w+) overhead_s=([\d.]+)")
    summary.update(run_fields(p, ex.instant, wall))
    summary.update({
        "mode": "real",
        "compression": cfg.compression,
        "workers": p.cluster.num_nodes,
        "segment_failures": ex.failures,
        "lost_iterations": int(sum(r.lost_iterations for r in ex.runs.values())),
        "worker_events": ex.worker_events,
        "overhead_mean_s": float(ov[1].astype(float).mean()) if len(ov) else None,
        "overhead_segments": int(len(ov)),
    })
    return RunResult(p.scenario, jobs, events, timeline, summary)
