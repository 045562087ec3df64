"""PoolExecutor: task workloads run by worker pools that claim work in batches (EMEWS).

A small extension of :class:`sim.engine.tasks.TaskExecutor` (same manager, queue,
task processes and transaction log). What changes:

* **Who places tasks.** Pools do, not the policy: the policy only reorders the
  queue (``Decision.priorities``). Its snapshot shows every ready, unclaimed task
  (``tasks``, in queue order), no workers, and the ``results`` of every completed
  task. A decision that carries priorities is one *reprioritisation* event.
* **Claims.** After each decision, every active pool (declaration order) whose
  deficit (``batch_size`` - tasks it owns) has reached ``threshold`` claims that
  many tasks from the head of the queue (highest priority, then oldest). Claimed
  tasks leave the queue (state ``claimed``): later priorities do not reach them.
  A pool starts its claimed tasks in claim order on its free workers.
* **Joins.** A pool joins ``join.delay_s`` after its :class:`~sim.model.pools.JoinRule`
  fires (run start, the n-th reprioritisation, the n-th completion); its workers
  connect then (``add_worker``), and it claims from then on.

Extra record (``events``): ``(time_s, kind, detail)`` for each reprioritisation
(``detail`` = its ordinal), pool join and claim; the transaction log also gets an
``APPLICATION`` line per reprioritisation and pool join.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sim.control import Controller, Reprioritise
from sim.engine.tasks import _NO_CLUSTER, _NO_TABLE, TaskExecutor, TaskRun
from sim.model.pools import PoolSpec, PoolWorkload
from sim.model.snapshot import Snapshot, TaskView
from sim.model.tasks import TaskWorkload, WorkerSpec


@dataclass
class PoolRun:
    spec: PoolSpec
    workers: list[str] = field(default_factory=list)  # worker ids, in order
    joined_s: float | None = None  # when its workers connect (None: not triggered yet)
    owned: set[str] = field(default_factory=set)  # claimed and not finished
    waiting: deque[str] = field(default_factory=deque)  # claimed, not started


class PoolExecutor(TaskExecutor):
    """Runs one policy over a :class:`PoolWorkload` (arguments as :class:`TaskExecutor`)."""

    def __init__(self, workload: PoolWorkload, controller: Controller, *, seed: int = 0,
                 progress: Callable[[float, int, int], None] | None = None,
                 horizon_s: float = math.inf) -> None:
        # the policy sees every unclaimed task: the look-ahead is the whole queue
        manager = dataclasses.replace(workload.manager, lookahead=max(1, len(workload.tasks)))
        super().__init__(TaskWorkload(workload.tasks, (), manager=manager), controller,
                         seed=seed, progress=progress, horizon_s=horizon_s)
        self.pw = workload
        self.pools = [PoolRun(p) for p in workload.pools]
        self.results: dict[str, float] = {}
        self.counts = {"reprioritisation": 0, "completion": 0}
        self.events: list[tuple[float, str, str]] = []
        self.pool_of: dict[str, PoolRun] = {}  # worker id -> pool
        self._view: list[TaskView] | None = None  # queued tasks in order; None: changed

    def run(self) -> None:
        self._joins()  # pools that join at the start
        super().run()

    # --- the scheduling loop: decide, then let pools claim and start -------------------
    def _scheduler(self):
        while True:
            self._kick = self.env.event()
            yield self._kick
            yield self.env.timeout(0)  # let every same-time event land first
            actions = self.ctl.step(self.snapshot())
            self.decisions += 1
            self._apply(actions)
            if any(isinstance(a, Reprioritise) for a in actions):
                self._view = None
                k = self.counts["reprioritisation"] = self.counts["reprioritisation"] + 1
                self.events.append((self.now, "reprioritisation", str(k)))
                self.rec(self.now, "APPLICATION", "reprioritisation", str(k))
                self._joins()
            self._claim_and_start()

    def snapshot(self) -> Snapshot:
        return Snapshot(now_s=self.now, cluster=_NO_CLUSTER, table=_NO_TABLE,
                        tasks=tuple(self._ready_view()), results=dict(self.results),
                        more_arrivals=self.done + self.failed < self.total)

    def _joins(self) -> None:
        for p in self.pools:
            rule = p.spec.join
            if p.joined_s is not None:
                continue
            if not rule.fired(self.counts):
                continue
            p.joined_s = self.now + rule.delay_s
            for i in range(p.spec.workers):
                wid = f"{p.spec.name}-w{i}"
                p.workers.append(wid)
                self.pool_of[wid] = p
                self.add_worker(WorkerSpec(wid, connect_s=p.joined_s))
            self.events.append((self.now, "pool-join", p.spec.name))
            self.rec(self.now, "APPLICATION", "pool-join", p.spec.name)

    def _claim_and_start(self) -> None:
        for p in self.pools:
            if p.joined_s is None or p.joined_s > self.now + 1e-12:
                continue
            deficit = p.spec.batch_size - len(p.owned)
            if deficit >= p.spec.threshold:
                for _ in range(deficit):
                    tr = self._pop_head()
                    if tr is None:
                        break
                    tr.state = "claimed"
                    self._view = None
                    p.owned.add(tr.spec.task_id)
                    p.waiting.append(tr.spec.task_id)
                    self.events.append((self.now, "claim", f"{p.spec.name} {tr.spec.task_id}"))
            for wid in p.workers:
                if not p.waiting:
                    break
                w = self.workers[wid]
                if w.connected and not w.tasks:
                    tid = p.waiting.popleft()
                    self.tasks[tid].state = "ready"  # _dispatch's precondition; claimed
                    self._dispatch(tid, wid)  # tasks never reach the queue again

    def _ready_view(self) -> list[TaskView]:
        """Every ready task in queue order (kept until the queue changes)."""
        if self._view is None:
            ready = sorted((tr for tr in self.tasks.values() if tr.state == "ready"),
                           key=lambda tr: (-tr.priority, tr.seq))
            self._view = [TaskView(tr.spec, tr.priority, None, tr.attempt) for tr in ready]
        return self._view

    def _make_ready(self, tr: TaskRun) -> None:
        self._view = None
        super()._make_ready(tr)

    def _pop_head(self) -> TaskRun | None:
        """Remove and return the queue's first ready task (stale entries dropped)."""
        q = self.queue
        while q:
            negp, seq, tid = heapq.heappop(q)
            tr = self.tasks[tid]
            if tr.state == "ready" and tr.seq == seq and -negp == tr.priority:
                return tr
        return None

    def _finish(self, tr: TaskRun, result: str) -> None:
        tid = tr.spec.task_id
        if tr.worker is not None and tr.worker in self.pool_of:
            self.pool_of[tr.worker].owned.discard(tid)
        if result == "SUCCESS":
            self.results[tid] = self.pw.results.get(tid, math.nan)
            self.counts["completion"] += 1
        super()._finish(tr, result)  # kicks a scheduling pass
        self._joins()
