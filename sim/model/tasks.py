"""Task workloads: workers that come and go, a manager, libraries, tasks.

Pure data, no SimPy. A :class:`TaskWorkload` is what a transaction log, a
generator or a scenario turns into; :mod:`sim.engine.tasks` replays it under a
policy. Tasks are :class:`~sim.model.job.TaskSpec` (resource request, priority,
duration, optional library, optional dependencies).

Costs are data: every time below comes from a log or a scenario, never from a
constant in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.model.job import TaskSpec


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One worker process (a pilot job on a batch system).

    Attributes:
        worker_id: identifier (TaskVine's ``worker-<hash>``).
        connect_s: when it connects to the manager.
        disconnect_s: when it leaves (``None``: stays until the end).
        lost: its disconnection is a failure; tasks on it are retried elsewhere.
            A worker that leaves without ``lost`` (idle-out, explicit release)
            also gives back its tasks; the flag only names the reason in the log.
        cores, memory_MB, disk_MB: resources it advertises.
    """

    worker_id: str
    connect_s: float
    disconnect_s: float | None = None
    lost: bool = False
    cores: float = 1.0
    memory_MB: float = 0.0
    disk_MB: float = 0.0


@dataclass(frozen=True, slots=True)
class LibrarySpec:
    """A TaskVine-style library: a co-process that serves function calls.

    Attributes:
        name: the name function calls refer to (``TaskSpec.library``).
        package: file name of its environment package (cached per worker).
        package_MB: size of the package shipped by the manager.
        unpack_s: worker-side unpack of the package (once per worker and cache).
        startup_s: process start plus imports until the library is ready;
            samples (drawn with the run's RNG) or a single value. A plain task
            that runs the same function without a library pays one draw itself.
        slots: function calls it executes at once.
        cores, memory_MB, disk_MB: what the library process itself holds.
        reserves_resources: whether the manager counts the library's resources
            against the worker when placing calls (TaskVine 2023 did not: its
            two-core workers took two calls besides a one-core library).
    """

    name: str
    package: str = "package.tar.gz"
    package_MB: float = 0.0
    unpack_s: float = 0.0
    startup_s: tuple[float, ...] = (0.0,)
    slots: int = 1
    cores: float = 1.0
    memory_MB: float = 0.0
    disk_MB: float = 0.0
    reserves_resources: bool = True


@dataclass(frozen=True, slots=True)
class ManagerSpec:
    """The manager: one process that serialises its outbound work.

    Attributes:
        bandwidth_MBps: outbound transfer rate; one transfer at a time.
        transfer_overhead_s: manager time per file sent besides the bytes
            (connection set-up, bookkeeping between sends).
        dispatch_s: manager time to commit one task to a worker.
        retrieve_s: manager time to retrieve one finished task.
        lookahead: ready tasks the manager considers per scheduling pass
            (TaskVine's ``attempt_schedule_depth``, 100).
        max_retries: attempts per task before it is given up (0 = unlimited).
    """

    bandwidth_MBps: float = 100.0
    transfer_overhead_s: float = 0.0
    dispatch_s: float = 0.0
    retrieve_s: float = 0.0
    lookahead: int = 100
    max_retries: int = 0


@dataclass(frozen=True)
class TaskWorkload:
    """Everything a task run needs besides the policy.

    Attributes:
        tasks: in submission order.
        workers: in connection order.
        libraries: name -> spec.
        manager: manager costs.
        origin_unix_s: wall-clock time of time 0 (a log's manager start), so a
            simulated log can be written on the real log's clock; 0 if none.
        source: file it was read from.
    """

    tasks: tuple[TaskSpec, ...]
    workers: tuple[WorkerSpec, ...]
    libraries: dict[str, LibrarySpec] = field(default_factory=dict)
    manager: ManagerSpec = field(default_factory=ManagerSpec)
    origin_unix_s: float = 0.0
    source: str = ""
