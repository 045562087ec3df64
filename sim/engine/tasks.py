"""TaskExecutor: replays a task workload on workers that come and go, in simulated time.

The sibling of :class:`sim.engine.sim.SimExecutor` for task workloads (TaskVine
calls, map tasks, pools). Same contract: one Controller, policies return a
:class:`~sim.model.decision.Decision` (``dispatch`` and ``install``), the executor
applies the actions and records events. The record is a TaskVine transaction log
(:mod:`sim.traces.taskvine` formats it), so a simulated run and a real run are
read, compared and plotted by the same code.

What is modelled (costs come from the workload, see :mod:`sim.model.tasks`):

* **Manager**: one process; everything it sends (environment packages, task
  inputs) and retrieves goes through it one at a time, at ``bandwidth_MBps``
  plus a fixed time per package send, per dispatch and per retrieval. Task
  dispatches and retrievals go before waiting package sends.
* **Ready queue**: highest priority first, then FIFO by the time a task (re)entered
  the queue; a retried task goes to the back. Each pass shows the policy only the
  first ``lookahead`` ready tasks.
* **Workers**: connect and disconnect at the workload's times. Resources are
  accounted at the manager when a task or library is placed. A disconnection loses
  every task on the worker (retried, up to ``max_retries`` attempts) and its
  libraries and cache.
* **Libraries** (``Install``): the package is sent once per worker (cached), then
  unpacked on the worker, then the library starts (one ``startup_s`` draw). A
  function call placed on a worker that hosts its library (starting or started)
  waits there for a free slot and then runs ``duration_s``; the library holds its
  slots, not the call.
* **Plain tasks**: a task whose library is not on its worker runs standalone and
  pays the start-up itself: the package once per worker, then one ``startup_s``
  draw per task before its ``duration_s``.
* **Errors**: a task with an ``error`` runs, then finishes with result
  ``TASK_ERROR``; every task downstream of a failed task (error or retries used
  up) finishes at once with ``DEP_FAILED`` and never runs.

Ties: SimPy orders same-time events by scheduling order; every queue here is
ordered by an explicit key (priority, sequence number, worker connection order).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from sim.control import Controller, Dispatch, Install, Note, Reprioritise, Wake
from sim.errors import InfeasibleDecision
from sim.model.cluster import ClusterSpec
from sim.model.job import TaskSpec
from sim.model.snapshot import Snapshot, TaskView, WorkerView
from sim.model.tasks import LibrarySpec, TaskWorkload, WorkerSpec
from sim.model.throughput import ThroughputTable

#: Record of the transaction log: (time_s, subject, id, event, fields); see
#: sim.traces.taskvine.format_records for the fields of each event.
Record = tuple[float, str, str, str, tuple]

_NO_CLUSTER = ClusterSpec("tasks", 0, 0, 0)
_NO_TABLE = ThroughputTable("none", (), {})
EPS = 1e-9
#: Manager queue classes: task dispatches and retrievals are served before
#: pending package sends (never interrupting one), as the manager's loop handles
#: task traffic between the sends.
MESSAGE, PACKAGE = 0, 1
#: Results of a task that raised its ``error`` and of a task skipped because a
#: task it depends on failed.
TASK_ERROR, DEP_FAILED = "TASK_ERROR", "DEP_FAILED"


@dataclass
class TaskRun:
    spec: TaskSpec
    priority: float
    state: str = "future"  # future|ready|placed|done|failed
    attempt: int = 1
    seq: int = 0  # queue position key (FIFO among equal priorities)
    worker: str | None = None
    proc: simpy.Process | None = None
    done_s: float | None = None
    deps_left: int = 0


@dataclass
class LibRun:
    spec: LibrarySpec
    state: str = "installing"  # installing|ready
    placed: int = 0  # calls placed on it, executing or waiting
    slots: simpy.Resource | None = None
    ready: simpy.Event | None = None
    lib_id: str = ""  # this instance's id in the log (one per install, as TaskVine's)


@dataclass
class WorkerRun:
    spec: WorkerSpec
    order: int
    connected: bool = False
    free_cores: float = 0.0
    free_memory_MB: float = 0.0
    free_disk_MB: float = 0.0
    cached: dict[str, simpy.Event] = field(default_factory=dict)  # package -> arrived
    libs: dict[str, LibRun] = field(default_factory=dict)
    procs: set[simpy.Process] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)
    view: WorkerView | None = None  # cached snapshot view; None when state changed


class TaskExecutor:
    """Runs one policy over one task workload.

    Args:
        workload: tasks, workers, libraries, manager costs.
        controller: wraps the policy.
        seed: seeds the one RNG (library start-up draws).
        progress: optional ``(now_s, done, total)`` callback, called every 1% of tasks.
        horizon_s: stop at this simulated time even if tasks remain.
    """

    def __init__(self, workload: TaskWorkload, controller: Controller, *, seed: int = 0,
                 progress: Callable[[float, int, int], None] | None = None,
                 horizon_s: float = math.inf) -> None:
        self.wl = workload
        self.ctl = controller
        self.rng = random.Random(seed)
        self.progress = progress
        self.horizon_s = horizon_s
        self.env = simpy.Environment()
        self.manager = simpy.PriorityResource(self.env, capacity=1)
        self.tasks = {t.task_id: TaskRun(t, t.priority) for t in workload.tasks}
        if len(self.tasks) != len(workload.tasks):
            raise ValueError("duplicate task ids in the workload")
        self.dependants: dict[str, list[str]] = {}
        for t in workload.tasks:
            for d in t.depends_on:
                self.dependants.setdefault(d, []).append(t.task_id)
                self.tasks[t.task_id].deps_left += 1
        self.workers = {w.worker_id: WorkerRun(w, i) for i, w in enumerate(workload.workers)}
        self.connected: list[WorkerRun] = []  # in connection order
        self.queue: list[tuple[float, int, str]] = []  # (-priority, seq, task id), lazy
        self.seq = 0
        self.records: list[Record] = []
        self.done = 0
        self.failed = 0
        self.total = len(self.tasks)
        self.decisions = 0
        self.installs = 0
        self._kick: simpy.Event | None = None
        self._finished = self.env.event()
        self._next_progress = 0

    # --- public -----------------------------------------------------------------------
    def run(self) -> None:
        env = self.env
        self.rec(0.0, "MANAGER", "0", "START")
        for t in self.wl.tasks:
            env.process(self._arrive(self.tasks[t.task_id]))
        for w in self.workers.values():
            env.process(self._worker_life(w))
        env.process(self._scheduler())
        if self.total == 0:
            self._finished.succeed()
        until = self._finished if math.isinf(self.horizon_s) else env.any_of(
            [self._finished, env.timeout(self.horizon_s)])
        env.run(until=until)
        self.rec(env.now, "MANAGER", "0", "END")
        if self.progress is not None:
            self.progress(env.now, self.done, self.total)

    @property
    def now(self) -> float:
        return self.env.now

    def rec(self, t: float, subject: str, ident: str, event: str, fields: tuple = ()) -> None:
        self.records.append((t, subject, ident, event, fields))

    # --- arrivals and workers -----------------------------------------------------------
    def _arrive(self, tr: TaskRun):
        if tr.spec.submit_s > 0:
            yield self.env.timeout(tr.spec.submit_s)
        if tr.state == "failed":  # a dependency failed before this task was submitted
            return
        if tr.deps_left == 0:
            self._make_ready(tr)
        else:
            tr.state = "waiting-deps"

    def _make_ready(self, tr: TaskRun) -> None:
        tr.state = "ready"
        tr.worker = None
        self.seq += 1
        tr.seq = self.seq
        heapq.heappush(self.queue, (-tr.priority, tr.seq, tr.spec.task_id))
        s = tr.spec
        self.rec(self.now, "TASK", s.task_id, "READY",
                 ("default", tr.attempt, s.cores, s.memory_MB, s.disk_MB))
        self.kick()

    def add_worker(self, spec: WorkerSpec) -> None:
        """Bring in a worker the workload did not list (a pool that joins on a workflow
        event); it connects at ``spec.connect_s`` (not before now)."""
        if spec.worker_id in self.workers:
            raise ValueError(f"worker {spec.worker_id!r} already exists")
        w = self.workers[spec.worker_id] = WorkerRun(spec, len(self.workers))
        self.env.process(self._worker_life(w))

    def _worker_life(self, w: WorkerRun):
        s = w.spec
        yield self.env.timeout(max(0.0, s.connect_s - self.now))
        w.connected = True
        self.connected.append(w)
        self.connected.sort(key=lambda x: x.order)
        w.view = None
        w.free_cores, w.free_memory_MB, w.free_disk_MB = s.cores, s.memory_MB, s.disk_MB
        self.rec(self.now, "WORKER", s.worker_id, "CONNECTION", ("sim:0",))
        self.rec(self.now, "WORKER", s.worker_id, "RESOURCES", (s.cores, s.memory_MB, s.disk_MB))
        self.kick()
        if s.disconnect_s is None:
            return
        yield self.env.timeout(max(0.0, s.disconnect_s - s.connect_s))
        self._disconnect(w)

    def _disconnect(self, w: WorkerRun) -> None:
        w.connected = False
        self.connected.remove(w)
        w.view = None
        self.rec(self.now, "WORKER", w.spec.worker_id, "DISCONNECTION",
                 ("FAILURE" if w.spec.lost else "EXPLICIT",))
        for p in list(w.procs):
            if p.is_alive:
                p.interrupt("worker lost")
        w.procs.clear()
        for lib in w.libs.values():
            if lib.state != "ready":
                self.rec(self.now, "LIBRARY", lib.lib_id, "FAILURE", (w.spec.worker_id,))
        w.libs.clear()
        w.cached.clear()
        max_r = self.wl.manager.max_retries
        for tid in sorted(w.tasks, key=lambda t: self.tasks[t].seq):
            tr = self.tasks[tid]
            if tr.state != "placed":
                continue
            if max_r and tr.attempt >= max_r:
                self._finish(tr, "MAX_RETRIES")
                continue
            tr.attempt += 1
            self._make_ready(tr)
        w.tasks.clear()
        self.kick()

    # --- the scheduling loop --------------------------------------------------------------
    def kick(self) -> None:
        """Ask for a scheduling pass at the current time (after same-time events)."""
        if self._kick is not None and not self._kick.triggered:
            self._kick.succeed()

    def _scheduler(self):
        env = self.env
        while True:
            self._kick = env.event()
            yield self._kick
            yield env.timeout(0)  # let every same-time event land first
            while True:
                snap = self.snapshot()
                if not snap.workers:
                    break
                actions = self.ctl.step(snap)
                self.decisions += 1
                placed = self._apply(actions)
                # decide again only if the policy placed work and more ready tasks
                # may lie beyond the look-ahead window it saw
                if not placed or len(snap.tasks) < self.wl.manager.lookahead:
                    break

    def snapshot(self) -> Snapshot:
        workers = []
        for w in self.connected:
            if w.view is not None:
                workers.append(w.view)
                continue
            ready_libs = tuple(n for n, lr in w.libs.items() if lr.state == "ready")
            installing = tuple(n for n, lr in w.libs.items() if lr.state != "ready")
            workers.append(WorkerView(
                worker_id=w.spec.worker_id, cores=w.spec.cores, memory_MB=w.spec.memory_MB,
                disk_MB=w.spec.disk_MB, free_cores=w.free_cores,
                free_memory_MB=w.free_memory_MB, free_disk_MB=w.free_disk_MB,
                libraries=ready_libs, installing=installing,
                free_slots=tuple((n, lr.spec.slots - lr.placed) for n, lr in w.libs.items()),
                cached=tuple(p for p, ev in w.cached.items() if ev.triggered)))
            w.view = workers[-1]
        return Snapshot(now_s=self.now, cluster=_NO_CLUSTER, table=_NO_TABLE,
                        workers=tuple(workers), tasks=tuple(self._ready_view()),
                        libraries=self.wl.libraries,
                        more_arrivals=self.done + self.failed < self.total)

    def _ready_view(self) -> list[TaskView]:
        """The first ``lookahead`` ready tasks in queue order (stale heap entries dropped)."""
        out: list[TaskView] = []
        q = self.queue
        while q:
            _, seq, tid = q[0]
            tr = self.tasks[tid]
            if tr.state == "ready" and tr.seq == seq and -q[0][0] == tr.priority:
                break
            heapq.heappop(q)
        limit = self.wl.manager.lookahead
        for _, seq, tid in heapq.nsmallest(limit * 2 + 8, q) if len(q) > limit else sorted(q):
            tr = self.tasks[tid]
            if tr.state == "ready" and tr.seq == seq:
                out.append(TaskView(tr.spec, tr.priority, None, tr.attempt))
                if len(out) >= limit:
                    break
        return out

    def _apply(self, actions: list) -> bool:
        """Apply one decision; True if it changed anything (then decide again)."""
        changed = False
        for a in actions:
            if isinstance(a, Install):
                self._install(a.library, a.worker_id)
                changed = True
            elif isinstance(a, Dispatch):
                self._dispatch(a.task_id, a.worker_id)
                changed = True
            elif isinstance(a, Reprioritise):
                tr = self.tasks.get(a.task_id)
                if tr is not None and tr.state == "ready" and tr.priority != a.priority:
                    tr.priority = a.priority
                    heapq.heappush(self.queue, (-tr.priority, tr.seq, tr.spec.task_id))
            elif isinstance(a, Wake):
                self.env.process(self._wake(a.at_s))
            elif isinstance(a, Note):
                self.rec(self.now, "APPLICATION", "note", a.text)
        return changed

    def _wake(self, at_s: float):
        yield self.env.timeout(max(0.0, at_s - self.now))
        self.kick()

    # --- actions ---------------------------------------------------------------------------
    def _reserve(self, w: WorkerRun, cores: float, mem: float, disk: float, what: str) -> None:
        if (cores > w.free_cores + EPS or mem > w.free_memory_MB + EPS
                or disk > w.free_disk_MB + EPS):
            raise InfeasibleDecision(
                f"{what} needs {cores} cores/{mem} MB/{disk} MB disk; worker "
                f"{w.spec.worker_id} has {w.free_cores}/{w.free_memory_MB}/{w.free_disk_MB} free")
        w.free_cores -= cores
        w.free_memory_MB -= mem
        w.free_disk_MB -= disk
        w.view = None

    def _release(self, w: WorkerRun, cores: float, mem: float, disk: float) -> None:
        if w.connected:
            w.free_cores += cores
            w.free_memory_MB += mem
            w.free_disk_MB += disk
            w.view = None

    def _worker(self, wid: str, what: str) -> WorkerRun:
        w = self.workers.get(wid)
        if w is None or not w.connected:
            raise InfeasibleDecision(f"{what} sent to worker {wid!r}, which is not connected")
        return w

    def _install(self, name: str, wid: str) -> None:
        spec = self.wl.libraries.get(name)
        if spec is None:
            raise InfeasibleDecision(f"install of unknown library {name!r}")
        w = self._worker(wid, f"library {name!r}")
        if name in w.libs:
            raise InfeasibleDecision(f"library {name!r} is already on worker {wid!r}")
        if spec.reserves_resources:
            self._reserve(w, spec.cores, spec.memory_MB, spec.disk_MB, f"library {name!r}")
        lib = LibRun(spec, slots=simpy.Resource(self.env, capacity=max(1, spec.slots)),
                     ready=self.env.event())
        self.installs += 1
        lib.lib_id = f"{name}-{self.installs}"
        w.libs[name] = lib
        w.view = None
        self._spawn(w, self._install_proc(w, lib))

    def _spawn(self, w: WorkerRun, gen) -> simpy.Process:
        p = self.env.process(gen)
        w.procs.add(p)
        p.callbacks.append(lambda _ev, p=p, w=w: w.procs.discard(p))
        return p

    def _package(self, w: WorkerRun, spec: LibrarySpec,
                 sent: Callable[[], None] | None = None):
        """Make sure the library's package is on the worker (sent once, then unpacked).

        ``sent`` is called when the manager has sent what it must (the package, or
        nothing if the worker has or is receiving it)."""
        ev = w.cached.get(spec.package)
        if ev is not None:
            if sent is not None:
                sent()
            if not ev.triggered:
                yield ev
            return
        ev = w.cached[spec.package] = self.env.event()
        m = self.wl.manager
        with self.manager.request(priority=PACKAGE) as req:
            yield req
            # the manager's own time per send besides the bytes (connection, bookkeeping)
            yield self.env.timeout(m.transfer_overhead_s)
            start = self.now
            wall = spec.package_MB / m.bandwidth_MBps if m.bandwidth_MBps > 0 else 0.0
            yield self.env.timeout(wall)
            self.rec(self.now, "WORKER", w.spec.worker_id, "TRANSFER",
                     ("INPUT", spec.package, spec.package_MB, wall, start))
        if sent is not None:
            sent()
        start = self.now
        yield self.env.timeout(spec.unpack_s)
        self.rec(self.now, "WORKER", w.spec.worker_id, "CACHE_UPDATE",
                 (spec.package, spec.package_MB, spec.unpack_s, start))
        ev.succeed()
        w.view = None

    def _install_proc(self, w: WorkerRun, lib: LibRun):
        wid, spec = w.spec.worker_id, lib.spec
        try:
            yield from self._package(
                w, spec, sent=lambda: self.rec(self.now, "LIBRARY", lib.lib_id, "SENT", (wid,)))
            yield self.env.timeout(self.rng.choice(spec.startup_s))
            lib.state = "ready"
            w.view = None
            assert lib.ready is not None
            lib.ready.succeed()
            self.rec(self.now, "LIBRARY", lib.lib_id, "STARTED", (wid,))
            self.kick()
        except simpy.Interrupt:
            return

    def _dispatch(self, tid: str, wid: str) -> None:
        tr = self.tasks.get(tid)
        if tr is None or tr.state != "ready":
            raise InfeasibleDecision(f"task {tid!r} dispatched but not ready")
        w = self._worker(wid, f"task {tid!r}")
        s = tr.spec
        self._reserve(w, s.cores, s.memory_MB, s.disk_MB, f"task {tid!r}")
        tr.state, tr.worker = "placed", wid
        w.tasks.add(tid)
        lib = w.libs.get(s.library) if s.library else None
        if lib is not None:
            lib.placed += 1
            w.view = None
        tr.proc = self._spawn(w, self._task_proc(tr, w, lib))

    def _task_proc(self, tr: TaskRun, w: WorkerRun, lib: LibRun | None):
        s, m, wid = tr.spec, self.wl.manager, w.spec.worker_id
        try:
            with self.manager.request(priority=MESSAGE) as req:
                yield req
                cs = self.now
                bw = m.bandwidth_MBps
                yield self.env.timeout(m.dispatch_s + (s.input_MB / bw if bw > 0 else 0.0))
                self.rec(self.now, "TASK", s.task_id, "RUNNING",
                         (wid, cs, self.now, s.input_MB, s.cores, s.memory_MB, s.disk_MB))
            if lib is not None:
                assert lib.slots is not None and lib.ready is not None
                with lib.slots.request() as slot:
                    yield slot
                    if not lib.ready.triggered:
                        yield lib.ready
                    ws = self.now
                    yield self.env.timeout(s.duration_s)
                    we = self.now
            else:
                spec = self.wl.libraries.get(s.library) if s.library else None
                if spec is not None:
                    yield from self._package(w, spec)
                ws = self.now
                if spec is not None:
                    yield self.env.timeout(self.rng.choice(spec.startup_s))
                yield self.env.timeout(s.duration_s)
                we = self.now
            self.rec(self.now, "TASK", s.task_id, "WAITING_RETRIEVAL", (wid,))
            with self.manager.request(priority=MESSAGE) as req:
                yield req
                bw = m.bandwidth_MBps
                yield self.env.timeout(m.retrieve_s + (s.output_MB / bw if bw > 0 else 0.0))
            if lib is not None:
                lib.placed -= 1
                w.view = None
            w.tasks.discard(s.task_id)
            self._release(w, s.cores, s.memory_MB, s.disk_MB)
            result = "SUCCESS" if s.error is None else TASK_ERROR
            self.rec(self.now, "TASK", s.task_id, "RETRIEVED",
                     (result, 0 if s.error is None else 1, ws, we, s.output_MB))
            self._finish(tr, result)
        except simpy.Interrupt:
            return

    def _finish(self, tr: TaskRun, result: str) -> None:
        tr.state = "done" if result == "SUCCESS" else "failed"
        tr.done_s = self.now
        self.rec(self.now, "TASK", tr.spec.task_id, "DONE", (result, 0 if result == "SUCCESS"
                                                             else -1))
        if result == "SUCCESS":
            self.done += 1
            for d in self.dependants.get(tr.spec.task_id, ()):
                dr = self.tasks[d]
                dr.deps_left -= 1
                if dr.deps_left == 0 and dr.state == "waiting-deps":
                    self._make_ready(dr)
        else:
            self.failed += 1
            self._fail_dependants(tr)
        if self.progress is not None and self.done + self.failed >= self._next_progress:
            self.progress(self.now, self.done, self.total)
            self._next_progress = self.done + self.failed + max(1, self.total // 100)
        if self.done + self.failed >= self.total and not self._finished.triggered:
            self._finished.succeed()
        self.kick()

    def _fail_dependants(self, tr: TaskRun) -> None:
        """Every task downstream of a failed one fails too, without running."""
        stack = list(reversed(self.dependants.get(tr.spec.task_id, ())))
        while stack:
            dr = self.tasks[stack.pop()]
            if dr.state in ("done", "failed"):
                continue
            dr.state = "failed"
            dr.done_s = self.now
            self.failed += 1
            self.rec(self.now, "TASK", dr.spec.task_id, "DONE", (DEP_FAILED, -1))
            stack.extend(reversed(self.dependants.get(dr.spec.task_id, ())))
