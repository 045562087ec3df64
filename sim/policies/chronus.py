"""Chronus (``chronus``): deadline scheduling with time-sliced leases and a MIP.

Every ``check_s`` a tick; at lease boundaries (every ``lease_s``) the admitted
(SLO) jobs are re-planned over future leases by a mixed-integer program
(:mod:`sim.policies.chronus_mip`); arrivals are admitted every ``admit_every_s``
by a greedy packability test; everything else runs opportunistically on the
GPUs the plan leaves free. See POLICIES.md section 7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.errors import InputError
from sim.model.decision import Decision
from sim.model.snapshot import JobView, Snapshot
from sim.policies.base import ArtifactTraits, Policy
from sim.policies.chronus_mip import (
    LeaseJob,
    LeasePlan,
    latest_fit,
    resolve_solver,
    solve_leases,
)
from sim.policies.common import sticky_place
from sim.registry import register

# priority codes (POLICIES.md 7.5)
LOWEST, ACCEPTED, UNACCEPTED, BEST_EFFORT = -1, 0, 1, 2
#: the value of meeting an SLO job's deadline (the converter's expect_value_list)
SLO_VALUE = 10.0
#: Chronus charges a resumed job this many seconds per (1 + log2 GPUs) of extra work
RESUME_S = 0.5


@dataclass(frozen=True)
class ChronusParams:
    lease_s: float = field(
        default=240.0,
        metadata={"help": "lease term L in seconds: the MIP re-plans at every multiple "
                          "(figure scripts: 240)"})
    check_s: float = field(
        default=60.0,
        metadata={"help": "tick length C when the scenario has no slot (slot_s = 0); "
                          "otherwise the slot is the tick (figure scripts: 60 or 240)"})
    admit_every_s: float = field(
        default=240.0,
        metadata={"help": "arrivals are admitted, and opportunistic jobs (re)started, only "
                          "at multiples of this (artifact constant BEST_SLOT = 240)"})
    mip_objective: str = field(
        default="adaptive",
        metadata={"help": "'adaptive' (maximise lease-0 use when no job waits for spot "
                          "GPUs, else minimise it), 'maximize' or 'minimize'"})
    solver: str = field(
        default="auto",
        metadata={"help": "MIP solver through PuLP: 'highs' (needs highspy), 'cbc' "
                          "(bundled with PuLP), 'auto' (HiGHS if installed, else CBC)"})
    time_limit_s: float = field(
        default=5.0,
        metadata={"help": "wall-clock limit of one MIP solve (artifact: 5 s); on the limit "
                          "the best incumbent is used, without one the greedy fallback"})
    seed: int = field(
        default=0, metadata={"help": "solver random seed (solves are single-threaded)"})
    shortcut: bool = field(
        default=True,
        metadata={"help": "skip the solver when a greedy plan provably reaches the optimum "
                          "(same objective value; see chronus_mip)"})
    tolerance: float = field(
        default=1.0,
        metadata={"help": "an arrival that does not fit before its deadline lease is still "
                          "admitted if the earliest lease it fits by ends within tolerance x "
                          "its relative deadline (artifact: 1.0)"})


@dataclass
class _State:
    """Chronus's bookkeeping for one job."""

    prio: int
    deadline_s: float  # absolute; lease-tightened once admitted
    estimate_s: int  # the work estimate the admission and the MIP plan with
    gpus: int  # bin(num_gpu): what a lease reserves
    forced: bool = False  # demoted after using its estimate: first among opportunistic jobs
    plan: np.ndarray | None = None  # absolute lease indices reserved (ACCEPTED only)
    resumes: int = 0


@dataclass
class ChronusStats:
    """Counters a benchmark reads after a run."""

    leases: int = 0  # lease boundaries with at least one SLO job to plan
    solves: int = 0  # MIP solver calls
    solve_s: list[float] = field(default_factory=list)  # wall time of each solver call
    limit_hits: int = 0  # solves that stopped on the time limit
    fallbacks: int = 0  # plans from the greedy fallback
    shortcuts: int = 0  # plans proven optimal without a solver


