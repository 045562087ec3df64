"""No reuse: every task runs standalone and pays its own start-up.

The baseline of TaskVine's library/function-call comparison (Sly-Delgado et al.,
"TaskVine: Managing In-Cluster Storage for High-Throughput Data Intensive
Workflows", WORKS'23): ordinary tasks, no library. Each task pays the interpreter
and import start-up of its library (one ``startup_s`` draw) and its worker gets the
environment package once (cached afterwards).

Dispatch: ready tasks in the manager's queue order (priority, then FIFO); each goes
to the first worker, in connection order, whose free resources fit it, preferring
workers that already cache the task's package (TaskVine's ``files`` worker choice,
reduced to the one file that matters here). A task that fits nowhere waits; later
tasks may still be placed (TaskVine skips tasks that do not fit).
"""

from __future__ import annotations

from collections.abc import Callable

from sim.model.decision import Decision
from sim.model.snapshot import Snapshot
from sim.policies.base import Policy
from sim.policies.taskfit import Free
from sim.registry import register


@register
class NoReuse(Policy):
    NAME = "no-reuse"
    SUMMARY = "Task workloads: every task pays its own start-up (no library)"
    WORK = "duration"

    def decide(self, snap: Snapshot) -> Decision:
        if not snap.tasks or not snap.workers:
            return Decision()
        free = [Free.of(w) for w in snap.workers]
        cached = {w.worker_id: set(w.cached) for w in snap.workers}
        dispatch = []
        # free resources only shrink within a decision: a search for a request shape
        # resumes where the previous one for that shape stopped
        resume: dict[tuple, int] = {}
        for tv in snap.tasks:
            t = tv.spec
            pkg = snap.libraries[t.library].package if t.library in snap.libraries else None
            shape = (t.cores, t.memory_MB, t.disk_MB)
            best = None
            if pkg is not None:
                best = _first(free, resume, (*shape, pkg),
                              lambda f, t=t, pkg=pkg: pkg in cached[f.worker_id]
                              and f.fits_task(t))
            if best is None:
                best = _first(free, resume, shape, lambda f, t=t: f.fits_task(t))
            if best is None:
                continue
            best.take_task(t)
            dispatch.append((t.task_id, best.worker_id))
        return Decision(dispatch=tuple(dispatch))


def _first(free: list[Free], resume: dict[tuple, int], key: tuple,
           ok: Callable[[Free], bool]) -> Free | None:
    i = resume.get(key, 0)
    while i < len(free) and not ok(free[i]):
        i += 1
    resume[key] = i
    return free[i] if i < len(free) else None
