"""The EMEWS Ackley workload: N random points, each a task that evaluates Ackley there.

WORKFLOWS.md section 1(b): the OSPREY/EMEWS tutorial samples ``points`` points
uniformly in ``[low, high]^dim`` (the seed: 750 points in [-32.768, 32.768]^4) and
submits one task per point; a task computes the Ackley function (microseconds) and
sleeps a lognormal time (tutorial default: log-mean 1, log-sd 0.5, so a median of
e ~ 2.72 s and a mean of ~ 3.08 s). Here the sleep is the task's ``duration_s`` and
the Ackley value is the task's result, revealed to the policy when the task completes.

Random streams: one :class:`numpy.random.SeedSequence` per seed, spawned into two
independent streams, points then runtimes, so changing the runtime distribution
keeps the points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.model.job import TaskSpec


@dataclass(frozen=True)
class AckleySpec:
    """Parameters of the workload (the scenario's ``workload.ackley`` block).

    Attributes:
        points: tasks (points sampled).
        dim: dimensions of each point.
        low, high: bounds of every coordinate.
        runtime_log_mean, runtime_log_sd: parameters of the lognormal task time (s).
        a, b, c: Ackley's constants.
    """

    points: int = 750
    dim: int = 4
    low: float = -32.768
    high: float = 32.768
    runtime_log_mean: float = 1.0
    runtime_log_sd: float = 0.5
    a: float = 20.0
    b: float = 0.2
    c: float = 2 * math.pi


def ackley(x: np.ndarray, a: float = 20.0, b: float = 0.2, c: float = 2 * math.pi) -> np.ndarray:
    """Ackley's function of each row of ``x`` (shape ``(n, d)`` or ``(d,)``); 0 at the origin."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    d = x.shape[1]
    return (-a * np.exp(-b * np.sqrt((x * x).sum(axis=1) / d))
            - np.exp(np.cos(c * x).sum(axis=1) / d) + a + math.e)


def generate_ackley(spec: AckleySpec, seed: int) -> tuple[tuple[TaskSpec, ...], dict[str, float]]:
    """The tasks (submitted at time 0, equal priority, ids ``t0000``...) and their values.

    Each task's ``params`` holds its point (``{"x": [...]}``), which is all real mode
    needs to evaluate it.
    """
    pts_ss, run_ss = np.random.SeedSequence(seed).spawn(2)
    x = np.random.default_rng(pts_ss).uniform(spec.low, spec.high, size=(spec.points, spec.dim))
    runtimes = np.random.default_rng(run_ss).lognormal(spec.runtime_log_mean,
                                                       spec.runtime_log_sd, size=spec.points)
    values = ackley(x, spec.a, spec.b, spec.c)
    width = max(4, len(str(spec.points - 1)))
    tasks, results = [], {}
    for i in range(spec.points):
        tid = f"t{i:0{width}d}"
        tasks.append(TaskSpec(task_id=tid, duration_s=float(runtimes[i]),
                              params={"x": [float(v) for v in x[i]]}))
        results[tid] = float(values[i])
    return tuple(tasks), results
