"""ElasticFlow, with admission control (``ef-accessctrl``) and without (``ef``)
(POLICIES.md 2).

Paper: Gu et al., "ElasticFlow: An Elastic Serverless Training Platform for
Distributed Deep Learning", ASPLOS 2023. Every scheduling instant plans all runnable
jobs from scratch in deadline order, each at its *minimum satisfactory share* (the
fewest GPUs, per time segment, that still meet its deadline given the jobs planned
before it; :func:`~sim.policies.efplan.plan_all`), then hands the GPUs nobody needs
right now out one level at a time (:func:`~sim.policies.efplan.allocate_free`).
``ef-accessctrl`` admits an arrival only if every admitted job still meets its
deadline with it; ``ef`` admits everything and lets late jobs run past their deadline.

Deviations from the paper, kept in both modes (POLICIES.md 2.3, 2.7):

* the share is computed per time segment with mixed levels (the artifact's planner),
  not one GPU count per job;
* leftovers go first to jobs holding nothing, then to the job whose planned GPU time
  grows most per extra GPU (the artifact's ``m_j``, sorted descending), not the job
  with the highest marginal return.

Artifact behaviour reproduced only under ``preset: elasticflow-artifact``:

* admission is all-or-nothing per coalesced batch of arrivals: one infeasible arrival,
  or an admitted job made late by accumulated overheads, declines every deadline
  arrival of the batch (2.6). Clean mode tests arrivals one at a time in deadline order
  and declines one only for the harm it causes (a job that would meet its deadline
  without it misses it with it);
* ties in deadline (all best-effort jobs) follow the artifact's runnable-list history:
  the last instant's placement order (GPUs descending), then its leftover order, then
  deadline (2.9). Clean mode breaks ties by ``(submit_s, idx)``;
* every job is re-placed buddy-style at every instant in EF's order (9.1); clean mode
  keeps jobs on their GPUs when their count does not change;
* the executor charges the synthetic overhead at every instant and ends jobs at the
  planned (slot-aligned) end plus overheads, judging ``ef-accessctrl`` on the exact
  finish estimate and ``ef`` on the logged end (1.5, 1.6, 2.8): the ``ARTIFACT``
  traits below.

``max_gpu`` follows EF's per-model rule table (1.2), not the non-EF formula. In clean
mode the levels are only the GPU counts faster than every smaller one at the snapshot's
(communication-aware) rates, and ``max_gpu`` is the last of them (docs/semantics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.model.decision import Decision
from sim.model.placement import ef_placement_order, place_all
from sim.model.snapshot import JobView, Snapshot
from sim.model.throughput import ThroughputTable
from sim.policies import efjit
from sim.policies.base import ArtifactTraits, Policy
from sim.policies.common import sticky_place
from sim.policies.edf import _with_work
from sim.policies.efplan import JobAlloc, PlanJob, allocate_free, plan_all
from sim.registry import register

INF = math.inf


def ef_max_gpu(gpu_type: str, model: str, batch: int) -> int:
    """ElasticFlow's ``max_gpu`` rule table (POLICIES.md 1.2, ``models.py:L80-128``)."""
    if gpu_type == "A100":
        if model == "deepspeech2":
            return batch
        if model == "gpt2":
            return {128: 16, 256: 32}.get(batch, min(batch, 64))
        if model == "bert":
            return 8 if batch == 64 else 16
        if model == "inception3":
            return {64: 16, 128: 32}.get(batch, min(batch, 64))
        if model in ("resnet50", "vgg16"):
            return 32 if batch == 64 else min(batch, 64)
        return min(batch, 64)
    # every other GPU type reads the T4 tables (POLICIES.md 1.2)
    if model in ("bert", "cifar10"):
        return 16
    if model == "deepspeech2" and batch == 320:
        return 32
    if model == "yolov3":
        return 4
    if model == "ncf":
        return 1
    return 64


def ef_plan_job(table: ThroughputTable, model: str, batch: int, key: str,
                deadline: float, *, artifact: bool = True) -> PlanJob:
    """The static planning view of a job (``work`` 0; set it with ``_with_work``): EF's
    ``max_gpu``, and in clean mode (``artifact=False``) only rising levels."""
    return PlanJob.from_table(table, model, batch, key, deadline,
                              ef_max_gpu(table.gpu_type, model, batch), rising=not artifact)


@dataclass(frozen=True)
class EfParams:
    admission: str = field(default="auto", metadata={
        "help": "how arrivals are admitted (ef-accessctrl): 'batch' = all-or-nothing per "
                "batch of simultaneous arrivals (the artifact), 'per-job' = one at a time "
                "in deadline order, declined only for the harm it causes (the paper), "
                "'auto' = batch under the artifact preset, per-job otherwise"})


