"""SimExecutor: replays a job trace on a modelled cluster in simulated time.

One SimPy process owns the scheduling loop. Between two scheduling instants
every job's progress is computed analytically from its rate (iterations/s from
the throughput table, times a communication factor), so the number of events
grows with arrivals, completions and decisions, never with iterations.

Two knobs shape the semantics (see docs/semantics.md):

``instants``
    ``"exact"``: every arrival, completion and wake-up is its own instant
    (optionally delayed to the next multiple of ``slot_s``).
    ``"coalesce"``: the ElasticFlow artifact's slot-coalescing rule
    (POLICIES.md 1.4).
    ``"rounds"``: fixed rounds ``t0, t0+S, ...`` from the first arrival (Themis,
    Chronus); events wait for the next round boundary.
``completion``
    ``"exact"``: the executor finishes a job the moment its work is done.
    ``"declared"``: the job finishes at the end the policy declared (the
    artifact's planned ends), or, when the policy allows it, at the first
    instant that notices the work is done.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import simpy

from sim.control import (
    Admit,
    Controller,
    Declare,
    Decline,
    Note,
    Resize,
    Start,
    Stop,
    Vacate,
    Wake,
)
from sim.engine.overhead import ChangeOverhead, ChargeContext, OverheadModel
from sim.model.cluster import ClusterSpec
from sim.model.job import JobSpec
from sim.model.snapshot import JobStatus, JobView, Snapshot
from sim.model.throughput import ThroughputTable

INF = math.inf


@dataclass
class EngineConfig:
    """Executor semantics. The ``elasticflow-artifact`` preset fills these from the policy's traits."""

    instants: str = "exact"  # "exact" | "coalesce" | "rounds"
    completion: str = "exact"  # "exact" | "declared"
    slot_s: float = 0.0
    detect_done: bool = True  # declared mode: may an instant notice finished work early?
    judge: str = "end"  # "end" | "real_end": which time is compared with the deadline
    idle_step_s: float = 10.0
    max_idle_steps: int = 1000
    horizon_s: float = INF
    queued_ends_for_all: bool = False  # artifact: every runnable job has an end event queued
    checkpoint_factor: float = 0.0  # checkpoint size = factor x gradient size; 0 = no transfers
    # "replace": a decision's wake-ups replace the previous ones. The ElasticFlow
    # artifact keeps queued wake-ups until their time, in time buckets shared with end
    # events and arrivals, and a bucket disappears when the last end event or arrival
    # leaves it, wake-ups and all. "keep" queues every wake-up; "if-first" queues only
    # the earliest, and only if it comes before every queued event (declared ends
    # taken before overheads extend them) (POLICIES.md 2.5 step 3.4, 2.8).
    wake_rule: str = "replace"
    # declared mode: no progress is counted past the job's declared real end (the
    # artifact's progress rule, POLICIES.md 1.5): a job delayed by overheads keeps a
    # remainder and is planned again instead of finishing early
    clip_at_real_end: bool = False


@dataclass
class JobRun:
    """Mutable per-job state owned by the executor."""

    spec: JobSpec
    status: str = "future"  # future|new|waiting|running|paused|done|declined|unfinished
    gpus: tuple[int, ...] = ()
    iter_left: float = 0.0
    executed_s: float = 0.0
    gpu_s: float = 0.0
    start_s: float | None = None
    end_s: float | None = None  # declared (logged) end
    event_s: float | None = None  # when the completion is processed
    real_end_s: float | None = None
    overhead_s: float = 0.0  # pending: no progress for this long
    overhead_total_s: float = 0.0
    last_s: float = 0.0
    rate: float = 0.0  # work units per second while running
    iter_rate: float = 0.0  # iterations per second (differs from rate for duration work)
    factor: float = 1.0  # communication slowdown factor
    preemptions: int = 0
    rescales: int = 0
    finish_s: float | None = None
    met: bool | None = None
    history: list[tuple[float, int]] = field(default_factory=list)  # (time, num GPUs)
    final_gpus: int = 0  # GPUs held when it finished
    ckpt_nodes: frozenset[int] = frozenset()  # nodes holding its latest checkpoint
    transfers: int = 0  # checkpoint transfers it waits for (no progress meanwhile)
    xfer_gen: int = 0  # invalidates transfers of an earlier allocation

    def view(self) -> JobView:
        return JobView(self.spec, _STATUS[self.status], self.gpus, self.iter_left,
                       self.executed_s, self.gpu_s, self.start_s, self.end_s,
                       self.preemptions, self.rescales)


