"""The frozen view of the world a policy decides on.

Executors (SimPy or Dask) build a :class:`Snapshot` at every scheduling instant
and hand it to the Controller; policies only read it. Everything is immutable so
a policy cannot reach around the Controller and change the world.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from sim.model.cluster import ClusterSpec
from sim.model.job import JobSpec, TaskSpec
from sim.model.tasks import LibrarySpec
from sim.model.throughput import ThroughputTable


class JobStatus(StrEnum):
    """Lifecycle of a job as seen by a policy.

    ``NEW``: arrived at this instant, not yet admitted or declined.
    ``WAITING``: admitted, never started.
    ``RUNNING``: started and holding GPUs.
    ``PAUSED``: started before, now holding no GPUs (preempted or squeezed to 0).
    """

    NEW = "new"
    WAITING = "waiting"
    RUNNING = "running"
    PAUSED = "paused"


class JobView(NamedTuple):
    """A runnable job's state at the snapshot time.

    Attributes:
        spec: the job as read from the trace.
        status: see :class:`JobStatus`.
        gpus: global GPU ids currently held (empty when not running).
        iter_left: training iterations still to run.
        executed_s: attained run time (seconds with GPUs, net of overheads).
        gpu_s: attained service in GPU-seconds.
        start_s: first start time, ``None`` if never started.
        end_s: planned end currently declared for the job (``None`` if none).
        preemptions: times the job lost all its GPUs.
        rescales: times its GPU count changed while running.
    """

    spec: JobSpec
    status: JobStatus
    gpus: tuple[int, ...] = ()
    iter_left: float = 0.0
    executed_s: float = 0.0
    gpu_s: float = 0.0
    start_s: float | None = None
    end_s: float | None = None
    preemptions: int = 0
    rescales: int = 0

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def num_gpus(self) -> int:
        return len(self.gpus)


@dataclass(frozen=True, slots=True)
class WorkerView:
    """A CPU worker (task workloads): its resources, what is free, what is warm."""

    worker_id: str
    cores: float
    memory_MB: float
    disk_MB: float
    free_cores: float
    free_memory_MB: float
    free_disk_MB: float
    libraries: tuple[str, ...] = ()  # libraries installed (warm) on this worker
    free_slots: tuple[tuple[str, int], ...] = ()  # (library, free function slots)
    cached: tuple[str, ...] = ()  # files/packages in the worker's cache
    installing: tuple[str, ...] = ()  # libraries sent to this worker, not yet started


@dataclass(frozen=True, slots=True)
class TaskView:
    """A CPU task not yet finished: ready in the manager's queue, or dispatched."""

    spec: TaskSpec
    priority: float
    worker_id: str | None = None  # set once dispatched
    attempt: int = 1


@dataclass(frozen=True)
class Snapshot:
    """Everything a policy may look at.

    Attributes:
        now_s: the decision time (simulated seconds, or scaled wall-clock seconds).
        cluster: the modelled cluster.
        table: the rates to plan with: the cluster's throughput table, in clean mode with
            communication scaled by the all-reduce factor of a compact placement.
        jobs: runnable jobs (NEW, WAITING, RUNNING, PAUSED) in a stable order:
            the order the executor has kept them in (arrivals appended in trace order).
        finished: ids of jobs that completed at this instant.
        instant: how many scheduling instants happened before this one (0-based).
        slot_s: the scheduling slot length (0 = none).
        more_arrivals: trace jobs are still to arrive after this instant (a simulation
            knows its trace; an executor that cannot tell says True).
        workers, tasks: CPU-task side (empty for GPU-job workloads); ``tasks`` holds
            the ready tasks the manager looks at, in queue order.
        libraries: library name -> spec (task workloads).
        results: task id -> value returned by each task completed so far (task
            workloads whose tasks return a result, e.g. an objective to minimise).
    """

    now_s: float
    cluster: ClusterSpec
    table: ThroughputTable
    jobs: tuple[JobView, ...] = ()
    finished: tuple[str, ...] = ()
    instant: int = 0
    slot_s: float = 0.0
    more_arrivals: bool = True
    workers: tuple[WorkerView, ...] = ()
    tasks: tuple[TaskView, ...] = ()
    libraries: Mapping[str, LibrarySpec] = field(default_factory=dict)
    results: Mapping[str, float] = field(default_factory=dict)
    # indexes an executor may supply so that consumers need not scan every job
    by_id: dict[str, JobView] | None = field(default=None, repr=False, compare=False)
    holding: tuple[str, ...] | None = field(default=None, repr=False, compare=False)
    new: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    def index(self) -> dict[str, JobView]:
        """Job id -> view of every runnable job."""
        if self.by_id is None:
            object.__setattr__(self, "by_id", {j.spec.job_id: j for j in self.jobs})
        assert self.by_id is not None
        return self.by_id

    def holding_ids(self) -> tuple[str, ...]:
        """Ids of jobs holding GPUs, in job order."""
        if self.holding is None:
            object.__setattr__(self, "holding", tuple(j.spec.job_id for j in self.jobs if j.gpus))
        assert self.holding is not None
        return self.holding

    def new_ids(self) -> tuple[str, ...]:
        """Ids of jobs that arrived at this instant (NEW), in job order."""
        if self.new is None:
            object.__setattr__(self, "new", tuple(j.spec.job_id for j in self.jobs
                                                  if j.status is JobStatus.NEW))
        assert self.new is not None
        return self.new

    @property
    def arrivals(self) -> tuple[JobView, ...]:
        idx = self.index()
        return tuple(idx[j] for j in self.new_ids())

    def busy_gpus(self) -> frozenset[int]:
        return frozenset(g for j in self.jobs for g in j.gpus)

    def free_gpus(self) -> frozenset[int]:
        return frozenset(range(self.cluster.num_gpus)) - self.busy_gpus()

    def job(self, job_id: str) -> JobView:
        return self.index()[job_id]