def bin_gpus(n: int) -> int:
    """GPUs a lease reserves for a job requesting ``n`` (``tawl.py:L95-99``): 3 -> 4, 5-7 -> 8."""
    if n == 3:
        return 4
    if 5 <= n <= 7:
        return 8
    return n


def estimate_s(duration_s: float, num_gpu: int, lease_s: float) -> int:
    """Chronus's planning estimate: the duration plus the resume overhead it expects per
    lease, plus 10 % (POLICIES.md 7.3 step 1)."""
    return int(duration_s * (1.0 + (1.0 + math.log2(num_gpu)) * RESUME_S / lease_s) * 1.1)


@register
class Chronus(Policy):
    """Chronus (Gao et al., "Chronus: A Novel Deadline-aware Scheduler for Deep
    Learning Training Jobs", SoCC 2021), as the ElasticFlow artifact runs it
    (``time-aware-with-lease``, POLICIES.md section 7) but on open MIP solvers.

    Jobs run at their requested GPU count for whole leases of ``lease_s``. Each
    tick (every ``check_s``, the scenario slot):

    1. An admitted job whose executed time reached its estimate is demoted to
       UNACCEPTED and put first among opportunistic jobs.
    2. At a lease boundary all jobs stop and the admitted jobs are re-planned:
       each needs ``r = ceil((estimate - executed) / L)`` leases before its
       deadline lease ``m``; the MIP of :mod:`sim.policies.chronus_mip` (adaptive
       objective: maximise lease-0 use if no UNACCEPTED job waits, else minimise)
       decides which leases; jobs with lease 0 run now. An infeasible program or a
       solve without incumbent falls back to the greedy plan, and admitted jobs it
       cannot pack become UNACCEPTED.
    3. At admission ticks (every ``admit_every_s``) each arrival is tested in
       order: best-effort jobs get no reservation; an SLO job with
       ``estimate = int(duration (1 + (1 + log2 n) 0.5 / L) 1.1)`` takes its ``r``
       latest leases with room before its deadline lease (greedy latest-fit on top
       of the reservations); if it fits it is ACCEPTED with its deadline tightened
       to that lease boundary, else it is UNACCEPTED (never declined). If the plan
       includes the current lease it starts now.
    4. Pending-job flush at admission ticks: a waiting SLO job that can no
       longer meet its deadline drops to LOWEST; then every non-ACCEPTED job is
       first-fit, in order (forced, min(priority, 1), emergence, -submit)
       descending, into the GPUs admitted jobs leave free.

    [DECIDE] choices (also in docs/semantics.md):

    * Solvers: PuLP with HiGHS (``highspy``) or CBC instead of python-mip +
      Gurobi; one thread, fixed seed, ``time_limit_s`` per solve (the artifact also
      stops after 1 s without improvement; we do not). A solve is deterministic
      unless the limit binds. Notes in the event log name every solver call, its
      status and time, and say when the limit or the fallback was used.
    * The MIP is built over intervals of interchangeable leases, not one binary
      per lease; same optimum (see :mod:`sim.policies.chronus_mip`). No cap on
      its size (the artifact freezes jobs above 1200 L / 60 entries).
    * A greedy plan that provably reaches the bound skips the solver
      (``shortcut``; same objective value, possibly another optimal plan).
    * Admission tests each arrival on top of the existing reservations only (the
      artifact re-packs admitted jobs without a cached plan; here every admitted
      job always has one). The binary search for a later deadline lease is the
      scan for the earliest lease by which the job fits, accepted within
      ``tolerance`` x its relative deadline (with 1.0 this only matters when
      ``floor`` rounding leaves room).
    * Leases count from the first scheduling instant (the artifact's ``t = 0``).
    * Decisions happen on ticks only (the scenario slot); a lease or admission
      period that is not a multiple of the tick is rounded up to one (noted).
    * Between ticks (clean mode: arrivals and completions at their exact times)
      nothing is re-decided; GPUs a finished job frees wait for the next
      admission tick, as in the artifact.
    * Placement: deterministic best-fit that keeps running jobs in place
      (:func:`~sim.policies.common.sticky_place`), guaranteed jobs first, largest
      first; the artifact's ``local_search`` is partly unseeded random. Placement
      never changes speed in either.
    * Reservations use ``bin(num_gpu)`` GPUs, jobs hold ``num_gpu``.

    Artifact behaviour (``elasticflow-artifact`` preset):

    * The converter marks every job strict: best-effort jobs become deadline jobs
      with the trace's deadline and count in the ratio (applied when the trace is
      loaded, ``ArtifactTraits.all_strict``).
    * A resumed job (including one restarted at a lease boundary) owes
      ``0.5 (1 + log2 num_gpu)`` s more work per resume; ends are declared exactly
      (``end = t + remaining``), processed at the next tick. No other overhead.
    * Jobs that cannot fit before their deadline stay in the MIP and make it
      infeasible, so the whole lease uses the greedy fallback (clean mode demotes
      them first).
    * The adaptive objective counts only UNACCEPTED jobs (clean mode: every
      non-admitted runnable job, best-effort included).
    * Deviation kept: admitted jobs are judged against the user's deadline, not
      the lease-tightened one the artifact's metric uses.

    Clean mode: best-effort jobs stay best-effort (no reservation, outside the
    ratio); the engine's exact completions and change-only overheads apply.
    """

    NAME = "chronus"
    SUMMARY = "Chronus: lease-based deadline scheduling, MIP lease plans (PuLP), spot GPUs"
    Params = ChronusParams
    WORK = "duration"
    ARTIFACT = ArtifactTraits(instants="rounds", overhead="none", detect_done=False,
                              all_strict=True)

    def __init__(self, params: ChronusParams | None = None, *, artifact: bool = False) -> None:
        super().__init__(params, artifact=artifact)
        p = self.params
        try:
            self.solver = resolve_solver(p.solver)
        except ValueError as e:
            raise InputError(f"chronus: {e}", field="solver") from None
        if p.mip_objective not in ("adaptive", "maximize", "minimize"):
            raise InputError(f"chronus: mip_objective must be adaptive, maximize or "
                             f"minimize, not {p.mip_objective!r}", field="mip_objective")
        for name in ("lease_s", "check_s", "admit_every_s", "time_limit_s"):
            if getattr(p, name) <= 0:
                raise InputError(f"chronus: {name} must be > 0", field=name)
        self.state: dict[str, _State] = {}
        self.queue: list[str] = []  # arrivals waiting for the next admission tick
        self.t0: float | None = None
        self.stats = ChronusStats()
        self.last_plan: LeasePlan | None = None
        self.lease_s: float | None = None  # effective lease and admission periods
        self.admit_s: float = p.admit_every_s

    # ------------------------------------------------------------------ decide
    def decide(self, snap: Snapshot) -> Decision:
        now = snap.now_s
        if self.t0 is None:
            self.t0 = now
        p = self.params
        C = snap.slot_s if snap.slot_s > 0 else p.check_s
        notes: list[str] = []
        if self.lease_s is None:
            # [DECIDE] decisions happen on ticks only: a lease or admission period that is
            # not a multiple of the tick is rounded up to one (and the log says so)
            self.lease_s = math.ceil(p.lease_s / C - 1e-9) * C
            self.admit_s = math.ceil(p.admit_every_s / C - 1e-9) * C
            if self.lease_s != p.lease_s or self.admit_s != p.admit_every_s:
                notes.append(f"chronus: lease {self.lease_s:g} s, admission every "
                             f"{self.admit_s:g} s (multiples of the {C:g} s tick)")
        jobs = snap.index()
        for jid in [jid for jid in self.state if jid not in jobs]:
            del self.state[jid]
        self.queue = [jid for jid in self.queue if jid in jobs]
        for j in snap.arrivals:
            self.queue.append(j.job_id)
        if not jobs:
            return Decision()
        rel = now - self.t0
        if not _on_grid(rel, C):
            # an event between ticks (clean mode): nothing is re-decided
            return Decision(alloc={jid: jobs[jid].gpus for jid in snap.holding_ids()},
                            wake_s=self._next_tick(now, C), notes=tuple(notes))
        L = self.lease_s
        k = int(math.floor(rel / L + 1e-9))
        boundary = _on_grid(rel, L)

        # 1. demotion of admitted jobs that used up their estimate
        for jid, st in self.state.items():
            if st.prio == ACCEPTED and jobs[jid].executed_s >= st.estimate_s - 1e-9:
                self._demote(jid, forced=True)

        # 2. lease boundary: everything stops, the MIP re-plans the admitted jobs
        if boundary:
            guaranteed = self._replan(snap, k, notes)
        else:
            guaranteed = [jid for jid in snap.holding_ids()
                          if jid in self.state and self.state[jid].prio == ACCEPTED]

        # 3.-4. arrivals, then the opportunistic fill
        if _on_grid(rel, self.admit_s):
            for jid in self.queue:
                if self._admit(jobs[jid], k, snap.cluster.num_gpus, guaranteed):
                    guaranteed.append(jid)
            self.queue = []
            opportunistic = self._opportunistic(snap, guaranteed)
        elif boundary:
            opportunistic = []  # stopped at the boundary, restarted at the next admission tick
        else:
            opportunistic = [jid for jid in snap.holding_ids() if jid not in guaranteed]

        want = {jid: jobs[jid].spec.num_gpu for jid in guaranteed + opportunistic}
        order = guaranteed + sorted(opportunistic, key=lambda j: -want[j])
        alloc = sticky_place(snap, want, order=order)
        end_s: dict[str, float] = {}
        if self.artifact:
            end_s = self._declare(snap, alloc, boundary)
        return Decision(alloc=alloc, end_s=end_s, wake_s=self._next_tick(now, C),
                        notes=tuple(notes))

    # ---------------------------------------------------------------- helpers
    def _lease(self) -> float:
        return self.lease_s if self.lease_s is not None else self.params.lease_s

    def _next_tick(self, now: float, C: float) -> float:
        assert self.t0 is not None
        return self.t0 + (math.floor((now - self.t0) / C + 1e-9) + 1) * C

    def _state(self, j: JobView) -> _State:
        st = self.state.get(j.job_id)
        if st is None:
            s = j.spec
            be = s.best_effort
            ddl = s.deadline_s
            st = _State(prio=BEST_EFFORT if be else UNACCEPTED, deadline_s=ddl,
                        estimate_s=estimate_s(s.duration_s, s.num_gpu, self._lease()),
                        gpus=bin_gpus(s.num_gpu))
            self.state[j.job_id] = st
        return st

    def _demote(self, jid: str, *, forced: bool = False, prio: int = UNACCEPTED) -> None:
        st = self.state[jid]
        st.prio = prio
        st.plan = None
        st.forced = st.forced or forced

    def _deadline_lease(self, deadline_s: float) -> int:
        """Absolute index of the last lease boundary at or before the deadline."""
        assert self.t0 is not None
        if math.isinf(deadline_s):
            return 1 << 40
        return int(math.floor((deadline_s - self.t0) / self._lease() + 1e-9))

    def _reserved(self, k: int, horizon: int) -> np.ndarray:
        """GPUs reserved by admitted jobs in absolute leases ``k .. k + horizon - 1``."""
        res = np.zeros(horizon, dtype=np.int64)
        for st in self.state.values():
            if st.prio == ACCEPTED and st.plan is not None and len(st.plan):
                off = st.plan - k
                off = off[(off >= 0) & (off < horizon)]
                res[off] += st.gpus
        return res

    def _replan(self, snap: Snapshot, k: int, notes: list[str]) -> list[str]:
        """Lease boundary: plan the admitted jobs; return those that run in lease ``k``."""
        jobs = snap.index()
        L = self._lease()
        G = snap.cluster.num_gpus
        todo: list[LeaseJob] = []
        for jid, st in self.state.items():
            if st.prio != ACCEPTED:
                continue
            j = jobs[jid]
            if self.artifact:
                left = st.estimate_s - j.executed_s
            else:
                # [DECIDE] clean: re-estimate the true remaining work, so that time lost to
                # restart overheads does not eat the margin the first estimate planned
                left = estimate_s(max(j.spec.duration_s - j.executed_s, 0.0), j.spec.num_gpu, L)
            r = max(1, math.ceil(left / L - 1e-9))
            m = self._deadline_lease(st.deadline_s) - k
            if m < r and not self.artifact:
                # [DECIDE] clean mode: no plan can hold it; do not let it make the MIP
                # infeasible for everyone
                self._demote(jid)
                notes.append(f"chronus: {jid} cannot fit before its deadline lease; unaccepted")
                continue
            todo.append(LeaseJob(jid, st.gpus, r, max(m, 0), SLO_VALUE))
        if not todo:
            return []
        objective = self.params.mip_objective
        if objective == "adaptive":
            if self.artifact:
                waiting = any(st.prio == UNACCEPTED for st in self.state.values())
            else:
                waiting = any(st.prio != ACCEPTED for st in self.state.values())
            objective = "minimize" if waiting else "maximize"
        horizon = max(lj.within for lj in todo)
        caps = np.full(max(horizon, 1), G, dtype=np.int64)
        hopeless = [lj for lj in todo if lj.within < 1 or lj.need > lj.within]
        self.stats.leases += 1
        if hopeless:
            # no plan exists: the solver would report infeasible; go straight to the fallback
            from sim.policies.chronus_mip import greedy_leases

            ok = [lj for lj in todo if lj not in hopeless]
            rows, unpacked = greedy_leases(ok, caps) if ok else ({}, ())
            plan = LeasePlan(rows=rows, unpacked=tuple(lj.job_id for lj in hopeless) + unpacked,
                             status="greedy", method="greedy",
                             reason=f"{len(hopeless)} job(s) cannot fit before their deadline")
        else:
            plan = solve_leases(todo, caps, objective=objective, solver=self.solver,
                                time_limit_s=self.params.time_limit_s, seed=self.params.seed,
                                shortcut=self.params.shortcut)
        self.last_plan = plan
        st_ = self.stats
        if plan.solver_called:
            st_.solves += 1
            st_.solve_s.append(plan.solve_s)
            # no wall time here: the event log must not depend on the machine's speed
            # (the solve times are in self.stats and bench/chronus.py reports them)
            notes.append(f"chronus: lease {k} MIP ({objective}, {len(todo)} jobs) "
                         f"{self.solver} {plan.status}")
        if plan.status == "bound":
            st_.shortcuts += 1
        if plan.status == "limit":
            st_.limit_hits += 1
            notes.append(f"chronus: lease {k} solve hit its {self.params.time_limit_s:g} s "
                         f"limit; using the best incumbent")
        if plan.status == "greedy":
            st_.fallbacks += 1
            if plan.reason.startswith("no incumbent"):
                st_.limit_hits += 1
            notes.append(f"chronus: lease {k} greedy fallback ({plan.reason}); "
                         f"{len(plan.unpacked)} admitted job(s) unaccepted")
        for jid in plan.unpacked:
            self._demote(jid)
        run_now = []
        for lj in todo:
            row = plan.rows.get(lj.job_id)
            if row is None or lj.job_id in plan.unpacked:
                continue
            self.state[lj.job_id].plan = row + k
            if len(row) and row[0] == 0:
                run_now.append(lj.job_id)
        return sorted(run_now, key=lambda jid: (-self.state[jid].gpus, jobs[jid].spec.idx))

    def _admit(self, j: JobView, k: int, G: int, guaranteed: list[str]) -> bool:
        """Admission test of one arrival; True if it runs in the current lease."""
        st = self._state(j)
        s = j.spec
        if st.prio == BEST_EFFORT:
            return False
        L = self._lease()
        r = max(1, math.ceil(st.estimate_s / L - 1e-9))
        m = self._deadline_lease(st.deadline_s) - k
        if m < 1:
            st.prio = UNACCEPTED
            return False
        horizon = max(m, r)
        # room per lease: the cluster minus the reservations; the current lease also
        # minus the admitted jobs running now
        free = G - self._reserved(k, horizon)
        running_reserved = sum(self.state[g].gpus for g in guaranteed)
        free[0] = min(free[0], G - running_reserved)
        got = latest_fit(free, st.gpus, r, m)
        if got is None:
            # the earliest deadline lease by which it would fit
            ok = np.flatnonzero(free >= st.gpus)
            if len(ok) < r:
                st.prio = UNACCEPTED
                return False
            m2 = int(ok[r - 1]) + 1
            rel_deadline = s.deadline_s - s.submit_s
            if (k + m2) * L + (self.t0 or 0.0) - s.submit_s > self.params.tolerance * rel_deadline:
                st.prio = UNACCEPTED
                return False
            m = m2
            got = latest_fit(free, st.gpus, r, m)
            assert got is not None
        st.prio = ACCEPTED
        st.deadline_s = min(st.deadline_s, (k + m) * L + (self.t0 or 0.0))
        st.plan = got + k
        return bool(got[0] == 0)

    def _opportunistic(self, snap: Snapshot, guaranteed: list[str]) -> list[str]:
        """Pending-job flush: LOWEST marking, emergence order, first-fit on spot GPUs."""
        now = snap.now_s
        jobs = snap.index()
        taken = set(guaranteed) | set(self.queue)
        cands = []
        for j in snap.jobs:
            jid = j.job_id
            if jid in taken:
                continue
            st = self._state(j)
            remaining = j.spec.duration_s - j.executed_s
            if (st.prio not in (BEST_EFFORT, LOWEST) and not j.gpus
                    and st.deadline_s < now + remaining):
                self._demote(jid, prio=LOWEST)
            if st.prio == ACCEPTED:
                continue
            rem_est = st.estimate_s - j.executed_s
            n = j.spec.num_gpu
            if st.prio in (BEST_EFFORT, UNACCEPTED):
                emergence = -rem_est * n
            else:
                emergence = -(st.deadline_s - now - rem_est) * n
            cands.append(((st.forced, min(st.prio, 1), emergence, -j.spec.submit_s,
                           -j.spec.idx), jid))
        cands.sort(reverse=True)
        free = snap.cluster.num_gpus - sum(jobs[jid].spec.num_gpu for jid in guaranteed)
        out = []
        for _, jid in cands:
            n = jobs[jid].spec.num_gpu
            if n <= free:
                out.append(jid)
                free -= n
        return out

    def _declare(self, snap: Snapshot, alloc: dict[str, tuple[int, ...]],
                 boundary: bool) -> dict[str, float]:
        """Artifact: count resumes, declare exact ends (work = duration + resume overhead)."""
        jobs = snap.index()
        out = {}
        for jid in alloc:
            j = jobs[jid]
            st = self._state(j)
            if j.start_s is not None and (boundary or not j.gpus):
                st.resumes += 1  # restarted: at every lease boundary all jobs stop
            work = j.spec.duration_s + st.resumes * RESUME_S * (1.0 + math.log2(j.spec.num_gpu))
            out[jid] = snap.now_s + max(work - j.executed_s, 0.0)
        return out


def _on_grid(x: float, step: float) -> bool:
    q = x / step
    return abs(q - round(q)) < 1e-6
