"""Library-call reuse: install a library once per worker, route calls to it.

TaskVine's LibraryTask + FunctionCall (Sly-Delgado et al., WORKS'23; the TaskVine
manual's "serverless" section). A library is installed on a worker once (its
environment package sent and unpacked, the process started, imports paid once);
function calls then run inside it and skip that start-up.

Decision per pass:

1. **Installs.** ``install: eager`` installs every library on every connected
   worker that lacks it and has room for it. ``install: demand`` (TaskVine's rule)
   installs only for ready calls that no hosting worker can take now, one install per
   such call, on workers without the library, in connection order.
2. **Calls.** Ready calls in queue order (priority, then FIFO) go to the first worker,
   in connection order, that hosts their library (started or still starting: the call
   waits at the worker) with a free function slot and free resources for the call.
   With ``overcommit_slots`` a call may take a worker whose slots are all taken
   when its resources still fit; it waits there for a slot (what the 2023 manager did
   on the BGD run: two calls per two-core worker, one slot).
3. Tasks without a library are dispatched as by ``no-reuse``.

Deviation: TaskVine's worker choice (``files``/``time``/``rand``/...) is reduced to
first fit in connection order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sim.errors import InputError
from sim.model.decision import Decision
from sim.model.job import TaskSpec
from sim.model.snapshot import Snapshot
from sim.policies.base import Policy
from sim.policies.taskfit import Free
from sim.registry import register


@dataclass(frozen=True)
class ReuseParams:
    install: str = field(default="demand", metadata={
        "help": "when to install libraries: 'demand' (for calls that no warm library can "
                "take) or 'eager' (on every worker as it connects)"})
    overcommit_slots: bool = field(default=False, metadata={
        "help": "place calls on a library whose slots are taken when the worker's "
                "resources fit them (they wait at the worker); TaskVine 2023 behaviour"})

    def __post_init__(self) -> None:
        if self.install not in ("demand", "eager"):
            raise InputError(f"install must be 'demand' or 'eager', got {self.install!r}",
                             field="install")


@register
class LibraryReuse(Policy):
    NAME = "reuse"
    SUMMARY = "Task workloads: install libraries per worker and route calls to them"
    Params = ReuseParams
    WORK = "duration"

    def decide(self, snap: Snapshot) -> Decision:
        if not snap.workers:
            return Decision()
        p: ReuseParams = self.params
        free = [Free.of(w) for w in snap.workers]
        install: list[tuple[str, str]] = []
        dispatch: list[tuple[str, str]] = []
        libs = snap.libraries

        def add_library(f: Free, name: str) -> bool:
            spec = libs[name]
            if spec.reserves_resources:
                if not f.fits(spec.cores, spec.memory_MB, spec.disk_MB):
                    return False
                f.take(spec.cores, spec.memory_MB, spec.disk_MB)
            f.hosts.add(name)
            f.slots[name] = spec.slots
            install.append((name, f.worker_id))
            return True

        if p.install == "eager":
            for f in free:
                for name in sorted(libs):
                    if name not in f.hosts:
                        add_library(f, name)
        # Within one decision free resources only shrink, so a worker that cannot take
        # a request of some shape cannot take a later one of the same shape: each
        # search resumes where the last one for that shape stopped (linear per pass).
        resume: dict[tuple, int] = {}
        for tv in snap.tasks:
            t = tv.spec
            shape = (t.library if t.library in libs else None, t.cores, t.memory_MB, t.disk_MB)
            if shape[0] is None:
                f0 = self._first(free, resume, shape, lambda f, t=t: f.fits_task(t))
            else:
                f0 = self._first(free, resume, shape, lambda f, t=t: self._can_host(
                    f, t, p.overcommit_slots))
                if f0 is None and p.install == "demand":
                    i = resume.get(("install", t.library), 0)
                    while i < len(free):
                        f = free[i]
                        i += 1
                        if t.library not in f.hosts and add_library(f, t.library):
                            # calls of this shape may use the new host too
                            resume[shape] = min(resume[shape], i - 1)
                            if self._can_host(f, t, p.overcommit_slots):
                                f0 = f
                            break
                    resume[("install", t.library)] = i
            if f0 is None:
                continue
            f0.take_task(t)
            if shape[0] is not None:
                f0.slots[t.library] -= 1
            dispatch.append((t.task_id, f0.worker_id))
        return Decision(dispatch=tuple(dispatch), install=tuple(install))

    @staticmethod
    def _first(free: list[Free], resume: dict[tuple, int], shape: tuple,
               ok: Callable[[Free], bool]) -> Free | None:
        i = resume.get(shape, 0)
        while i < len(free) and not ok(free[i]):
            i += 1
        resume[shape] = i
        return free[i] if i < len(free) else None

    @staticmethod
    def _can_host(f: Free, t: TaskSpec, overcommit: bool) -> bool:
        lib = t.library
        return (lib in f.hosts and (overcommit or f.slots.get(lib, 0) > 0)
                and f.fits_task(t))
