"""Earliest deadline first, with and without admission control (POLICIES.md 3).

Both plan every runnable job in deadline order on a free-capacity profile with
:func:`sim.policies.efplan.edf_plan_all`: each job gets ``b = min(max_gpu, G)``
GPUs, or the largest table column that still fits, on every segment until it
finishes. ``edf-accessctrl`` additionally tests each arrival: if adding it makes
any admitted job miss its deadline, the arrival is declined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.model.decision import Decision
from sim.model.job import JobSpec
from sim.model.placement import FragmentationError, place_all
from sim.model.snapshot import JobStatus, JobView, Snapshot
from sim.model.throughput import ThroughputTable
from sim.policies.base import ArtifactTraits, Policy
from sim.policies.common import sticky_place
from sim.policies.efplan import PlanAllResult, PlanJob, alloc_at, edf_plan_all
from sim.registry import register


def generic_max_gpu(table: ThroughputTable, spec: JobSpec) -> int:
    """The artifact's non-EF ``max_gpu``: the largest column with a value, capped at 64 and
    at the batch size (POLICIES.md 1.1)."""
    return min(table.largest_column_with_value(spec.model, spec.batch_size), 64,
               spec.batch_size)


@dataclass(frozen=True)
class EdfParams:
    use_requested_gpus: bool = field(default=False, metadata={
        "help": "give each job the GPUs its user requested instead of up to min(max_gpu, G) "
                "(the artifact ignores the request; POLICIES.md 3.1 [DECIDE])"})


class _EdfBase(Policy):
    """Shared planning for ``edf`` and ``edf-accessctrl``.

    Paper: EDF is the classic real-time policy (Liu & Layland, JACM 1973); ElasticFlow
    (Gu et al., ASPLOS'23) uses it as a baseline.

    Deviations from the artifact in clean mode (``preset: clean``): the plan update is
    the correct one (the artifact's overwrite can leak GPUs in the plan, POLICIES.md 3.2);
    ties in deadline are broken by ``(submit_s, idx)`` instead of the runnable list's
    history; placement keeps jobs on their GPUs when their count does not change
    (sticky) instead of re-placing everything buddy-style at every instant.
    Deviation from a textbook EDF kept in both modes (artifact behaviour): a job may get
    up to ``min(max_gpu, G)`` GPUs, not the count its user asked for, unless
    ``use_requested_gpus`` is set.
    """

    Params = EdfParams
    WORK = "iterations"

    def __init__(self, params=None, *, artifact: bool = False) -> None:
        super().__init__(params, artifact=artifact)
        self._order: list[str] = []  # the runnable list order the artifact carries along
        self._plan_jobs: dict[tuple, PlanJob] = {}

    # -- helpers ---------------------------------------------------------------
    def _S(self, snap: Snapshot) -> float:
        return snap.slot_s if snap.slot_s > 0 else 1.0

    def _plan_job(self, snap: Snapshot, j: JobView) -> PlanJob:
        spec = j.spec
        table = snap.table
        G = snap.cluster.num_gpus
        mg = spec.num_gpu if self.params.use_requested_gpus else generic_max_gpu(table, spec)
        levels = tuple(c for c in table.levels(spec.model, spec.batch_size) if c <= mg)
        rates = tuple(table.rate(spec.model, spec.batch_size, c) for c in levels)
        del G
        return PlanJob(key=spec.job_id, work=max(j.iter_left, 0.0), deadline=spec.deadline_s,
                       levels=levels, rate=rates, max_gpu=mg)

    def _ordered(self, snap: Snapshot, views: list[JobView]) -> list[JobView]:
        """Jobs in the order ties are broken: artifact list order, or (submit, idx)."""
        if not self.artifact:
            return sorted(views, key=lambda j: (j.spec.deadline_s, j.spec.submit_s, j.spec.idx))
        pos = {jid: i for i, jid in enumerate(self._order)}
        big = len(pos)
        return sorted(views, key=lambda j: pos.get(j.job_id, big + j.spec.idx))

    def _plan(self, snap: Snapshot, views: list[JobView]) -> PlanAllResult:
        jobs = [self._plan_job(snap, j) for j in self._ordered(snap, views)]
        G = snap.cluster.num_gpus
        columns = snap.table.columns
        return edf_plan_all(jobs, snap.now_s, G, self._S(snap), columns,
                            artifact_bug=self.artifact)

    def _place(self, snap: Snapshot, counts: list[tuple[str, int]]) -> dict[str, tuple[int, ...]]:
        """Concrete GPUs: buddy placement from scratch (artifact) or sticky (clean)."""
        counts = [(jid, g) for jid, g in counts if g > 0]
        if self.artifact:
            try:
                return place_all(snap.cluster, counts)
            except FragmentationError:
                pass  # list-order placement can fragment (POLICIES.md 9.1 step 4)
        return sticky_place(snap, dict(counts), order=[jid for jid, _ in counts])


@register
class Edf(_EdfBase):
    NAME = "edf"
    SUMMARY = "Earliest deadline first; jobs take up to min(max_gpu, G) GPUs (no admission)"
    ARTIFACT = ArtifactTraits(instants="coalesce", overhead="none", detect_done=True)

    def decide(self, snap: Snapshot) -> Decision:
        views = list(snap.jobs)
        res = self._plan(snap, views)
        now = snap.now_s
        counts = [(jid, alloc_at(res.results[jid].alloc, now)) for jid in res.order]
        # placement in num_gpu-descending order (stable); the artifact sorts its list so
        self._order = [jid for jid, _ in sorted(counts, key=lambda c: -c[1])]
        alloc = self._place(snap, sorted(counts, key=lambda c: -c[1]))
        ends = {jid: float(res.results[jid].real_end) for jid in res.order}
        return Decision(alloc=alloc, end_s=ends)


@register
class EdfAccessCtrl(_EdfBase):
    NAME = "edf-accessctrl"
    SUMMARY = "EDF with per-arrival admission control: decline arrivals that break a deadline"
    ARTIFACT = ArtifactTraits(instants="coalesce", overhead="every-instant",
                              overhead_extends_end=True, detect_done=True)

    def decide(self, snap: Snapshot) -> Decision:
        now = snap.now_s
        admitted = [j for j in snap.jobs if j.status is not JobStatus.NEW]
        arrivals = [j for j in snap.jobs if j.status is JobStatus.NEW]
        declined: list[str] = []
        res: PlanAllResult | None = None
        any_admitted = False
        for a in arrivals:  # one arrival at a time, in event order (POLICIES.md 3.4)
            trial = self._plan(snap, admitted + [a])
            if trial.feasible:
                admitted.append(a)
                self._order.append(a.job_id)
                res = trial
                any_admitted = True
            else:
                declined.append(a.job_id)
        if not any_admitted:
            res = self._plan(snap, admitted)
            self._order = list(res.order)
        assert res is not None
        order = self._order if self.artifact else res.order
        present = {j.job_id for j in admitted}
        order = [jid for jid in order if jid in present]
        self._order = order
        counts = [(jid, alloc_at(res.results[jid].alloc, now)) for jid in order]
        alloc = self._place(snap, counts)
        ends = {jid: float(res.results[jid].real_end) for jid in order}
        return Decision(alloc=alloc, end_s=ends, decline=tuple(declined))


_ = math  # keep math imported for future formulae
