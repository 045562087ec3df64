"""Work items: deep-learning training jobs (GPU) and CPU tasks.

These are the validated, immutable descriptions read from traces and
generators. Runtime state (progress, allocation) lives in the executors and is
shown to policies through :mod:`sim.model.snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Deadline used for best-effort jobs: they sort after every deadline job.
#: (The ElasticFlow artifact uses ``sys.maxsize``; any value larger than every
#: simulated time behaves the same.)
BEST_EFFORT_DEADLINE = float("inf")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One training job from a trace.

    Attributes:
        job_id: identifier from the trace (kept as a string).
        idx: 0-based row position in the trace file (file order, before sorting);
            the last tie-breaker everywhere.
        submit_s: arrival time, seconds.
        iterations: training iterations to run (the work of iteration-based policies).
        model: model name, a key of the throughput table.
        batch_size: global batch size (constant across scaling).
        deadline_s: absolute deadline, seconds; ``BEST_EFFORT_DEADLINE`` when best-effort.
        num_gpu: GPUs requested by the user (used by fixed-size policies).
        duration_s: run time at ``num_gpu`` GPUs (the work of duration-based policies).
        best_effort: no deadline.
        trace_deadline_s: the deadline written in the trace even for best-effort jobs
            (Chronus under the artifact preset uses it).
    """

    job_id: str
    idx: int
    submit_s: int
    iterations: int
    model: str
    batch_size: int
    deadline_s: float
    num_gpu: int
    duration_s: int
    best_effort: bool = False
    trace_deadline_s: int | None = None

    @property
    def has_deadline(self) -> bool:
        return not self.best_effort


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One CPU task (task workloads: TaskVine calls, Ackley evaluations, map tasks).

    Attributes:
        task_id: identifier.
        submit_s: time the task becomes ready.
        cores, memory_MB, disk_MB: resource request.
        duration_s: execution time once started (excluding start-up costs).
        priority: higher runs first; ties by ``submit_s`` then ``task_id``.
        library: name of the library this call needs (``None`` for a plain task).
        input_MB, output_MB: data moved from/to the manager.
        params: free-form payload (function arguments in real mode).
        depends_on: ids of tasks that must finish before this one is ready.
        error: the task raises this error when it runs (its result carries it and
            the tasks that depend on it never run); ``None`` for a task that succeeds.
    """

    task_id: str
    submit_s: float = 0.0
    cores: float = 1.0
    memory_MB: float = 0.0
    disk_MB: float = 0.0
    duration_s: float = 0.0
    priority: float = 0.0
    library: str | None = None
    input_MB: float = 0.0
    output_MB: float = 0.0
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    depends_on: tuple[str, ...] = ()
    error: str | None = None