class _EfBase(Policy):
    """Shared planning pass of ``ef`` and ``ef-accessctrl``; see the module docstring."""

    Params = EfParams
    WORK = "iterations"
    ADMISSION = True

    def __init__(self, params=None, *, artifact: bool = False) -> None:
        super().__init__(params, artifact=artifact)
        if self.params.admission not in ("auto", "batch", "per-job"):
            from sim.errors import InputError

            raise InputError(f"admission must be auto, batch or per-job, not "
                             f"{self.params.admission!r}", field="admission")
        self._order: list[str] = []  # runnable list, in the order the artifact keeps it
        self._started: dict[str, None] = {}  # started jobs, in start order (ef's list)
        self._static: dict[str, PlanJob] = {}
        self._now_jobs: dict[str, PlanJob] = {}  # planning views of the current instant

    # -- helpers -----------------------------------------------------------------
    def _job(self, snap: Snapshot, j: JobView) -> PlanJob:
        view = self._now_jobs.get(j.job_id)  # this instant's view (work = iter_left)
        if view is not None:
            return view
        base = self._static.get(j.job_id)
        if base is None:
            s = j.spec
            base = ef_plan_job(snap.table, s.model, s.batch_size, s.job_id, s.deadline_s,
                               artifact=self.artifact)
            self._static[j.job_id] = base
        view = self._now_jobs[j.job_id] = _with_work(base, max(j.iter_left, 0.0))
        return view

    def _clean_key(self, index: dict[str, JobView]):
        def key(jid: str):
            s = index[jid].spec
            return (s.deadline_s, s.submit_s, s.idx)
        return key

    def _plan(self, snap: Snapshot, index: dict[str, JobView], ids: list[str]):
        G = snap.cluster.num_gpus
        S = snap.slot_s if snap.slot_s > 0 else 1
        return plan_all([self._job(snap, index[jid]) for jid in ids], snap.now_s, G, S)

    def _plan_then_free(self, snap: Snapshot, jobs: list[PlanJob]):
        """:func:`~sim.policies.efjit.plan_then_free`; on bad input, the reference planners
        run to raise the error naming the job."""
        G = snap.cluster.num_gpus
        S = snap.slot_s if snap.slot_s > 0 else 1
        try:
            return efjit.plan_then_free(jobs, snap.now_s, G, S, self.artifact)
        except ValueError:
            res = plan_all(jobs, snap.now_s, G, S, compiled=False)
            by_key = {j.key: j for j in jobs}
            states = [JobAlloc.from_plan(by_key[k], res.results[k], snap.now_s)
                      for k in res.order]
            allocate_free(states, snap.now_s, res.F, G, S, cache=False, artifact=self.artifact)
            raise

    def _admit(self, snap: Snapshot, index: dict[str, JobView], order: list[str],
               arrivals: list[str]) -> list[str]:
        """Arrivals to decline (POLICIES.md 2.6)."""
        mode = self.params.admission
        if mode == "auto":
            mode = "batch" if self.artifact else "per-job"
        be = {jid for jid in arrivals if index[jid].spec.best_effort}
        if mode == "batch":
            if self._plan(snap, index, order + arrivals).feasible:
                return []
            return [jid for jid in arrivals if jid not in be]
        # per-job: in deadline order; refuse an arrival only for the harm it causes
        base = self._plan(snap, index, order)
        late = {k for k, r in base.results.items() if not r.feasible}
        admitted = list(order)
        declined = []
        for jid in sorted(arrivals, key=self._clean_key(index)):
            if jid in be:
                admitted.append(jid)
                continue
            res = self._plan(snap, index, admitted + [jid])
            if all(r.feasible for k, r in res.results.items() if k not in late):
                admitted.append(jid)
                late = {k for k, r in res.results.items() if not r.feasible}
            else:
                declined.append(jid)
        return declined

    # -- the instant -------------------------------------------------------------
    def decide(self, snap: Snapshot) -> Decision:
        index = snap.index()
        now = snap.now_s
        for jid in snap.finished:
            self._static.pop(jid, None)
            self._started.pop(jid, None)
        self._now_jobs = {}
        order = [jid for jid in self._order if jid in index]
        arrivals = [j.job_id for j in snap.arrivals]
        declined: list[str] = []
        if arrivals and self.ADMISSION:
            declined = self._admit(snap, index, order, arrivals)
        if declined:
            out = set(declined)
            arrivals = [jid for jid in arrivals if jid not in out]
            for jid in out:
                self._static.pop(jid, None)
        order += arrivals
        if not self.artifact:
            order.sort(key=self._clean_key(index))
        # final plan: every runnable job at its minimum satisfactory share (2.5 step 2.4),
        # then the leftovers, one level at a time (2.7): both in one compiled call
        pf = self._plan_then_free(snap, [self._job(snap, index[k]) for k in order])
        at = {k: i for i, k in enumerate(pf.keys)}
        # pending jobs whose plan gives them GPUs now start (2.5 step 3.1)
        pending_wakes = []
        for k in order:  # arrival order is the artifact's pending-list order
            if k in self._started:
                continue
            if pf.gpus0[at[k]]:
                self._started[k] = None
            else:
                first = pf.first[at[k]]
                if first is not None and first > now:
                    pending_wakes.append(first)
        # a pending job that gets some of the leftovers starts
        for k, old, _new in pf.grants:
            if not old:
                self._started.setdefault(k, None)
        gpus = dict(zip(pf.keys, pf.gpus))
        order = list(pf.order)
        if self.ADMISSION:
            order.sort(key=lambda k: -gpus[k])  # placement sort (2.9), stable
            place_order = order
        else:  # ef places its started jobs in start order and keeps the leftover order
            place_order = list(self._started)
        self._order = order
        want = [(k, gpus[k]) for k in place_order if gpus[k] > 0]
        alloc = self._place(snap, want)
        # under the preset every runnable job's planned end is declared: the executor
        # parks those of jobs without GPUs (the artifact queues an end event for them)
        declare = pf.keys if self.artifact else dict(want)
        ends = {k: float(pf.end[at[k]]) for k in declare}
        # [ARTIFACT] a leftover grant moves the planned end but not the real end: the
        # exact finish estimate stays the one of the minimum-share plan
        reals = pf.real0 if self.artifact else pf.real
        real = {k: float(reals[at[k]]) for k in declare}
        # re-plan points (2.5 step 3.4, 2.8): ef-accessctrl asks for the earliest change
        # of any plan; ef for each started job's next change and each pending job's start
        nxt = dict(zip(pf.keys, pf.next))
        if self.ADMISSION:
            wake = min((t for t in nxt.values() if t is not None), default=None)
            return Decision(alloc=alloc, decline=tuple(declined), end_s=ends,
                            real_end_s=real, wake_s=wake)
        # the artifact queues the pending jobs' starts before handing out leftovers;
        # a start time that a granted job's end event then leaves, with no other end
        # event there, disappears with its bucket (the engine does the same for
        # wake-ups queued at earlier instants)
        vacated = set(pf.ends_left)
        if vacated and self.artifact:
            remaining = set(pf.end)
            pending_wakes = [t for t in pending_wakes if t not in vacated or t in remaining]
        wakes = [nxt[k] for k in self._started if nxt[k] is not None]
        if not self.artifact:  # clean: the earliest is enough
            wakes = [min(wakes + pending_wakes)] if wakes or pending_wakes else []
        return Decision(alloc=alloc, end_s=ends, real_end_s=real,
                        wakes=tuple(sorted(set(wakes + pending_wakes))),
                        vacated_s=tuple(sorted(vacated)) if self.artifact else ())

    def _place(self, snap: Snapshot, want: list[tuple[str, int]]) -> dict[str, tuple[int, ...]]:
        if self.artifact:
            return place_all(snap.cluster, ef_placement_order(  # ids come ascending
                want, snap.cluster.gpus_per_node, sort_big=self.ADMISSION))
        return sticky_place(snap, dict(want), order=[k for k, _ in want])


@register
class EfAccessCtrl(_EfBase):
    NAME = "ef-accessctrl"
    SUMMARY = ("ElasticFlow: minimum satisfactory shares, admission control, leftover "
               "GPUs to the jobs that gain most")
    ARTIFACT = ArtifactTraits(instants="coalesce", overhead="every-instant",
                              overhead_extends_end=True, detect_done=True, judge="real_end",
                              queued_ends_for_all=True, wake_rule="if-first", clip_at_real_end=True)


@register
class Ef(_EfBase):
    NAME = "ef"
    SUMMARY = "ElasticFlow without admission control: every job runs, late ones past their deadline"
    ADMISSION = False
    ARTIFACT = ArtifactTraits(instants="coalesce", overhead="every-instant",
                              overhead_extends_end=True, detect_done=True, judge="end",
                              queued_ends_for_all=True, wake_rule="keep", clip_at_real_end=True)
