"""Earliest deadline first, with and without admission control (POLICIES.md 3).

Both plan the runnable jobs in deadline order on a free-capacity profile with
:func:`sim.policies.efplan.edf_plan`: each job gets ``b = min(max_gpu, G)`` GPUs,
or the largest table column that still fits, on every segment until it finishes.
``edf-accessctrl`` additionally tests each arrival: if adding it makes any
admitted job miss its deadline, the arrival is declined.

Clean mode: the columns are only the GPU counts faster than every smaller one at the
snapshot's (communication-aware) rates, and ``max_gpu`` is the last of them, so the base
quota is never a share that runs slower than a smaller one (docs/semantics.md).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field

from sim.model.decision import Decision
from sim.model.job import JobSpec
from sim.model.snapshot import JobView, Snapshot
from sim.model.throughput import ThroughputTable
from sim.policies.base import ArtifactTraits, Policy
from sim.policies.common import place
from sim.policies.efplan import PlanJob, PlanResult, Profile, alloc_at, edf_plan
from sim.registry import register


def generic_max_gpu(table: ThroughputTable, spec: JobSpec) -> int:
    """The artifact's non-EF ``max_gpu``: the largest column with a value, capped at 64 and
    at the batch size (POLICIES.md 1.1)."""
    return min(table.largest_column_with_value(spec.model, spec.batch_size), 64,
               spec.batch_size)


def _with_work(job: PlanJob, work: float) -> PlanJob:
    """``job`` with ``work`` iterations left, without re-validating its static part."""
    new = object.__new__(PlanJob)
    new.__dict__.update(job.__dict__)
    new.__dict__["work"] = work
    return new


@dataclass(frozen=True)
class EdfParams:
    use_requested_gpus: bool = field(default=False, metadata={
        "help": "give each job the GPUs its user requested instead of up to min(max_gpu, G) "
                "(the artifact ignores the request; POLICIES.md 3.1 [DECIDE])"})


class _EdfBase(Policy):
    """Shared planning for ``edf`` and ``edf-accessctrl``.

    Paper: EDF is the classic real-time policy (Liu & Layland, JACM 1973); ElasticFlow
    (Gu et al., ASPLOS'23) uses it as a baseline.

    Deviations from the artifact in clean mode (``preset: clean``): an arrival is declined
    only if it would make a job miss its deadline that would meet it without the arrival
    (the artifact declines every arrival while any admitted job is already late); the
    plan update is the correct one (the artifact's overwrite can leak GPUs in the plan, POLICIES.md 3.2);
    placement keeps jobs on their GPUs when their count does not change (sticky) instead
    of re-placing everything buddy-style at every instant.
    In both modes ties in deadline are broken by ``(submit_s, idx)``; the artifact breaks
    them by its runnable list's history (last instant's size-descending placement order),
    which only matters for jobs with equal deadlines (best-effort jobs).
    Kept from the artifact in both modes: a job may get up to ``min(max_gpu, G)`` GPUs,
    not the count its user asked for, unless ``use_requested_gpus`` is set.

    Speed: jobs are kept in deadline order incrementally, and ``edf`` stops planning at
    the first job that finds no free GPU now: planning is sequential, so later jobs
    cannot change earlier jobs' plans, and every later job gets 0 GPUs now. Their ends
    lie after every running job's end, so the executor only needs to know that such
    jobs exist (``queued_ends_for_all``).
    """

    Params = EdfParams
    WORK = "iterations"

    def __init__(self, params=None, *, artifact: bool = False) -> None:
        super().__init__(params, artifact=artifact)
        self._queue: list[tuple[float, int, int, str]] = []  # (deadline, submit, idx, id)
        self._key: dict[str, tuple[float, int, int, str]] = {}
        self._static: dict[str, PlanJob] = {}

    # -- bookkeeping --------------------------------------------------------------
    def _sync(self, snap: Snapshot) -> None:
        """Drop jobs that left (finished) since the last call."""
        for jid in snap.finished:
            self._drop(jid)
        if len(self._key) > len(snap.jobs):  # jobs removed without a finish (give-up)
            index = snap.index()
            for jid in [j for j in self._key if j not in index]:
                self._drop(jid)

    def _add(self, j: JobView) -> None:
        key = (j.spec.deadline_s, j.spec.submit_s, j.spec.idx, j.spec.job_id)
        self._key[j.spec.job_id] = key
        insort(self._queue, key)

    def _drop(self, jid: str) -> None:
        key = self._key.pop(jid, None)
        if key is not None:
            del self._queue[bisect_left(self._queue, key)]
            self._static.pop(jid, None)

    def _plan_job(self, snap: Snapshot, j: JobView) -> PlanJob:
        base = self._static.get(j.spec.job_id)
        if base is None:
            spec = j.spec
            table = snap.table
            mg = spec.num_gpu if self.params.use_requested_gpus else generic_max_gpu(table, spec)
            base = PlanJob.from_table(table, spec.model, spec.batch_size, spec.job_id,
                                      spec.deadline_s, mg, rising=not self.artifact)
            self._static[spec.job_id] = base
        return _with_work(base, max(j.iter_left, 0.0))

    def _plan(self, snap: Snapshot, keys: list[tuple[float, int, int, str]],
              extra: dict[str, JobView] | None = None, *, stop_when_full: bool
              ) -> tuple[dict[str, PlanResult], bool]:
        """Plan ``keys`` (deadline order) from an empty profile; returns (results, feasible)."""
        index = snap.index()
        now = snap.now_s
        G = snap.cluster.num_gpus
        S = snap.slot_s if snap.slot_s > 0 else 1.0
        F = Profile.constant(now, G)
        cols = snap.table.columns
        results: dict[str, PlanResult] = {}
        feasible = True
        for key in keys:
            jid = key[3]
            view = extra[jid] if extra and jid in extra else index[jid]
            res = edf_plan(self._plan_job(snap, view), now, F, G, S, None, cols,
                           artifact_bug=self.artifact)
            results[jid] = res
            feasible = feasible and res.feasible
            if stop_when_full and F.value_at(now) == 0:
                break
        return results, feasible

    def _decision(self, snap: Snapshot, results: dict[str, PlanResult],
                  declined: tuple[str, ...] = ()) -> Decision:
        now = snap.now_s
        counts = [(jid, alloc_at(r.alloc, now)) for jid, r in results.items()]
        counts = [(jid, g) for jid, g in counts if g > 0]
        ends = {jid: float(results[jid].real_end) for jid, _ in counts}
        alloc = place(snap, dict(counts), artifact=self.artifact)
        return Decision(alloc=alloc, end_s=ends, decline=declined)


@register
class Edf(_EdfBase):
    NAME = "edf"
    SUMMARY = "Earliest deadline first; jobs take up to min(max_gpu, G) GPUs (no admission)"
    ARTIFACT = ArtifactTraits(instants="coalesce", overhead="none", detect_done=True,
                              queued_ends_for_all=True)

    def decide(self, snap: Snapshot) -> Decision:
        self._sync(snap)
        for j in snap.arrivals:
            self._add(j)
        results, _ = self._plan(snap, self._queue, stop_when_full=True)
        return self._decision(snap, results)


@register
class EdfAccessCtrl(_EdfBase):
    NAME = "edf-accessctrl"
    SUMMARY = "EDF with per-arrival admission control: decline arrivals that break a deadline"
    ARTIFACT = ArtifactTraits(instants="coalesce", overhead="every-instant",
                              overhead_extends_end=True, detect_done=True,
                              queued_ends_for_all=True)

    def decide(self, snap: Snapshot) -> Decision:
        self._sync(snap)
        declined: list[str] = []
        late: set[str] = set()
        arrivals = snap.arrivals
        if arrivals and not self.artifact:
            # clean: an arrival is refused only for the harm it does; jobs already
            # late without it do not make every later arrival fail
            base, _ = self._plan(snap, self._queue, stop_when_full=False)
            late = {jid for jid, r in base.items() if not r.feasible}
        for a in arrivals:  # one arrival at a time, in event order (POLICIES.md 3.4)
            key = (a.spec.deadline_s, a.spec.submit_s, a.spec.idx, a.job_id)
            trial = list(self._queue)
            insort(trial, key)
            res, ok = self._plan(snap, trial, stop_when_full=False)
            if not ok and late:
                ok = all(r.feasible for jid, r in res.items() if jid not in late)
            if ok:
                self._add(a)
            else:
                declined.append(a.job_id)
        results, _ = self._plan(snap, self._queue, stop_when_full=True)
        return self._decision(snap, results, tuple(declined))