_STATUS = {
    "new": JobStatus.NEW,
    "waiting": JobStatus.WAITING,
    "running": JobStatus.RUNNING,
    "paused": JobStatus.PAUSED,
}


class Recorder:
    """Collects the event log and the cluster timeline as plain row lists."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str, int, str]] = []
        self.timeline: list[tuple[float, int, int, int]] = []

    def event(self, t: float, kind: str, job: str = "", gpus: int = 0, detail: str = "") -> None:
        self.events.append((t, kind, job, gpus, detail))

    def sample(self, t: float, allocated: int, running: int, queued: int) -> None:
        if self.timeline and self.timeline[-1][0] == t:
            self.timeline[-1] = (t, allocated, running, queued)
        else:
            self.timeline.append((t, allocated, running, queued))


class SimExecutor:
    """Runs one policy over one trace on one cluster.

    Args:
        jobs: the trace, sorted by submit time (stable).
        cluster, table: the modelled cluster and its throughput table.
        controller: wraps the policy.
        config: semantics knobs.
        overhead: restart/scaling overhead model.
        comm_factor: optional ``(job, gpus) -> factor <= 1`` communication slowdown.
        work: ``"iterations"`` (train ``spec.iterations``) or ``"duration"``
            (run ``spec.duration_s`` seconds at the requested size).
        progress: optional callback ``(now_s, done, total)`` for progress bars.
        plan_table: the table policies see in the snapshot (default ``table``); the
            runner passes one that includes the communication slowdown.
    """

    def __init__(
        self,
        jobs: list[JobSpec],
        cluster: ClusterSpec,
        table: ThroughputTable,
        controller: Controller,
        *,
        config: EngineConfig | None = None,
        overhead: OverheadModel | None = None,
        comm_factor: Callable[[JobSpec, tuple[int, ...]], float] | None = None,
        work: str = "iterations",
        progress: Callable[[float, int, int], None] | None = None,
        checkpoint_MB: Callable[[JobSpec], float] | None = None,
        plan_table: ThroughputTable | None = None,
    ) -> None:
        self.cluster = cluster
        self.table = table
        self.plan_table = table if plan_table is None else plan_table
        self.controller = controller
        self.cfg = config or EngineConfig()
        self.overhead = overhead or ChangeOverhead()
        self.comm_factor = comm_factor
        self.work = work
        self.progress = progress
        self.env = simpy.Environment()
        self.rec = Recorder()
        # Checkpoints move over the modelled network when a job migrates or resumes on
        # other nodes; the job makes no progress until its checkpoint has arrived.
        self.checkpoint_MB = checkpoint_MB
        self.network = None
        if checkpoint_MB is not None:
            from sim.engine.network import Network

            self.network = Network(self.env, cluster)
        self._poke: simpy.Event | None = None
        self.runs: dict[str, JobRun] = {}
        for s in jobs:
            r = JobRun(spec=s, iter_left=float(s.iterations))
            self.runs[s.job_id] = r
        self.pending_arrivals = [self.runs[s.job_id] for s in jobs]  # sorted by submit
        self._next_arrival = 0
        # Per-instant work is kept proportional to the jobs that change: ``active`` and
        # ``views`` keep the runnable jobs in arrival order, ``running`` those holding
        # GPUs, ``events`` the pending completion times, and only the views of running
        # or changed jobs are rebuilt at an instant.
        self.active: dict[str, JobRun] = {}
        self.running: dict[str, JobRun] = {}
        self.views: dict[str, JobView] = {}
        self.events: dict[str, float] = {}
        self.parked: dict[str, float] = {}  # declared ends of jobs holding no GPUs
        self._dirty: set[str] = set()
        self.allocated = 0
        self.wakes: set[float] = set()
        self._arrival_times = [r.spec.submit_s for r in self.pending_arrivals]
        self.instant = 0
        self.last_instant_s = 0.0
        self.done_count = 0
        self.total = len(jobs)
        self._finished_now: list[str] = []

    # ------------------------------------------------------------------ public
    def run(self) -> None:
        """Simulate until every job has finished or been declined."""
        self.env.process(self._loop())
        self.env.run()

    # ------------------------------------------------------------- main loop
    def _loop(self) -> Iterable[simpy.Event]:
        if not self.pending_arrivals:
            return
        t = float(self.pending_arrivals[0].spec.submit_s)
        if self.cfg.instants == "exact" and self.cfg.slot_s > 0:
            t = self._align(t)
        yield self.env.timeout(t)
        idle = 0
        while True:
            now = self.env.now
            self._instant(now)
            if self.done_count == self.total:
                return
            nxt = self._next_instant(now)
            if nxt is None:
                if not self.active:
                    # Nothing queued and nothing runnable: wait for the next arrival.
                    if self._next_arrival >= len(self.pending_arrivals):
                        return
                    nxt = float(self.pending_arrivals[self._next_arrival].spec.submit_s)
                else:
                    idle += 1
                    if idle > self.cfg.max_idle_steps:
                        self._give_up(now)
                        return
                    nxt = now + self.cfg.idle_step_s
            else:
                idle = 0
            if nxt > self.cfg.horizon_s:
                self._give_up(now)
                return
            if self.network is None:
                yield self.env.timeout(max(nxt - now, 0.0))
                continue
            # A finished checkpoint transfer can bring a completion forward: wake up,
            # recompute the next instant, and wait again.
            while True:
                self._poke = self.env.event()
                wait = self.env.timeout(max(nxt - self.env.now, 0.0))
                yield self.env.any_of([wait, self._poke])
                if wait.processed or self.env.now >= nxt:
                    break
                nxt = self._next_instant(self.env.now) or nxt

    def _align(self, t: float) -> float:
        s = self.cfg.slot_s
        return math.ceil(t / s - 1e-9) * s

    # --------------------------------------------------------- event queue
    def _event_times(self) -> list[float]:
        """Distinct times of queued events (arrivals, completions, wake-ups), sorted.

        Only the earliest time and whether a second one exists matter to the
        instant rules, but the set is small, so it is built in full.
        """
        times: set[float] = set(self.events.values())
        arr = self.pending_arrivals
        i = self._next_arrival
        if i < len(arr):
            first = arr[i].spec.submit_s
            times.add(float(first))
            # the next distinct arrival time, if any (enough for the >= 2 test)
            while i < len(arr) and arr[i].spec.submit_s == first:
                i += 1
            if i < len(arr):
                times.add(float(arr[i].spec.submit_s))
        times.update(self.wakes)
        if self.cfg.queued_ends_for_all and len(self.running) < len(self.active):
            # the artifact queues an end event for every runnable job; jobs without
            # GPUs end after every running one, so they only add "a later event"
            times.add(INF)
        return sorted(times)

    def _next_instant(self, now: float) -> float | None:
        times = self._event_times()
        if not times or times[0] == INF:
            return None
        e1 = times[0]
        if self.cfg.instants == "rounds":
            # fixed rounds t, t+S, t+2S, ...: every event waits for the next boundary
            S = self.cfg.slot_s
            return now + max(1, math.ceil((e1 - now) / S - 1e-9)) * S
        if self.cfg.instants == "coalesce":
            S = self.cfg.slot_s
            if e1 - now <= S and len(times) >= 2:
                return now + S
            return max(e1, now)
        if self.cfg.slot_s > 0:
            return max(self._align(e1), now + (0 if e1 > now else self.cfg.slot_s))
        return max(e1, now)

    # ------------------------------------------------------------ one instant
    def _instant(self, now: float) -> None:
        self._advance_all(now)
        self._complete_due(now)
        self._admit_arrivals(now)
        if self.wakes:
            self.wakes = {w for w in self.wakes if w > now}
        views = self.views
        # in trace order: a job's first view fixes its place in the snapshot (set order
        # would make it depend on string hashing, i.e. differ between processes)
        runs = self.runs
        for jid in sorted(self._dirty, key=lambda j: runs[j].spec.idx):
            r = self.active.get(jid)
            if r is not None:
                views[jid] = r.view()
        self._dirty = set()
        for jid, r in self.running.items():
            views[jid] = r.view()
        snap = Snapshot(
            now_s=now, cluster=self.cluster, table=self.plan_table,
            jobs=tuple(views.values()), finished=tuple(self._finished_now),
            instant=self.instant, slot_s=self.cfg.slot_s,
            more_arrivals=self._next_arrival < len(self.pending_arrivals),
            by_id=dict(views), holding=tuple(self.running),
            new=tuple(self._new_now),
        )
        actions = self.controller.step(snap)
        self._apply(now, actions)
        self.instant += 1
        self.last_instant_s = now
        running = len(self.running)
        self.rec.sample(now, self.allocated, running, len(self.active) - running)
        if self.progress is not None:
            self.progress(now, self.done_count, self.total)

    def _advance(self, r: JobRun, now: float) -> None:
        """Progress a running job from ``r.last_s`` to ``now`` at its current rate."""
        dt = now - r.last_s
        r.last_s = now
        if dt <= 0:
            return
        if r.transfers:
            r.overhead_s = max(r.overhead_s - dt, 0.0)  # restart work overlaps the copy
            return
        eff = dt - r.overhead_s
        if self.cfg.clip_at_real_end and r.real_end_s is not None and now > r.real_end_s:
            eff -= now - r.real_end_s
        if eff < 0:
            r.overhead_s = -eff if self.overhead.carry else 0.0
            return
        r.overhead_s = 0.0
        before = self._remaining(r)
        r.executed_s += eff
        r.gpu_s += eff * len(r.gpus)
        # iterations are tracked for every job (Themis reads both measures)
        r.iter_left -= eff * (r.rate if self.work == "iterations" else r.iter_rate)
        # Declared mode: an instant may notice that the work is already done.
        if (self.cfg.completion == "declared" and self.cfg.detect_done
                and self._remaining(r) <= 1e-9 and before > 1e-9
                and (r.event_s is None or r.event_s > now)):
            rate = r.rate if r.rate > 0 else 1.0
            if self.work == "iterations":
                # artifact early-finish rule (POLICIES.md 1.5): t_prev + ceil(iter_left / tput)
                end = (now - dt) + math.ceil(before / rate - 1e-9)
            else:
                end = (now - eff) + before
            r.end_s = end
            if r.real_end_s is None:  # the artifact keeps the planned real end
                r.real_end_s = end
            left = r.event_s
            r.event_s = now
            self.events[r.spec.job_id] = now
            if left is not None and self.cfg.wake_rule != "replace":
                self._drop_empty_buckets([left])

    def _remaining(self, r: JobRun) -> float:
        if self.work == "iterations":
            return r.iter_left
        return r.spec.duration_s - r.executed_s

    def _advance_all(self, now: float) -> None:
        for r in self.running.values():
            self._advance(r, now)

    def _complete_due(self, now: float) -> None:
        self._finished_now = []
        due = [jid for jid, t in self.events.items() if t <= now + 1e-9]
        if not due:
            return
        due.sort(key=lambda jid: self.runs[jid].spec.idx)
        for jid in due:
            self._finish(self.runs[jid], now)

    def _finish(self, r: JobRun, now: float) -> None:
        if self.cfg.completion == "declared" and r.end_s is not None:
            end = r.end_s
        else:  # exact: the work finished at event_s even if the instant comes later (slots)
            end = r.event_s if r.event_s is not None else now
        r.finish_s = end
        judge = end
        if self.cfg.judge == "real_end" and r.real_end_s is not None:
            judge = r.real_end_s
        r.met = None if r.spec.best_effort else judge <= r.spec.deadline_s + 1e-9
        r.final_gpus = len(r.gpus)
        self.rec.event(now, "finished", r.spec.job_id, len(r.gpus), f"end={end:g}")
        r.history.append((end, 0))
        self._remove(r)
        r.status = "done"
        r.gpus = ()
        r.event_s = None
        self.done_count += 1
        self._finished_now.append(r.spec.job_id)

    def _remove(self, r: JobRun) -> None:
        jid = r.spec.job_id
        self.active.pop(jid, None)
        self.views.pop(jid, None)
        self.events.pop(jid, None)
        self.parked.pop(jid, None)
        if self.running.pop(jid, None) is not None:
            self.allocated -= len(r.gpus)

    def _admit_arrivals(self, now: float) -> None:
        arr = self.pending_arrivals
        self._new_now: list[str] = []
        while self._next_arrival < len(arr) and arr[self._next_arrival].spec.submit_s <= now + 1e-9:
            r = arr[self._next_arrival]
            self._next_arrival += 1
            r.status = "new"
            r.last_s = now
            jid = r.spec.job_id
            self.active[jid] = r
            self._dirty.add(jid)
            self._new_now.append(jid)
            self.rec.event(now, "arrived", jid)

    # ---------------------------------------------------------- applying
    def _apply(self, now: float, actions: list) -> None:
        by_id = self.runs
        old_gpus: dict[str, tuple[int, ...]] = {}
        declared: dict[str, Declare] = {}
        changed: list[JobRun] = []
        dirty = self._dirty
        # A decision's wake-up replaces the previous one, like its declared ends (a
        # policy that recomputes its next wake-up must not be woken by a stale one).
        if self.cfg.wake_rule == "replace":
            self.wakes = set()
        wake_at: list[float] = []
        vacated: list[float] = []
        for a in actions:
            if isinstance(a, Decline):
                r = by_id[a.job_id]
                self._remove(r)
                r.status = "declined"
                r.met = False
                r.finish_s = None
                self.done_count += 1
                self.rec.event(now, "declined", a.job_id)
            elif isinstance(a, Admit):
                by_id[a.job_id].status = "waiting"
                dirty.add(a.job_id)
                self.rec.event(now, "admitted", a.job_id)
            elif isinstance(a, Stop):
                r = by_id[a.job_id]
                old_gpus[a.job_id] = r.gpus
                self.allocated -= len(r.gpus)
                self.running.pop(a.job_id, None)
                r.gpus = ()
                r.status = "paused"
                r.preemptions += 1
                if not self.overhead.carry and not self.overhead.keep_idle:
                    r.overhead_s = 0.0
                r.history.append((now, 0))
                changed.append(r)
                dirty.add(a.job_id)
                self.rec.event(now, "stopped", a.job_id)
            elif isinstance(a, Start | Resize):
                r = by_id[a.job_id]
                old_gpus[a.job_id] = r.gpus
                if isinstance(a, Resize) and len(a.gpus) != len(r.gpus):
                    r.rescales += 1
                if r.start_s is None:
                    r.start_s = now
                kind = "resized" if isinstance(a, Resize) else (
                    "started" if r.status in ("waiting", "new") else "resumed")
                self.allocated += len(a.gpus) - len(r.gpus)
                if not r.gpus:
                    r.last_s = now
                r.gpus = a.gpus
                r.status = "running"
                self.running[a.job_id] = r
                r.history.append((now, len(a.gpus)))
                changed.append(r)
                dirty.add(a.job_id)
                self.rec.event(now, kind, a.job_id, len(a.gpus))
            elif isinstance(a, Declare):
                declared[a.job_id] = a
            elif isinstance(a, Wake):
                if a.at_s > now:
                    wake_at.append(a.at_s)
            elif isinstance(a, Vacate):
                vacated.append(a.at_s)
            elif isinstance(a, Note):
                self.rec.event(now, "note", "", 0, a.text)
        for r in changed:
            self._set_rate(r)
            if self.network is not None:
                self._move_checkpoint(r, now)
        # overheads, charged in the executor's job order
        if self.overhead.needs_all:
            changes = [(jid, old_gpus.get(jid, r.gpus), r.gpus)
                       for jid, r in self.running.items()]
        else:
            changes = [(r.spec.job_id, old_gpus.get(r.spec.job_id, ()), r.gpus)
                       for r in changed if r.gpus]
        waiting: tuple[tuple[str, int], ...] = ()
        if self.overhead.keep_idle:
            waiting = tuple((jid, r.spec.num_gpu) for jid, r in self.active.items()
                            if not r.gpus)
        ctx = ChargeContext(instant=self.instant, slot_s=self.cfg.slot_s,
                            cluster_gpus=self.cluster.num_gpus,
                            more_arrivals=self._next_arrival < len(self.pending_arrivals),
                            waiting=waiting)
        charged = self.overhead.charge(ctx, changes) if changes or waiting else {}
        carry = self.overhead.carry
        for jid, o in charged.items():
            r = by_id[jid]
            r.overhead_s = (r.overhead_s if carry else 0.0) + o
            r.overhead_total_s += o
        events = self.events
        # completion bookkeeping
        if self.cfg.completion == "declared":
            # the latest decision's declarations replace all earlier ones; the end a
            # job without GPUs is declared is parked: it never completes the job, but
            # it holds its time bucket like the artifact's queued end events do
            extends = self.overhead.extends_end
            buckets = self.cfg.wake_rule != "replace"
            parked = self.parked
            left: list[float] = list(vacated)
            for table in (events, parked):
                for jid in [j for j in table if j not in declared]:
                    r = by_id[jid]
                    left.append(table.pop(jid))
                    r.end_s = r.event_s = r.real_end_s = None
                    dirty.add(jid)
            for jid, d in declared.items():
                r = by_id[jid]
                old = events.pop(jid, None)
                if old is None:
                    old = parked.pop(jid, None)
                if old is not None and old != d.event_s:
                    left.append(old)
                r.end_s, r.event_s, r.real_end_s = d.end_s, d.event_s, d.real_end_s
                if r.event_s is not None and r.event_s < INF:
                    (events if r.gpus else parked)[jid] = r.event_s
                dirty.add(jid)
            if buckets:
                self._drop_empty_buckets(left)
            self._queue_wakes(wake_at)
            left = []
            for jid in declared:
                r = by_id[jid]
                o = charged.get(jid, 0.0)
                if extends and o and r.event_s is not None:
                    left.append(r.event_s)
                    r.end_s += o
                    r.event_s += o
                    if r.event_s < INF:
                        events[jid] = r.event_s
            if buckets:
                self._drop_empty_buckets(left)
        else:
            self._queue_wakes(wake_at)
            # progress is linear between instants, so only jobs whose rate or
            # overhead changed get a new predicted end
            todo = {r.spec.job_id: r for r in changed}
            for jid in charged:
                todo[jid] = by_id[jid]
            for jid, r in todo.items():
                if r.status not in ("running", "paused"):
                    continue
                if r.transfers:
                    r.end_s = r.event_s = r.real_end_s = None
                    events.pop(jid, None)
                elif r.gpus and r.rate > 0:
                    end = now + r.overhead_s + max(self._remaining(r), 0.0) / r.rate
                    r.end_s = r.event_s = r.real_end_s = end
                    events[jid] = end
                else:
                    r.end_s = r.event_s = r.real_end_s = None
                    events.pop(jid, None)
                dirty.add(jid)

    def _queue_wakes(self, times: list[float]) -> None:
        if not times:
            return
        if self.cfg.wake_rule != "if-first":
            self.wakes.update(times)
            return
        w = min(times)
        first = min(self.wakes, default=INF)
        if self._next_arrival < len(self.pending_arrivals):
            first = min(first, self._arrival_times[self._next_arrival])
        for table in (self.events, self.parked):
            if table:
                first = min(first, min(table.values()))
        if w < first:
            self.wakes.add(w)

    def _drop_empty_buckets(self, left: list[float]) -> None:
        """Wake-ups at times that end events just left, with no end event or arrival
        remaining there, disappear with their bucket (the artifact's event queue)."""
        if not self.wakes:
            return
        gone = [t for t in left if t in self.wakes]
        if not gone:
            return
        still = set(self.events.values())
        still.update(self.parked.values())
        arr = self._arrival_times
        for t in gone:
            if t in still:
                continue
            i = bisect_left(arr, t, self._next_arrival)
            if i < len(arr) and arr[i] == t:
                continue
            self.wakes.discard(t)

    def _move_checkpoint(self, r: JobRun, now: float) -> None:
        """Copy ``r``'s checkpoint to the nodes it now runs on that do not hold it."""
        r.xfer_gen += 1
        r.transfers = 0
        gpn = self.cluster.gpus_per_node
        nodes = frozenset(g // gpn for g in r.gpus)
        if not nodes:
            return  # stopped: the checkpoint stays where it was written
        src_nodes = r.ckpt_nodes
        r.ckpt_nodes = nodes
        missing = sorted(nodes - src_nodes)
        if not src_nodes or not missing:
            return
        assert self.network is not None and self.checkpoint_MB is not None
        size = self.checkpoint_MB(r.spec)
        src = min(src_nodes)
        gen = r.xfer_gen
        for dst in missing:
            ev = self.network.transfer(src, dst, size, label=f"ckpt:{r.spec.job_id}")
            r.transfers += 1
            ev.callbacks.append(lambda e, r=r, gen=gen, dst=dst: self._ckpt_arrived(r, gen, e))
        self.rec.event(now, "checkpoint", r.spec.job_id, len(r.gpus),
                       f"{size:g} MB from node {src} to {missing}")

    def _ckpt_arrived(self, r: JobRun, gen: int, ev: simpy.Event) -> None:
        if gen != r.xfer_gen or r.status != "running":
            return
        now = self.env.now
        self._advance(r, now)
        r.transfers -= 1
        if r.transfers:
            return
        self.rec.event(now, "checkpoint_arrived", r.spec.job_id, len(r.gpus))
        if r.rate > 0:
            end = now + r.overhead_s + max(self._remaining(r), 0.0) / r.rate
            r.end_s = r.event_s = r.real_end_s = end
            self.events[r.spec.job_id] = end
            self._dirty.add(r.spec.job_id)
        if self._poke is not None and not self._poke.triggered:
            self._poke.succeed()

    def _set_rate(self, r: JobRun) -> None:
        g = len(r.gpus)
        rate = self.table.rate(r.spec.model, r.spec.batch_size, g) if g else 0.0
        r.factor = 1.0
        if g and self.comm_factor is not None:
            r.factor = self.comm_factor(r.spec, r.gpus)
            rate *= r.factor
        r.iter_rate = rate
        # duration-based jobs run one second of work per second
        r.rate = (1.0 if g else 0.0) if self.work == "duration" else rate

    def _give_up(self, now: float) -> None:
        for r in list(self.active.values()):
            self._remove(r)
            r.status = "unfinished"
            r.met = None if r.spec.best_effort else False
            self.rec.event(now, "unfinished", r.spec.job_id)
