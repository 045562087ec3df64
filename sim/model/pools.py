"""Worker pools that claim tasks in batches (EMEWS EQ/SQL), and the workload they run.

Pure data, no SimPy. A pool is a group of identical workers that pulls work from the
shared priority queue (highest priority first, then oldest) in *batches*: it owns at
most ``batch_size`` tasks (claimed and not yet finished); whenever its deficit
(``batch_size`` minus what it owns) reaches ``threshold`` it claims that many more.
A claimed task belongs to the pool: it leaves the queue, no longer shows in the
snapshot and can no longer be reprioritised (EQ/SQL ``update_priorities`` only
touches rows still in the OUT queue). Pools join when a :class:`JoinRule` fires.

See WORKFLOWS.md section 1(b). :mod:`sim.engine.pools` runs a :class:`PoolWorkload`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sim.model.job import TaskSpec
from sim.model.tasks import ManagerSpec

#: Events a pool can join on: the run's start, the n-th reprioritisation (a policy
#: decision that carried priorities), the n-th completed task.
JOIN_EVENTS = ("start", "reprioritisation", "completion")


@dataclass(frozen=True, slots=True)
class JoinRule:
    """When a pool joins: ``delay_s`` after the ``count``-th ``after`` event.

    Attributes:
        after: one of :data:`JOIN_EVENTS` (``start`` ignores ``count``).
        count: which occurrence of the event (1-based).
        delay_s: batch-queue wait plus pool start-up after the event.
    """

    after: str = "start"
    count: int = 0
    delay_s: float = 0.0

    def fired(self, counts: dict[str, int]) -> bool:
        """Whether the rule's event has happened, given the run's event counts so far."""
        return self.after == "start" or counts[self.after] >= self.count


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One worker pool (a Swift/T job in EMEWS).

    Attributes:
        name: label; its workers are ``<name>-w<i>``.
        workers: workers in the pool, each running one task at a time.
        batch_size: most tasks the pool owns at once (claimed, running or waiting
            in the pool); EQ/SQL's CFG_BATCH_SIZE.
        threshold: deficit (``batch_size`` - owned) at which the pool claims more;
            EQ/SQL's CFG_BATCH_THRESHOLD. 1 claims as soon as one task finishes.
        join: when the pool starts.
    """

    name: str
    workers: int
    batch_size: int
    threshold: int = 1
    join: JoinRule = field(default_factory=JoinRule)


@dataclass(frozen=True)
class PoolWorkload:
    """Tasks, the pools that run them, and what each task returns.

    Attributes:
        tasks: in submission order (the queue's FIFO order among equal priorities).
        pools: in declaration order.
        results: task id -> the value the task returns when it completes (simulation
            knows it beforehand; executors reveal it to policies only on completion).
        manager: costs of the queue's round trips, serialised as in
            :mod:`sim.engine.tasks` (``dispatch_s`` per task a pool starts,
            ``retrieve_s`` per result reported back).
        optimum: the best (lowest) value the task set can reach, for metrics.
        source: where the workload came from (file or generator).
    """

    tasks: tuple[TaskSpec, ...]
    pools: tuple[PoolSpec, ...]
    results: Mapping[str, float] = field(default_factory=dict)
    manager: ManagerSpec = field(default_factory=ManagerSpec)
    optimum: float | None = None
    source: str = ""
