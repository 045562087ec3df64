"""Per-job table and run summary.

``deadline_satisfactory_ratio`` follows the ElasticFlow artifact
(POLICIES.md 1.7): jobs that met their deadline divided by all deadline jobs
(met + finished late + declined). Best-effort jobs are excluded, except a
best-effort job that was declined (possible under EDF with admission control),
which the artifact counts as declined.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

JOB_COLUMNS = [
    "job_id", "idx", "submit_s", "start_s", "end_s", "deadline_s", "best_effort", "status",
    "deadline_met", "num_gpu_requested", "gpus_at_end", "jct_s", "queueing_delay_s",
    "executed_s", "gpu_s", "overhead_s", "preemptions", "rescales", "gpu_history",
]


def job_table(runs: Iterable[Any]) -> pd.DataFrame:
    """One row per job from the executor's :class:`~sim.engine.sim.JobRun` objects."""
    rows = []
    for r in runs:
        s = r.spec
        end = r.finish_s
        hist = ";".join(f"{t:.15g}:{g}" for t, g in r.history)
        rows.append({
            "job_id": s.job_id,
            "idx": s.idx,
            "submit_s": s.submit_s,
            "start_s": r.start_s,
            "end_s": end,
            "deadline_s": None if s.best_effort else s.deadline_s,
            "best_effort": s.best_effort,
            "status": r.status,
            "deadline_met": r.met,
            "num_gpu_requested": s.num_gpu,
            "gpus_at_end": getattr(r, "final_gpus", 0),
            "jct_s": (end - s.submit_s) if end is not None else None,
            "queueing_delay_s": (r.start_s - s.submit_s) if r.start_s is not None else None,
            "executed_s": r.executed_s,
            "gpu_s": r.gpu_s,
            "overhead_s": r.overhead_total_s,
            "preemptions": r.preemptions,
            "rescales": r.rescales,
            "gpu_history": hist,
        })
    df = pd.DataFrame(rows, columns=JOB_COLUMNS)
    return df.sort_values("idx", kind="stable").reset_index(drop=True)


def _pct(x: pd.Series, q: float) -> float | None:
    x = x.dropna()
    return float(np.percentile(x, q)) if len(x) else None


def summarise(jobs: pd.DataFrame, timeline: pd.DataFrame, num_gpus: int) -> dict[str, Any]:
    """Summary metrics of one run (JSON-serialisable)."""
    deadline = jobs[~jobs.best_effort]
    be = jobs[jobs.best_effort]
    met = int((deadline.deadline_met == True).sum())  # noqa: E712  (None-aware)
    declined_at_arrival = int((jobs.status == "declined").sum())
    be_declined = int(((be.status == "declined")).sum())
    late = int(((deadline.status != "declined") & (deadline.deadline_met != True)).sum())  # noqa: E712
    denom = len(deadline) + be_declined
    finished = jobs[jobs.status == "done"]
    be_done = be[be.status == "done"]
    makespan = None
    if len(finished):
        makespan = float(finished.end_s.max() - jobs.submit_s.min())
    util = None
    if len(timeline) > 1 and makespan:
        t = timeline.time_s.to_numpy()
        a = timeline.allocated_gpus.to_numpy()
        area = float(np.sum(a[:-1] * np.diff(t)))
        span = float(t[-1] - t[0])
        util = area / (num_gpus * span) if span > 0 else None
    return {
        "jobs": int(len(jobs)),
        "deadline_jobs": int(len(deadline)),
        "best_effort_jobs": int(len(be)),
        "deadline_satisfactory_ratio": (met / denom) if denom else None,
        "accepted": met,
        "declined": declined_at_arrival + late - 0,
        "declined_at_arrival": declined_at_arrival,
        "missed_deadline": late,
        "unfinished": int((jobs.status == "unfinished").sum()),
        "jct_mean_s": float(finished.jct_s.mean()) if len(finished) else None,
        "be_jct_mean_s": float(be_done.jct_s.mean()) if len(be_done) else None,
        "be_jct_p50_s": _pct(be_done.jct_s, 50),
        "be_jct_p99_s": _pct(be_done.jct_s, 99),
        "makespan_s": makespan,
        "gpu_utilisation": util,
        "preemptions": int(jobs.preemptions.sum()),
        "rescales": int(jobs.rescales.sum()),
    }
