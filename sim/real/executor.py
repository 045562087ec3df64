"""RealExecutor: applies the Controller's actions to actual Dask workers in wall-clock time.

A sibling of :class:`~sim.engine.sim.SimExecutor`: the same policy object, the
same :class:`~sim.control.Controller`, the same actions and the same event-log
columns. Time is compressed: a policy sees ``now_s = (wall - t0) x compression``,
a trace arrival at ``submit_s`` happens ``submit_s / compression`` wall seconds
after the start, and every logged time is scaled back the same way.

Scheduling instants happen at arrivals, completions (a segment that finished
its work), failures (a segment lost with its worker) and policy wake-ups.

DL jobs run as segments of :func:`~sim.real.trainer.run_segment`, one Dask task
per (job, allocation), pinned to the node of the job's first GPU with that
node's share of its GPUs as a Dask resource. Stop, resize and migration raise the
segment's stop flag, wait for it to checkpoint and return, then submit the next
segment, which resumes from the checkpoint. Nothing about these costs is
modelled: the gap between the decision and the moment the new segment iterates
again is measured and logged as the job's overhead (event ``overhead``).

CPU tasks (Dispatch / Reprioritise actions) use hold-and-dispatch: a dispatched
task waits in the executor's per-worker priority queue and is submitted, pinned
to its worker, only when a slot frees there, so a reprioritisation takes effect
without cancelling anything (WORKFLOWS.md section 3).

Task workers are the places CPU tasks run: by default each node's ``cpu_slots``;
or given explicitly (:class:`TaskWorker`: a batch-job process that connects at
``connect_s``, started then as a real Dask worker process when ``launch`` is set);
or made from worker *pools* (:class:`~sim.model.pools.PoolSpec`), as
:class:`~sim.engine.pools.PoolExecutor` does in simulation: the policy only
reorders the queue, a decision carrying priorities is one reprioritisation event,
pools join on workflow events and claim tasks in batches from the head of the
queue, and start what they claimed in claim order (per-pool FIFO) as their slots
free. Completed tasks' return values reach the policy as ``Snapshot.results``.
Task activity is also recorded as a TaskVine transaction log (``records``), the
format the simulated task executors write.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.control import (
    Admit,
    Controller,
    Declare,
    Decline,
    Dispatch,
    Install,
    Note,
    Reprioritise,
    Resize,
    Start,
    Stop,
    Wake,
)
from sim.model.cluster import ClusterSpec
from sim.model.job import JobSpec, TaskSpec
from sim.model.pools import PoolSpec
from sim.model.snapshot import JobStatus, JobView, Snapshot, TaskView, WorkerView
from sim.model.tasks import LibrarySpec
from sim.model.throughput import ThroughputTable
from sim.real import trainer
from sim.real.cluster import Workers

_STATUS = {"new": JobStatus.NEW, "waiting": JobStatus.WAITING,
           "running": JobStatus.RUNNING, "paused": JobStatus.PAUSED}


@dataclass
class RealConfig:
    """Real-mode knobs (the scenario's ``real:`` block)."""

    compression: float = 100.0  # simulated seconds per wall second
    step_s: float = 0.02  # trainer: wall seconds between stop-flag checks
    checkpoint_every_s: float = 2.0  # trainer: periodic checkpoint, wall seconds
    dim: int = 128  # trainer: model size (floats)
    stop_timeout_s: float = 30.0  # wall seconds to wait for a stopping segment
    max_retries: int = 5  # segment failures per job before giving up on it
    tick_s: float = 0.25  # wall seconds between health checks when nothing happens
    launch_timeout_s: float = 120.0  # wall seconds a launched task worker may take to join


@dataclass
class Segment:
    n: int
    future: Any
    gpus: tuple[int, ...]
    rate: float  # iterations/s from the table (simulated time)
    kind: str  # start | resume | resize
    t_decided: float  # wall time of the decision
    t_idle: float  # wall time the job last made progress (decision, or old segment's stop)
    begin: tuple[float, int] | None = None  # (wall time it began iterating, iteration)


@dataclass
class RealJob:
    """Per-job state; the attributes :func:`~sim.metrics.summary.job_table` reads."""

    spec: JobSpec
    status: str = "future"
    gpus: tuple[int, ...] = ()
    iters_done: int = 0
    executed_s: float = 0.0
    gpu_s: float = 0.0
    start_s: float | None = None
    end_s: float | None = None
    preemptions: int = 0
    rescales: int = 0
    finish_s: float | None = None
    met: bool | None = None
    final_gpus: int = 0
    overhead_total_s: float = 0.0
    history: list[tuple[float, int]] = field(default_factory=list)
    segments: int = 0
    seg: Segment | None = None
    failures: int = 0
    lost_iterations: int = 0
    last_stop: float | None = None  # wall time its last stopped segment stopped iterating


@dataclass
class RealTask:
    spec: TaskSpec
    priority: float
    status: str = "future"  # future | ready | queued | running | done | failed
    worker: str | None = None
    future: Any = None
    attempt: int = 1
    seq: int = 0  # FIFO key among equal priorities: order it (re)entered the queue
    claim: int = 0  # order a pool claimed it (its pool starts claims in this order)
    t_submit: float = 0.0  # simulated time it was submitted to Dask


@dataclass
class TaskWorker:
    """A place CPU tasks run: a node's task slots, a worker pool, a batch-job process.

    Attributes:
        worker_id: the id policies dispatch to.
        slots: cores (tasks of one core) it runs at once.
        connect_s: simulated time it connects.
        launch: start its Dask worker process at ``connect_s`` with this many threads
            (it connects when the process has joined); 0: it runs already.
        resources: Dask resource a task asks for, per core (``cpu0``, ``pool1``...).
        pins: further submit keyword arguments (``workers=[...]``...).
        fifo: start queued tasks in the order they were claimed (pools), not by priority.
    """

    worker_id: str
    slots: float
    connect_s: float = 0.0
    launch: int = 0
    resources: str = ""
    pins: dict[str, Any] = field(default_factory=dict)
    fifo: bool = False
    connected: bool = False
    launched: float = 0.0  # wall time its process was launched (0: not launched)
    libraries: dict[str, str] = field(default_factory=dict)  # name -> installing | ready

    def submit_kwargs(self, cores: float) -> dict[str, Any]:
        kw = dict(self.pins)
        kw["resources"] = {self.resources: cores}
        return kw


@dataclass
class RealPool:
    """A worker pool in real mode: one Dask worker process with a thread per pool worker."""

    spec: PoolSpec
    joined_s: float | None = None  # when it connects (None: its rule has not fired)
    owned: set[str] = field(default_factory=set)  # claimed and not finished


class RealExecutor:
    """Runs one policy over one trace on Dask workers.

    Args:
        jobs: the trace, sorted by submit time.
        cluster, table: the modelled cluster (one Dask worker per node) and rates.
        controller: wraps the policy.
        workers: connected Dask workers (:func:`sim.real.cluster.connect`).
        ckpt_dir: folder for checkpoints and flags (shared with the workers).
        config: real-mode knobs.
        tasks: CPU tasks (``params`` = ``{"fn": name in trainer.TASK_FUNCTIONS, "args": {...}}``,
            or what ``task_call`` reads).
        task_workers: where CPU tasks run (default: ``node<k>`` with ``workers.cpu_slots``).
        pools: worker pools that claim the tasks (then the policy only reprioritises).
        task_call: task -> (function name in ``trainer.TASK_FUNCTIONS``, its arguments).
        on_result: ``(task, value, now_s)`` for each task that succeeded, called in the
            executor's loop as it learns of it (a driver storing results).
        libraries: library name -> spec, shown to policies (``Install`` starts one).
        progress: optional ``(now_s, done, total)`` callback.
        work: ``"iterations"`` (train ``spec.iterations`` at the table's rate) or
            ``"duration"`` (run ``spec.duration_s`` simulated seconds at any size,
            as the simulator does for duration-based policies).
    """

    def __init__(self, jobs: list[JobSpec], cluster: ClusterSpec, table: ThroughputTable,
                 controller: Controller, workers: Workers, ckpt_dir: str | Path, *,
                 config: RealConfig | None = None, tasks: list[TaskSpec] | None = None,
                 progress: Callable[[float, int, int], None] | None = None,
                 work: str = "iterations", task_workers: list[TaskWorker] | None = None,
                 pools: tuple[PoolSpec, ...] = (),
                 task_call: Callable[[TaskSpec], tuple[str, dict[str, Any]]] | None = None,
                 on_result: Callable[[TaskSpec, Any, float], None] | None = None,
                 libraries: dict[str, LibrarySpec] | None = None) -> None:
        self.work = work
        self.cluster, self.table, self.controller = cluster, table, controller
        self.workers = workers
        self.client = workers.client
        self.ckpt_dir = Path(ckpt_dir)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = config or RealConfig()
        self.C = float(self.cfg.compression)
        self.progress = progress
        self.runs = {s.job_id: RealJob(s) for s in jobs}
        self.arrivals = sorted(jobs, key=lambda s: (s.submit_s, s.idx))
        self.tasks = {t.task_id: RealTask(t, t.priority) for t in (tasks or [])}
        self.task_arrivals = sorted(self.tasks.values(),
                                    key=lambda t: (t.spec.submit_s, t.spec.task_id))
        self.pools = [RealPool(p) for p in pools]
        if task_workers is None and not pools:
            task_workers = [TaskWorker(f"node{k}", float(workers.cpu_slots), connected=True,
                                       resources=f"cpu{k}" if workers.by_resource else "CPU",
                                       pins=dict(workers.cpu_pins[k]))
                            for k in range(cluster.num_nodes)] if self.tasks else []
        self.task_workers = {w.worker_id: w for w in task_workers or []}
        self.task_call = task_call or _params_call
        self.on_result = on_result
        self.libraries = dict(libraries or {})
        self.results: dict[str, Any] = {}
        self.counts = {"reprioritisation": 0, "completion": 0}
        self.pool_events: list[tuple[float, str, str]] = []  # as PoolExecutor.events
        self.records: list[tuple[float, str, str, str, tuple]] = []  # TaskVine records
        self.decide_wall_s: list[float] = []  # wall seconds of each policy call
        self._seq = 0
        self._claims = 0
        self._lib_futures: dict[tuple[str, str], Any] = {}
        self.events: list[tuple[float, str, str, int, str]] = []
        self.timeline: list[tuple[float, int, int, int]] = []
        self.active: dict[str, RealJob] = {}
        self.wakes: set[float] = set()
        self.notices: queue.Queue[tuple[str, str, int]] = queue.Queue()
        self.instant = 0
        self.done_count = 0
        self.tasks_done = 0
        self.allocated = 0
        self.failures = 0
        self.segment_log: list[dict[str, Any]] = []  # every returned segment's result
        self.worker_events = 0
        self._next = 0
        self._next_task = 0
        self._finished_now: list[str] = []
        self._new_now: list[str] = []
        self._force = False
        self._known_workers: set[str] | None = None
        self.t0 = 0.0

    # ------------------------------------------------------------------ public
    def run(self) -> None:
        """Run until every job has finished, been declined or given up, and every task ran."""
        self.t0 = time.time()
        first = [s.submit_s for s in self.arrivals[:1]] + [
            t.spec.submit_s for t in self.task_arrivals[:1]]
        if first:
            self.t0 -= min(first) / self.C  # sim time = first arrival at the start
        if self.tasks:
            self.rec(self.now(), "MANAGER", "0", "START")
            self._joins(self.now())
        while not self._all_done():
            self._drain()
            now = self.now()
            if self._due(now):
                self._instant(now)
                continue
            self._wait()
            self._check_workers()
        if self.tasks:
            self.rec(self.now(), "MANAGER", "0", "END")

    def now(self) -> float:
        """Simulated seconds: wall seconds since the start, times the compression."""
        return (time.time() - self.t0) * self.C

    def sim_time(self, wall: float) -> float:
        return (wall - self.t0) * self.C

    # ------------------------------------------------------------- main loop
    def _all_done(self) -> bool:
        return self.done_count == len(self.runs) and self.tasks_done == len(self.tasks)

    def _due(self, now: float) -> bool:
        if self._force:
            return True
        if self._next < len(self.arrivals) and self.arrivals[self._next].submit_s <= now:
            return True
        if (self._next_task < len(self.task_arrivals)
                and self.task_arrivals[self._next_task].spec.submit_s <= now):
            return True
        if any(w.connect_s <= now and not w.connected and not w.launched
               for w in self.task_workers.values()):
            return True
        return any(w <= now for w in self.wakes)

    def _next_time(self) -> float:
        times = list(self.wakes)
        if self._next < len(self.arrivals):
            times.append(self.arrivals[self._next].submit_s)
        if self._next_task < len(self.task_arrivals):
            times.append(self.task_arrivals[self._next_task].spec.submit_s)
        times += [w.connect_s for w in self.task_workers.values()
                  if not w.connected and not w.launched]
        return min(times, default=math.inf)

    def _wait(self) -> None:
        """Block until a segment or task reports, the next timed event, or a tick."""
        dt = (self._next_time() - self.now()) / self.C
        try:
            item = self.notices.get(timeout=max(0.0, min(dt, self.cfg.tick_s)))
        except queue.Empty:
            return
        self.notices.put(item)

    def _drain(self) -> None:
        while True:
            try:
                kind, key, n = self.notices.get_nowait()
            except queue.Empty:
                return
            if kind == "seg":
                r = self.runs[key]
                if r.seg is not None and r.seg.n == n:
                    self._segment_ended(r)
            elif kind == "lib":
                self._library_ended(key)
            else:
                self._task_ended(self.tasks[key])

    # ------------------------------------------------------------ one instant
    def _instant(self, now: float) -> None:
        self._force = False
        self._admit(now)
        self._connect(now)
        self.wakes = {w for w in self.wakes if w > now}
        wall = time.time()
        views = tuple(self._view(r, wall) for r in self.active.values())
        snap = Snapshot(
            now_s=now, cluster=self.cluster, table=self.table, jobs=views,
            finished=tuple(self._finished_now), instant=self.instant, slot_s=0.0,
            more_arrivals=self._next < len(self.arrivals),
            workers=self._worker_views() if self.tasks and not self.pools else (),
            tasks=self._task_views(), libraries=self.libraries,
            results=dict(self.results) if self.tasks else {},
        )
        self._finished_now = []
        self._new_now = []
        w0 = time.time()
        actions = self.controller.step(snap)
        self.decide_wall_s.append(time.time() - w0)
        self._apply(now, actions)
        if self.pools and any(isinstance(a, Reprioritise) for a in actions):
            k = self.counts["reprioritisation"] = self.counts["reprioritisation"] + 1
            self.pool_events.append((now, "reprioritisation", str(k)))
            self.rec(now, "APPLICATION", "reprioritisation", str(k))
            self._joins(now)
        self._claim(now)
        self._pump_tasks()
        self.instant += 1
        running = sum(1 for r in self.active.values() if r.gpus)
        self._sample(now, running, len(self.active) - running)
        if self.progress is not None:
            self.progress(now, self.done_count, len(self.runs))

    def _admit(self, now: float) -> None:
        while self._next < len(self.arrivals) and self.arrivals[self._next].submit_s <= now:
            s = self.arrivals[self._next]
            self._next += 1
            r = self.runs[s.job_id]
            r.status = "new"
            self.active[s.job_id] = r
            self._new_now.append(s.job_id)
            self._event(now, "arrived", s.job_id)
        while (self._next_task < len(self.task_arrivals)
               and self.task_arrivals[self._next_task].spec.submit_s <= now):
            t = self.task_arrivals[self._next_task]
            self._next_task += 1
            self._ready(t, now)

    def _view(self, r: RealJob, wall: float) -> JobView:
        done, executed = r.iters_done, r.executed_s
        seg = r.seg
        if seg is not None and r.gpus:
            begin = self._begin(r)
            if begin is not None and wall > begin[0]:
                run_s = (wall - begin[0]) * self.C
                done = min(begin[1] + int(run_s * seg.rate), self._total(r))
                executed += run_s
        left = float(self._total(r) - done)
        if self.work == "duration":  # iterations left in proportion to the work left
            left *= r.spec.iterations / max(r.spec.duration_s, 1)
        return JobView(r.spec, _STATUS[r.status], r.gpus, left,
                       executed, r.gpu_s, r.start_s, r.end_s, r.preemptions, r.rescales)

    def _begin(self, r: RealJob) -> tuple[float, int] | None:
        """When the job's current segment began iterating, read from its marker file."""
        seg = r.seg
        if seg is None:
            return None
        if seg.begin is None:
            p = trainer.begin_marker(self.ckpt_dir, r.spec.job_id, seg.n)
            try:
                d = json.loads(p.read_text())
            except (OSError, ValueError):
                return None
            seg.begin = (float(d["t_begin"]), int(d["iteration"]))
        return seg.begin

    # ---------------------------------------------------------- applying
    def _apply(self, now: float, actions: list) -> None:
        wall = time.time()
        self.wakes = set()  # a decision's wake-ups replace the previous ones
        stopping: list[RealJob] = []
        starts: list[tuple[RealJob, tuple[int, ...], str]] = []
        for a in actions:
            if isinstance(a, Decline):
                r = self.runs[a.job_id]
                self.active.pop(a.job_id, None)
                r.status, r.met = "declined", False
                self.done_count += 1
                self._event(now, "declined", a.job_id)
            elif isinstance(a, Admit):
                self.runs[a.job_id].status = "waiting"
                self._event(now, "admitted", a.job_id)
            elif isinstance(a, Stop):
                r = self.runs[a.job_id]
                self._request_stop(r)
                stopping.append(r)
                self.allocated -= len(r.gpus)
                r.gpus, r.status = (), "paused"
                r.preemptions += 1
                r.history.append((now, 0))
                self._event(now, "stopped", a.job_id)
            elif isinstance(a, Start | Resize):
                r = self.runs[a.job_id]
                if isinstance(a, Resize):
                    self._request_stop(r)
                    stopping.append(r)
                    if len(a.gpus) != len(r.gpus):
                        r.rescales += 1
                    kind = "resize"
                    label = "resized"
                else:
                    kind = "start" if r.status in ("new", "waiting") else "resume"
                    label = "started" if kind == "start" else "resumed"
                if r.start_s is None:
                    r.start_s = now
                self.allocated += len(a.gpus) - len(r.gpus)
                r.gpus, r.status = a.gpus, "running"
                r.history.append((now, len(a.gpus)))
                starts.append((r, a.gpus, kind))
                self._event(now, label, a.job_id, len(a.gpus))
            elif isinstance(a, Declare):
                self.runs[a.job_id].end_s = a.end_s
            elif isinstance(a, Wake):
                if a.at_s > now:
                    self.wakes.add(a.at_s)
            elif isinstance(a, Note):
                self._event(now, "note", "", 0, a.text)
            elif isinstance(a, Dispatch):
                t = self.tasks[a.task_id]
                t.status, t.worker = "queued", a.worker_id
                self._event(now, "dispatched", a.task_id, 0, a.worker_id)
            elif isinstance(a, Install):
                self._install(a.library, a.worker_id)
            elif isinstance(a, Reprioritise):
                t = self.tasks[a.task_id]
                if t.status in ("ready", "queued"):  # claimed/running tasks keep theirs
                    t.priority = a.priority
        self._collect_stops(stopping)
        for r, gpus, kind in starts:
            if r.status == "running" and r.gpus == gpus:  # not finished while stopping
                self._submit(r, kind, wall)

    def _request_stop(self, r: RealJob) -> None:
        if r.seg is not None:
            trainer.stop_flag(self.ckpt_dir, r.spec.job_id, r.seg.n).touch()

    def _collect_stops(self, stopping: list[RealJob]) -> None:
        """Wait for stopping segments to checkpoint and return (all at once)."""
        from distributed import wait

        segs = [(r, r.seg) for r in stopping if r.seg is not None]
        if not segs:
            return
        # the ones still running after the timeout are handled as failures below
        with contextlib.suppress(TimeoutError):
            wait([s.future for _, s in segs], timeout=self.cfg.stop_timeout_s)
        for r, seg in segs:
            if seg.future.status != "finished":
                self._lost(r, seg, pause=False)
                continue
            res = seg.future.result()
            self._account(r, seg, res)
            self._event(self.sim_time(res["t_end"]), "checkpointed", r.spec.job_id,
                        len(seg.gpus), f"iteration={res['iteration']} "
                        f"save_s={res['save_s'] * self.C:.3f}")
            r.seg = None
            r.last_stop = res["t_stop"]
            if res["done"]:  # it finished its work before it saw the flag
                self.allocated -= len(r.gpus)
                self._finish(r, res, len(seg.gpus))

    def _submit(self, r: RealJob, kind: str, wall: float) -> None:
        gpus = r.gpus
        gpn = self.cluster.gpus_per_node
        node = gpus[0] // gpn
        local = sum(1 for g in gpus if g // gpn == node)
        rate = self.table.rate(r.spec.model, r.spec.batch_size, len(gpus))
        if self.work == "duration":
            rate = 1.0  # one unit of work per simulated second, at any size
        r.segments += 1
        n = r.segments
        t_idle = wall
        if kind == "resize" and r.last_stop is not None:
            t_idle = max(wall, r.last_stop)
        cfg = self.cfg
        fut = self.client.submit(
            trainer.run_segment, r.spec.job_id, n, self._total(r), rate, self.C,
            str(self.ckpt_dir), dim=cfg.dim, step_s=cfg.step_s,
            checkpoint_every_s=cfg.checkpoint_every_s,
            key=f"segment-{r.spec.job_id}-{n}-{id(self):x}", pure=False,
            **self.workers.segment_kwargs(node, local))
        r.seg = Segment(n, fut, gpus, rate, kind, wall, t_idle)
        jid = r.spec.job_id
        fut.add_done_callback(lambda f, jid=jid, n=n: self.notices.put(("seg", jid, n)))

    def _total(self, r: RealJob) -> int:
        """The job's work in trainer iterations."""
        return r.spec.duration_s if self.work == "duration" else r.spec.iterations

    # ------------------------------------------------------- segment results
    def _segment_ended(self, r: RealJob) -> None:
        seg = r.seg
        assert seg is not None
        if seg.future.status != "finished":
            self._lost(r, seg, pause=True)
            return
        res = seg.future.result()
        self._account(r, seg, res)
        r.seg = None
        if res["done"]:
            self.allocated -= len(r.gpus)
            self._finish(r, res, len(r.gpus))
        else:  # returned without finishing and without being told to stop
            self._lost(r, None, pause=True, why="segment returned early")

    def _account(self, r: RealJob, seg: Segment, res: dict[str, Any]) -> None:
        """Credit a segment's progress and log its measured start-up overhead."""
        self.segment_log.append(res)
        run_s = max(res["t_stop"] - res["t_begin"], 0.0) * self.C
        r.executed_s += run_s
        r.gpu_s += run_s * len(seg.gpus)
        r.iters_done = int(res["iteration"])
        self._overhead(r, seg, res["t_begin"], res["restore_s"])

    def _overhead(self, r: RealJob, seg: Segment, t_begin: float, restore_s: float) -> None:
        o = max(t_begin - seg.t_idle, 0.0) * self.C
        r.overhead_total_s += o
        self._event(self.sim_time(t_begin), "overhead", r.spec.job_id, len(seg.gpus),
                    f"kind={seg.kind} overhead_s={o:.3f} restore_s={restore_s * self.C:.3f}")

    def _finish(self, r: RealJob, res: dict[str, Any], gpus: int) -> None:
        end = self.sim_time(res["t_end"])
        r.finish_s = end
        r.final_gpus = gpus
        r.met = None if r.spec.best_effort else end <= r.spec.deadline_s + 1e-9
        r.history.append((end, 0))
        self._event(end, "finished", r.spec.job_id, gpus,
                    f"end={end:g} loss={res['loss']:.6g}")
        self.active.pop(r.spec.job_id, None)
        r.status, r.gpus = "done", ()
        self.done_count += 1
        self._finished_now.append(r.spec.job_id)
        self._force = True

    def _lost(self, r: RealJob, seg: Segment | None, *, pause: bool, why: str = "") -> None:
        """A segment died with its worker (or misbehaved): resume from the last checkpoint."""
        now = self.now()
        state = trainer.load_checkpoint(trainer.checkpoint_path(self.ckpt_dir, r.spec.job_id))
        saved = state[0] if state is not None else 0
        if seg is not None:
            try:
                exc = seg.future.exception(timeout=1)
                why = f"{type(exc).__name__}: {exc}"
            except Exception as e:  # cancelled, or still running after the stop timeout
                why = type(e).__name__
                seg.future.cancel()
            begin = self._begin(r)
            if begin is not None:  # it ran: credit the time, count what was not saved
                self._overhead(r, seg, begin[0], 0.0)
                run_s = max(time.time() - begin[0], 0.0) * self.C
                r.executed_s += run_s
                r.gpu_s += run_s * len(seg.gpus)
                reached = min(begin[1] + int(run_s * seg.rate), self._total(r))
                r.lost_iterations += max(reached - saved, 0)
        r.iters_done = saved
        r.seg = None
        r.failures += 1
        self.failures += 1
        self._event(now, "failed", r.spec.job_id, len(r.gpus),
                    f"{why.splitlines()[0][:200] if why else 'lost'}; resumes from checkpoint "
                    f"at iteration {saved}")
        if pause and r.gpus:
            self.allocated -= len(r.gpus)
            r.gpus, r.status = (), "paused"
            r.preemptions += 1
            r.history.append((now, 0))
        if r.failures > self.cfg.max_retries:
            self.active.pop(r.spec.job_id, None)
            self.allocated -= len(r.gpus)
            r.status, r.gpus = "unfinished", ()
            r.met = None if r.spec.best_effort else False
            self.done_count += 1
            self._finished_now.append(r.spec.job_id)
            self._event(now, "unfinished", r.spec.job_id, 0,
                        f"gave up after {r.failures} failures")
        self._force = True

    def _check_workers(self) -> None:
        """Log workers leaving and joining (a killed worker, a nanny restart); connect
        launched task workers whose process has joined."""
        try:
            info = self.client.scheduler_info(n_workers=-1)["workers"]
        except Exception:
            return
        names = {str(w.get("name", a)) + "@" + a for a, w in info.items()}
        joined = {str(w.get("name", a)) for a, w in info.items()}
        for tw in self.task_workers.values():
            if tw.launched and not tw.connected:
                if tw.worker_id in joined:
                    self._connected(tw, self.now())
                elif time.time() - tw.launched > self.cfg.launch_timeout_s:
                    raise RuntimeError(f"task worker {tw.worker_id!r} did not join within "
                                       f"{self.cfg.launch_timeout_s:g} s of its launch")
        if self._known_workers is not None:
            now = self.now()
            for w in sorted(self._known_workers - names):
                self._event(now, "worker_left", "", 0, w)
                self.worker_events += 1
            for w in sorted(names - self._known_workers):
                self._event(now, "worker_joined", "", 0, w)
                self.worker_events += 1
        self._known_workers = names

    # ------------------------------------------------------------ CPU tasks
    def _ready(self, t: RealTask, now: float) -> None:
        """The task (re)enters the queue: unplaced, FIFO behind the ready ones."""
        self._seq += 1
        t.status, t.worker, t.seq = "ready", None, self._seq
        s = t.spec
        self._event(now, "task_ready", s.task_id)
        self.rec(now, "TASK", s.task_id, "READY",
                 ("default", t.attempt, s.cores, s.memory_MB, s.disk_MB))

    def _connect(self, now: float) -> None:
        """Task workers due now connect, or have their process launched."""
        for tw in self.task_workers.values():
            if tw.connected or tw.connect_s > now + 1e-9:
                continue
            if not tw.launch:
                self._connected(tw, now)
            elif not tw.launched:
                tw.launched = time.time()
                self.workers.launch(tw.worker_id, tw.launch, {tw.resources: tw.slots})
                self._event(now, "worker_launched", "", 0, tw.worker_id)

    def _connected(self, tw: TaskWorker, now: float) -> None:
        tw.connected = True
        self._event(now, "worker_joined", "", 0, tw.worker_id)
        self.rec(now, "WORKER", tw.worker_id, "CONNECTION", (f"dask:{tw.worker_id}",))
        self.rec(now, "WORKER", tw.worker_id, "RESOURCES", (tw.slots, 0.0, 0.0))
        self._force = True

    def _joins(self, now: float) -> None:
        """Pools whose join rule has fired get a task worker connecting after their delay."""
        for p in self.pools:
            rule = p.spec.join
            if p.joined_s is not None:
                continue
            if not rule.fired(self.counts):
                continue
            p.joined_s = now + rule.delay_s
            name = p.spec.name
            self.task_workers[name] = TaskWorker(
                name, float(p.spec.workers), connect_s=p.joined_s, resources=f"pool-{name}",
                fifo=True)
            self.pool_events.append((now, "pool-join", name))
            self.rec(now, "APPLICATION", "pool-join", name)
            if p.joined_s <= now:
                self._connected(self.task_workers[name], now)

    def _claim(self, now: float) -> None:
        """Each connected pool whose deficit reached its threshold claims from the queue head."""
        if not self.pools:
            return
        queue = None
        for p in self.pools:
            tw = self.task_workers.get(p.spec.name)
            if tw is None or not tw.connected:
                continue
            deficit = p.spec.batch_size - len(p.owned)
            if deficit < p.spec.threshold:
                continue
            if queue is None:
                queue = [t for t in self.tasks.values() if t.status == "ready"]
                queue.sort(key=lambda t: (-t.priority, t.seq), reverse=True)
            for _ in range(min(deficit, len(queue))):
                t = queue.pop()
                self._claims += 1
                t.status, t.worker, t.claim = "queued", p.spec.name, self._claims
                p.owned.add(t.spec.task_id)
                self.pool_events.append((now, "claim", f"{p.spec.name} {t.spec.task_id}"))

    def _worker_views(self) -> tuple[WorkerView, ...]:
        out = []
        for tw in self.task_workers.values():
            if not tw.connected:
                continue
            taken = sum(t.spec.cores for t in self.tasks.values()
                        if t.worker == tw.worker_id and t.status in ("queued", "running"))
            free = max(tw.slots - taken, 0.0)
            libs = tuple(n for n, st in tw.libraries.items() if st == "ready")
            inst = tuple(n for n, st in tw.libraries.items() if st != "ready")
            lib_free = tuple((n, self.libraries[n].slots - sum(
                1 for t in self.tasks.values() if t.worker == tw.worker_id
                and t.status in ("queued", "running") and t.spec.library == n))
                for n in tw.libraries if n in self.libraries)
            out.append(WorkerView(tw.worker_id, tw.slots, 0.0, 0.0, free, 0.0, 0.0,
                                  libraries=libs, installing=inst, free_slots=lib_free))
        return tuple(out)

    def _task_views(self) -> tuple[TaskView, ...]:
        """The ready (unplaced, unclaimed) tasks, in queue order: highest priority, then FIFO."""
        ready = sorted((t for t in self.tasks.values() if t.status == "ready"),
                       key=lambda t: (-t.priority, t.seq))
        return tuple(TaskView(t.spec, t.priority, None, t.attempt) for t in ready)

    def _install(self, name: str, wid: str) -> None:
        """Start library ``name`` on a task worker: import what its calls need, there."""
        tw = self.task_workers[wid]
        if name in tw.libraries:
            return
        tw.libraries[name] = "installing"
        self.rec(self.now(), "LIBRARY", f"{name}-{wid}", "SENT", (wid,))
        fut = self.client.submit(trainer.run_task, "start_library", {},
                                 key=f"library-{name}-{wid}-{id(self):x}", pure=False,
                                 **tw.submit_kwargs(0.0))
        fut.add_done_callback(lambda f, key=f"{name}\0{wid}": self.notices.put(("lib", key, 0)))
        self._lib_futures[(name, wid)] = fut

    def _library_ended(self, key: str) -> None:
        name, wid = key.split("\0")
        fut = self._lib_futures.pop((name, wid))
        tw = self.task_workers[wid]
        if fut.status == "finished":
            tw.libraries[name] = "ready"
            self.rec(self.sim_time(fut.result()["t_end"]), "LIBRARY", f"{name}-{wid}",
                     "STARTED", (wid,))
        else:
            tw.libraries.pop(name, None)
            self.rec(self.now(), "LIBRARY", f"{name}-{wid}", "FAILURE", (wid,))
        self._pump_tasks()
        self._force = True

    def _pump_tasks(self) -> None:
        """Submit each worker's queued tasks while it has free slots: highest priority
        first (hold-and-dispatch), or in claim order on a pool. A call of a library
        waits until the library has started on its worker."""
        if not self.tasks:
            return
        for wid, tw in self.task_workers.items():
            if not tw.connected:
                continue
            mine = [t for t in self.tasks.values() if t.worker == wid]
            free = tw.slots - sum(t.spec.cores for t in mine if t.status == "running")
            queued = sorted((t for t in mine if t.status == "queued"),
                            key=(lambda t: t.claim) if tw.fifo else
                            (lambda t: (-t.priority, t.spec.submit_s, t.spec.task_id)))
            for t in queued:
                if t.spec.cores > free + 1e-9:
                    break
                lib = t.spec.library
                if lib in self.libraries and tw.libraries.get(lib, "ready") != "ready":
                    continue
                free -= t.spec.cores
                self._submit_task(t, tw)

    def _submit_task(self, t: RealTask, tw: TaskWorker) -> None:
        fn, args = self.task_call(t.spec)
        fut = self.client.submit(trainer.run_task, fn, args,
                                 key=f"task-{t.spec.task_id}-{t.attempt}-{id(self):x}",
                                 pure=False, **tw.submit_kwargs(t.spec.cores))
        t.future, t.status = fut, "running"
        t.t_submit = self.now()
        tid = t.spec.task_id
        self._event(t.t_submit, "task_started", tid, 0,
                    f"{tw.worker_id} priority={t.priority:g}")
        fut.add_done_callback(lambda f, tid=tid: self.notices.put(("task", tid, 0)))

    def _task_ended(self, t: RealTask) -> None:
        if t.status != "running":
            return
        s, wid = t.spec, t.worker
        now = self.now()
        if t.future.status == "finished":
            res = t.future.result()
            t.status = "done"
            self.tasks_done += 1
            end = self.sim_time(res["t_end"])
            self._event(end, "task_finished", s.task_id, 0, f"value={res['value']!r}")
            self.rec(t.t_submit, "TASK", s.task_id, "RUNNING",
                     (wid, t.t_submit, t.t_submit, s.input_MB, s.cores, s.memory_MB,
                      s.disk_MB))
            self.rec(now, "TASK", s.task_id, "RETRIEVED",
                     ("SUCCESS", 0, self.sim_time(res["t_start"]), end, s.output_MB))
            self.rec(now, "TASK", s.task_id, "DONE", ("SUCCESS", 0))
            self.results[s.task_id] = res["value"]
            self.counts["completion"] += 1
            self._release(t)
            if self.on_result is not None:
                self.on_result(s, res["value"], now)
            self._joins(now)
        elif t.attempt <= self.cfg.max_retries:
            t.attempt += 1
            self._release(t)
            if self.pools:
                self._ready(t, now)  # back to the queue, for any pool to claim
            else:
                t.status = "queued"  # retried on the same worker
            self._event(now, "task_failed", s.task_id, 0, "retrying")
        else:
            t.status = "failed"
            self.tasks_done += 1
            self._release(t)
            self._event(now, "task_failed", s.task_id, 0, "gave up")
            self.rec(now, "TASK", s.task_id, "DONE", ("UNKNOWN", -1))
        self._claim(now)
        self._pump_tasks()
        self._force = True

    def _release(self, t: RealTask) -> None:
        for p in self.pools:
            p.owned.discard(t.spec.task_id)

    # ------------------------------------------------------------- logging
    def _event(self, t: float, kind: str, job: str = "", gpus: int = 0, detail: str = "") -> None:
        self.events.append((t, kind, job, gpus, detail))

    def rec(self, t: float, subject: str, ident: str, event: str, fields: tuple = ()) -> None:
        """One TaskVine transaction-log record (:mod:`sim.engine.tasks` ``Record``)."""
        self.records.append((t, subject, ident, event, fields))

    def _sample(self, t: float, running: int, queued: int) -> None:
        row = (t, self.allocated, running, queued)
        if self.timeline and self.timeline[-1][0] == t:
            self.timeline[-1] = row
        else:
            self.timeline.append(row)

    def sorted_events(self) -> list[tuple[float, str, str, int, str]]:
        """Events in time order (overheads and ends are logged when learnt, stamped when
        they happened); ties keep the order they were logged in."""
        return sorted(self.events, key=lambda e: e[0])


def _params_call(spec: TaskSpec) -> tuple[str, dict[str, Any]]:
    """A task's function from its params: ``{"fn": name, "args": {...}}``."""
    p = spec.params
    return p.get("fn", "sleep"), dict(p.get("args", {}))
