"""The Controller: the only caller of policies.

At every scheduling instant an executor hands the Controller a snapshot; the
Controller asks the policy for a :class:`~sim.model.decision.Decision`, checks
that it can be applied, and turns the difference between the snapshot and the
decision into a list of actions. Both executors (SimPy and Dask) apply exactly
these actions, which is what lets one policy object drive a simulation and a
real run alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import InfeasibleDecision
from sim.model.decision import Decision
from sim.model.snapshot import JobStatus, Snapshot
from sim.policies.base import Policy


# --- actions ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Admit:
    job_id: str


@dataclass(frozen=True, slots=True)
class Decline:
    job_id: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Release every GPU of a running job (preemption or pause)."""

    job_id: str


@dataclass(frozen=True, slots=True)
class Start:
    """Give GPUs to a job that holds none (first start or resume from a checkpoint)."""

    job_id: str
    gpus: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Resize:
    """Change the GPU set of a running job (scale up/down or migrate)."""

    job_id: str
    gpus: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Declare:
    """The policy's planned end for a job (see Decision.end_s)."""

    job_id: str
    end_s: float
    event_s: float
    real_end_s: float | None


@dataclass(frozen=True, slots=True)
class Wake:
    at_s: float


@dataclass(frozen=True, slots=True)
class Vacate:
    """The policy moved end events away from this time (see Decision.vacated_s)."""

    at_s: float


@dataclass(frozen=True, slots=True)
class Dispatch:
    task_id: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class Install:
    library: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class Reprioritise:
    task_id: str
    priority: float


@dataclass(frozen=True, slots=True)
class Note:
    text: str


Action = (Admit | Decline | Stop | Start | Resize | Declare | Wake | Vacate | Dispatch | Install
          | Reprioritise | Note)


class Controller:
    """Calls ``policy.decide`` and translates decisions into actions.

    ``step(snapshot)`` returns the actions in the order an executor must apply
    them: declines and admissions, then stops, resizes and starts (so that GPUs
    are released before they are taken), then declarations, task actions and the
    wake-up.
    """

    def __init__(self, policy: Policy, *, check: bool = True) -> None:
        self.policy = policy
        self.check = check
        self.decisions = 0

    def step(self, snap: Snapshot) -> list[Action]:
        decision = self.policy.decide(snap)
        self.decisions += 1
        if self.check:
            check_feasible(snap, decision)
        return diff(snap, decision)


def check_feasible(snap: Snapshot, d: Decision) -> None:
    """Raise :class:`InfeasibleDecision` if ``d`` cannot be applied to ``snap``."""
    runnable = snap.index()
    declined = set(d.decline)
    for jid in declined:
        job = runnable.get(jid)
        if job is None:
            raise InfeasibleDecision(f"declined job {jid!r} is not runnable")
        if job.status is not JobStatus.NEW:
            raise InfeasibleDecision(f"declined job {jid!r} was already admitted")
    alloc = d.alloc
    unknown = alloc.keys() - runnable.keys()
    if unknown:
        raise InfeasibleDecision(f"GPUs given to unknown or finished job {min(unknown)!r}")
    both = alloc.keys() & declined
    if both:
        raise InfeasibleDecision(f"GPUs given to declined job {min(both)!r}")
    total = sum(len(g) for g in alloc.values())
    used = set().union(*alloc.values()) if alloc else set()
    if used and (min(used) < 0 or max(used) >= snap.cluster.num_gpus):
        bad = min(used) if min(used) < 0 else max(used)
        raise InfeasibleDecision(f"GPU {bad} given, cluster has {snap.cluster.num_gpus}")
    if len(used) != total:  # slow path only to name the culprit
        owner: dict[int, str] = {}
        for jid, gpus in alloc.items():
            if len(set(gpus)) != len(gpus):
                raise InfeasibleDecision(f"job {jid!r} lists a GPU twice: {gpus}")
            for g in gpus:
                other = owner.setdefault(g, jid)
                if other != jid:
                    raise InfeasibleDecision(f"GPU {g} given to both {other!r} and {jid!r}")
    for jid in d.end_s:
        if jid not in runnable:
            raise InfeasibleDecision(f"end declared for unknown job {jid!r}")
    if d.dispatch:
        workers = {w.worker_id for w in snap.workers}
        for tid, wid in d.dispatch:
            if wid not in workers:
                raise InfeasibleDecision(f"task {tid!r} dispatched to unknown worker {wid!r}")


def diff(snap: Snapshot, d: Decision) -> list[Action]:
    """Actions that take the world from ``snap`` to the state ``d`` describes."""
    declined = set(d.decline)
    actions: list[Action] = [Decline(j) for j in d.decline]
    stops: list[Action] = []
    resizes: list[Action] = []
    starts: list[Action] = []
    alloc = d.alloc
    index = snap.index()
    # Only jobs that are new, hold GPUs, or are given GPUs can change: visit just those.
    new_ids = snap.new_ids()
    seen = set(new_ids)
    candidates = list(new_ids)
    for jid in snap.holding_ids():
        if jid not in seen:
            seen.add(jid)
            candidates.append(jid)
    for jid in alloc:
        if jid not in seen:
            seen.add(jid)
            candidates.append(jid)
    NEW = JobStatus.NEW
    for jid in candidates:
        if jid in declined:
            continue
        job = index[jid]
        if job.status is NEW:
            actions.append(Admit(jid))
        want = alloc.get(jid, ())
        have = job.gpus
        if want == have:
            continue
        if not want:
            stops.append(Stop(jid))
        elif not have:
            starts.append(Start(jid, want))
        else:
            resizes.append(Resize(jid, want))
    actions += stops + resizes + starts
    for jid, end in d.end_s.items():
        actions.append(Declare(jid, end, d.end_event_s.get(jid, end), d.real_end_s.get(jid)))
    actions += [Reprioritise(t, p) for t, p in d.priorities.items()]
    actions += [Install(lib, w) for lib, w in d.install]
    actions += [Dispatch(t, w) for t, w in d.dispatch]
    actions += [Note(n) for n in d.notes]
    if d.wake_s is not None:
        actions.append(Wake(d.wake_s))
    actions += [Wake(t) for t in d.wakes]
    actions += [Vacate(t) for t in d.vacated_s]
    return actions
