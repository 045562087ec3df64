"""ElasticFlow and EDF planners as pure functions over free-capacity step functions.

This module is the computational core of the ``ef``/``ef-accessctrl`` and ``edf``/
``edf-accessctrl`` policies (POLICIES.md sections 2 and 3). It knows nothing about SimPy,
the clock, files or job records: callers describe each job by a :class:`PlanJob` and the
cluster by its total GPU count ``G``, the scheduling slot ``S`` and a :class:`Profile` ``F``
of free GPUs over time, and get plans back as data.

Public entry points (each cites its spec section):

* :func:`plan` -- ``PLAN(j, now, F)``, minimum satisfactory share with progressive
  filling (2.3), including the "beyond the deadline" plan of infeasible jobs (2.3 step 4).
* :func:`plan_all` -- ``PLAN_ALL(jobs, now)`` (2.4).
* :func:`allocate_free` -- ``ALLOCATE_FREE(t)``, leftover distribution (2.7).
* :func:`edf_plan` / :func:`edf_plan_all` -- ``EDF_PLAN`` / ``EDF_PLAN_ALL`` (3.2), with the
  artifact's overwrite quirk behind ``artifact_bug``.
* helpers :func:`align` (1.4), :func:`next_level`, :func:`floor_level` (1.2),
  :func:`gpu_seconds` (2.7), :func:`alloc_at`, :func:`compress_steps`.

Conventions
-----------
* Times are seconds (integers in every real use; ``math.inf`` is the best-effort deadline,
  as ``sim.model.job.BEST_EFFORT_DEADLINE``). Work is iterations; rates are iterations/s
  of the whole job on ``g`` GPUs.
* A step function is a sorted list of ``(t, value)`` pairs; the value holds on
  ``[t, next t)`` and the last value holds forever. An allocation ("plan") additionally
  ends at the job's planned end ``E``: the job holds its GPUs on ``[first t, E)``.
* Preconditions shared by the EF planner (true for every profile a planning pass builds,
  2.2): ``F`` has a breakpoint at or before ``now``, every breakpoint at or after ``now``
  lies on the grid ``now + k*S``, and ``F``'s last value equals ``G``.

Cost: one :func:`plan` call is ``O(B)`` list operations (its sequential sums run in
``itertools.accumulate``), where ``B`` is the number of breakpoints of ``F`` before the
job's deadline; it copies nothing when committing. :func:`allocate_free` must know the
what-if plan of every job that can grow after each grant (2.7 step 4); it recomputes only
those a grant can have changed (about 1 in 9 on the ITP traces), most of them in closed
form with a few bisections, and tests the others in bulk per grant (see the fast-path
section at the end of this module).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from heapq import heappop, heappush
from itertools import accumulate, compress, repeat
from operator import add, ge, mul, ne, sub

import numpy as np

__all__ = [
    "FreeResult",
    "JobAlloc",
    "PlanAllResult",
    "PlanJob",
    "PlanResult",
    "Profile",
    "align",
    "alloc_at",
    "allocate_free",
    "compress_steps",
    "edf_plan",
    "edf_plan_all",
    "floor_level",
    "gpu_seconds",
    "next_level",
    "plan",
    "plan_all",
]

INF = math.inf

Steps = list[tuple[float, int]]
"""A step function / plan: sorted ``(t, gpus)`` pairs (see module docstring)."""


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


class Profile:
    """Free-capacity step function ``F`` (POLICIES.md 2.2).

    Two parallel lists: ``times`` (strictly increasing breakpoints) and ``values`` (GPUs not
    promised to any job on ``[times[k], times[k+1])``; the last value holds forever).

    The representation is significant, not just the function: an *uncompressed* profile
    (consecutive equal values) splits segments, which changes the planner's backward fill
    (2.3, row 4 of the verified table). The planners therefore never compress an input
    profile before using it; they compress (merge consecutive equal values, keeping the
    earlier breakpoint) after every commit, exactly as the artifact stores ``F``.

    Mutable on purpose: committing planners update the lists in place (or swap them), so a
    pass over hundreds of jobs copies nothing.
    """

    __slots__ = ("times", "values")

    def __init__(self, times: Iterable[float], values: Iterable[int]) -> None:
        self.times: list[float] = list(times)
        self.values: list[int] = list(values)
        if not self.times or len(self.times) != len(self.values):
            raise ValueError("a profile needs >= 1 breakpoint and one value per breakpoint")
        for a, b in zip(self.times, self.times[1:]):
            if not a < b:
                raise ValueError(f"profile breakpoints must increase strictly: {a} then {b}")

    # -- construction -----------------------------------------------------
    @classmethod
    def constant(cls, t0: float, value: int) -> Profile:
        """``{t0: value}``: the profile every planning pass starts from (``{now: G}``)."""
        return cls([t0], [value])

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[float, int]] | dict[float, int]) -> Profile:
        """Build from ``{t: v}`` or ``[(t, v), ...]`` (sorted here; kept uncompressed)."""
        items = sorted(pairs.items() if isinstance(pairs, dict) else pairs)
        return cls([t for t, _ in items], [v for _, v in items])

    def copy(self) -> Profile:
        new = Profile.__new__(Profile)
        new.times = self.times[:]
        new.values = self.values[:]
        return new

    # -- queries ----------------------------------------------------------
    def value_at(self, t: float) -> int:
        """``F(t)``; for ``t`` before the first breakpoint, the first value."""
        i = bisect_right(self.times, t) - 1
        return self.values[i if i >= 0 else 0]

    def items(self) -> Steps:
        return list(zip(self.times, self.values))

    def as_dict(self) -> dict[float, int]:
        return dict(zip(self.times, self.values))

    def compressed(self) -> Profile:
        """A compressed copy (this profile is left as is)."""
        new = self.copy()
        _compress(new.times, new.values)
        return new

    def __len__(self) -> int:
        return len(self.times)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return self.times == other.times and self.values == other.values

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Profile({self.as_dict()!r})"


RateSpec = tuple[float, ...] | Callable[[int], float]


@dataclass(frozen=True)
class PlanJob:
    """A job as the planners see it (POLICIES.md 2.1, 3.1).

    Attributes:
        key: any hashable id, unique within one call of a ``*_all`` function.
        work: remaining iterations (``iter_left``).
        deadline: absolute deadline in seconds; ``math.inf`` for best-effort jobs.
        levels: allowed GPU counts, strictly ascending, already restricted to ``<= max_gpu``
            and to cells with a positive rate (1.2 [DECIDE]).
        rate: iterations/s of the whole job on ``g`` GPUs: a tuple aligned with ``levels``
            or a callable ``g -> it/s``. A callable is evaluated once per level here; EDF may
            also query it at table columns that are not levels (3.2 step 1).
        max_gpu: the policy's ``max_gpu`` (EF rule table for EF, non-EF formula for EDF).
    """

    key: Hashable
    work: float
    deadline: float
    levels: tuple[int, ...]
    rate: RateSpec
    max_gpu: int
    _tab: _Tables = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        levels = self.levels if type(self.levels) is tuple else tuple(self.levels)
        if callable(self.rate):
            rates = tuple(float(self.rate(g)) for g in levels)
        else:
            rates = tuple(self.rate)
            if len(rates) != len(levels):
                raise ValueError(f"job {self.key!r}: {len(rates)} rates for {len(levels)} levels")
        try:
            tab = _tables(levels, rates)
        except ValueError as e:
            raise ValueError(f"job {self.key!r}: {e}") from None
        if levels and levels[-1] > self.max_gpu:
            raise ValueError(f"job {self.key!r}: level {levels[-1]} exceeds max_gpu {self.max_gpu}")
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "_tab", tab)

    def rate_at(self, g: int) -> float:
        """Iterations/s on ``g`` GPUs; 0.0 for ``g <= 0`` or a count with no known rate."""
        r = self._tab.rate.get(g)
        if r is not None:
            return r
        if g > 0 and callable(self.rate):
            v = float(self.rate(g))
            return v if v > 0 else 0.0
        return 0.0

    @property
    def best_effort(self) -> bool:
        return self.deadline == INF


@dataclass(frozen=True, slots=True)
class PlanResult:
    """Outcome of planning one job.

    Attributes:
        alloc: the plan ``A_j`` as compressed ``(t, gpus)`` steps starting at ``now``; the
            job holds ``gpus`` on each step until the next one, and the last step until
            ``end``. No trailing 0 entry (2.3 table).
        end: planned end ``E``. EF: slot-aligned (on the grid ``now + k*S``). EDF: equal to
            ``real_end`` (3.2: "the job's new end_time is the exact R").
        real_end: ``R``, exact finish time rounded up to an integer second.
        feasible: ``R <= deadline`` (always False for an EF job planned by 2.3 step 4).
        F_after: the free profile after this job's reservation. With ``commit=True`` it is
            the very :class:`Profile` passed in (mutated in place, so inside
            :func:`plan_all` every result shares the final profile); with ``commit=False``
            a new profile.
    """

    alloc: Steps
    end: float
    real_end: float
    feasible: bool
    F_after: Profile


@dataclass(frozen=True, slots=True)
class PlanAllResult:
    """Outcome of :func:`plan_all` / :func:`edf_plan_all`.

    Attributes:
        results: per job key, its :class:`PlanResult`.
        order: job keys in planning order (stable sort by deadline of the input order).
        feasible: every job feasible (2.4 step 4, 3.2).
        F: the committed free profile after the pass (compressed).
    """

    results: dict[Hashable, PlanResult]
    order: list[Hashable]
    feasible: bool
    F: Profile


@dataclass(frozen=True, slots=True)
class JobAlloc:
    """One runnable job's current allocation, the input and output of :func:`allocate_free`.

    Attributes:
        job: the planning view (``work`` = current ``iter_left``).
        num_gpu: GPUs the job holds at ``now``; must equal ``alloc_at(alloc, now)``.
        alloc: current plan (steps starting at ``now``), held until ``end``.
        end: planned end ``E`` (``end_time``).
        real_end: planned real end ``R`` (``real_end_time``).
        feasible: whether that plan meets the deadline.
    """

    job: PlanJob
    num_gpu: int
    alloc: Steps
    end: float
    real_end: float
    feasible: bool = True

    @classmethod
    def from_plan(cls, job: PlanJob, res: PlanResult, now: float) -> JobAlloc:
        """The state a job is left in by a planning pass at ``now`` (``num_gpu = A_j(now)``)."""
        return cls(job, alloc_at(res.alloc, now), res.alloc, res.end, res.real_end, res.feasible)


@dataclass(frozen=True, slots=True)
class FreeResult:
    """Outcome of :func:`allocate_free`.

    Attributes:
        jobs: the updated :class:`JobAlloc` of every job, in input order (unchanged objects
            for jobs that received nothing).
        order: job keys in the final ``m_j``-descending order (the list order the artifact
            carries into later stable sorts, 2.9).
        grants: ``(key, old_gpus, new_gpus)`` for every single-level grant, in grant order.
            A job whose ``old_gpus`` is 0 and that was PENDING is started by the caller.
        F: the free profile (the same object passed in, updated in place).
        ends_left: per grant, the planned end the job had before it (the artifact moves
            the job's end event from there to its new end; its event queue cares).
    """

    jobs: list[JobAlloc]
    order: list[Hashable]
    grants: list[tuple[Hashable, int, int]]
    F: Profile
    ends_left: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Public entry points: ElasticFlow
# ---------------------------------------------------------------------------


def plan(
    job: PlanJob, now: float, F: Profile, G: int, S: float, *, commit: bool = True
) -> PlanResult:
    """``PLAN(j, now, F)`` of POLICIES.md 2.3 (the branch without a forced GPU count).

    Steps as specified: (1) insert the deadline breakpoint ``D^ = align(now, D)``;
    (2) level search by backward fill, ``a_k = min(q, floor_level(F(t_k)))``, the segment
    ending at ``D^`` measured to the exact ``D``; (3) forward plan at ``q_prev`` before the
    switch point and ``q`` from it, ``R = t_k + ceil(W'/tput)``, ``E = t_k + align(0, .)``,
    the job's GPUs returned at ``E``; (4) if no level suffices: last level tried up to
    ``D^`` (measured to ``D``, so ``[D, D^)`` is reserved but unused), then
    ``floor_level(F(t_k))`` on later segments, then the largest level ``<= G`` after the last
    breakpoint, ``E = align(now, R)``; infeasible.

    ``F`` is updated in place and compressed when ``commit`` is true; otherwise it is left
    untouched and the would-be profile is returned in ``F_after``. See the module docstring
    for the preconditions on ``F``.

    Choices where the spec is silent (documented as [DECIDE]):

    * ``work <= 0``: nothing to plan; ``alloc = [(now, 0)]``, ``E = R = now``, ``F`` untouched.
    * no level ``<= G``: the job can never run; ``E = R = inf``, infeasible, ``F`` untouched.
    * 2.3 step 4.3 "run at ``min(G, max_gpu)``": the largest *allowed* level ``<= G`` (equal
      to ``min(G, max_gpu)`` whenever that is a level, as in every shipped table/cluster),
      and its GPUs are taken from ``F``'s last value (``G`` under the precondition).
    * float noise: when a segment's iterations cover the remaining work, ``ceil(W'/tput)``
      is clamped to the segment's (integer) length, so ``R`` never spills past a segment
      that mathematically covers the work.
    """
    if commit:
        times, values = F.times, F.values
    else:
        times, values = F.times[:], F.values[:]
    alloc, end, real_end, feasible, _ = _plan_core(job, job.work, now, times, values, G, S)
    F_after = F if commit else _profile_of(times, values)
    return PlanResult(alloc, end, real_end, feasible, F_after)


def plan_all(jobs_in_order: Sequence[PlanJob], now: float, G: int, S: float, *,
             compiled: bool = True) -> PlanAllResult:
    """``PLAN_ALL(jobs, now)`` of POLICIES.md 2.4.

    Starts from ``F = {now: G}``, stably sorts the jobs by deadline (ties keep the caller's
    order; the caller chooses that order per 2.9, e.g. the artifact's inherited list order or
    the clean ``(ddl, submit_time, job_idx)``), plans each with :func:`plan` committing ``F``,
    and reports whether every job is feasible.

    ``compiled=True`` (default) runs the numba port of this loop
    (:func:`sim.policies.efjit.plan_all`, identical results); ``False`` runs :func:`plan`.
    """
    if compiled:
        from sim.policies import efjit

        try:
            return efjit.plan_all(jobs_in_order, now, G, S)
        except ValueError:
            pass  # bad input: the reference below raises the error, naming the job
    return _plan_in_deadline_order(jobs_in_order, now, G, lambda job, F: plan(job, now, F, G, S))


def allocate_free(
    jobs: Sequence[JobAlloc], now: float, F: Profile, G: int, S: float, *, cache: bool = True,
    artifact: bool = False,
) -> FreeResult:
    """``ALLOCATE_FREE(t)`` of POLICIES.md 2.7: hand leftover GPUs out one level at a time.

    Inputs: ``jobs`` -- every runnable job in the current runnable-list order (after the final
    plan this is deadline order), each with its current plan; ``F`` -- the committed free
    profile of that plan, starting at ``now``. ``F`` is updated in place.

    Algorithm (2.7): ``A = G - sum(num_gpu)`` (checked to equal ``F(now)``). For each job,
    ``g' = next_level(num_gpu)``; ``m_j = -inf`` if it cannot grow (``g' == num_gpu`` or
    ``g' - num_gpu > A``), ``+inf`` if it holds 0 GPUs and can grow, otherwise
    ``(gpu_seconds(what-if) - gpu_seconds(current)) / (g' - num_gpu)``. Jobs are stably sorted
    by ``m_j`` descending; then, while ``A > 0`` and some job can grow, the first job in that
    order that can grow commits its what-if plan, ``A -= g' - num_gpu``, every ``m`` is
    recomputed and the list is stably re-sorted.

    The what-if plan of a job (2.7 step 2): take ``F``, add the job's own plan back on
    ``[now, end)``, force ``g'`` on the first segment ``[now, t1)``; if ``g'`` covers the work
    there the job ends inside it, otherwise it runs ``g'`` on that segment and :func:`plan`
    plans the remaining work from ``t1`` (level search from the smallest level).

    ``cache=True`` (default) keeps a job's ``m`` across a grant when a certificate shows the
    grant cannot change it (same ``t1``; ``F`` still saturates the job's level on its window;
    no breakpoint moved where the planner crosses the work or where the job finishes; or,
    off that path, ``F`` unchanged on ``(now, horizon]``), computes the common what-ifs in
    closed form, and commits a what-if by applying its change to ``F`` directly (see
    :func:`_allocate_free_fast`). Every float decision it relies on has a margin far above
    rounding, so the result is identical to ``cache=False``, the literal reference
    (property-tested, and replayed on whole traces by ``bench/ef_replay.py``); it only
    skips work.

    [ARTIFACT] ``m_j`` is the *increase* in planned GPU time per extra GPU and the order is
    descending (largest increase first), and 0-GPU jobs (``+inf``) take leftovers before any
    running job grows. The paper's "diminishing returns" reading could differ (2.7 [DECIDE]).

    Choices where the spec is ambiguous ([DECIDE]):

    * After a grant, ``m`` is recomputed for *every* job with the step-2 rule, so jobs that
      can no longer grow within the smaller ``A`` drop to ``-inf`` (this only affects the
      returned ``order``, never who is picked). [ARTIFACT] (``artifact=True``): the
      artifact recomputes only jobs below their top level, so a job that a grant takes to
      its top level keeps the ``m`` it was picked with (``scheduler.py``,
      ``allocate_free_gpus``); again this only moves it in ``order``, which feeds the
      runnable-list order and so placement ties.
    * The add-back inserts the job's own breakpoints (its plan changes and ``E``) into the
      what-if profile and does not compress it, so ``t1`` is the earliest of ``F``'s next
      breakpoint and the job's own next plan change/end (dict-like behaviour); the committed
      profile is compressed.
    * If ``g'`` finishes the work inside the first segment, that is the plan even when
      ``R > D`` (it is then infeasible); the spec's "and before D" otherwise would plan a
      non-positive remainder.
    * The 0-GPU what-if (``m = +inf``) is only computed when that job is picked.
    """
    states = list(jobs)
    n = len(states)
    keys = [st.job.key for st in states]
    if len(set(keys)) != n:
        raise ValueError("duplicate job keys")
    A = G - sum(st.num_gpu for st in states)
    f_now = F.value_at(now)
    if A != f_now:
        raise ValueError(f"G - sum(num_gpu) = {A} but F(now) = {f_now}")
    for st in states:
        if st.alloc and alloc_at(st.alloc, now) != st.num_gpu:
            raise ValueError(f"job {st.job.key!r}: num_gpu {st.num_gpu} != its plan at now")
    if cache:
        from sim.policies import efjit

        times, values = F.times, F.values
        try:
            return efjit.allocate_free(states, keys, A, now, F, G, S, artifact)
        except ValueError:  # bad input: the reference below raises the error, naming the job
            F.times, F.values = times, values

    cur_gs = [gpu_seconds(st.alloc, st.end) for st in states]
    m: list[float] = [0.0] * n
    whatif: list[_WhatIf | None] = [None] * n
    changed_at = -INF  # first time > now where F changed in the last grant (-inf: all stale)
    version = 0  # grants committed so far; a what-if's profile is only valid at its version

    def evaluate(i: int) -> None:
        st = states[i]
        g = st.num_gpu
        g2 = next_level(st.job.levels, g)
        if g2 == g or g2 - g > A:
            m[i] = -INF
            whatif[i] = None
        elif g == 0:
            m[i] = INF
            whatif[i] = None
        else:
            w = whatif[i]
            if w is None or not (cache and w.horizon < changed_at
                                 and _whatif_t1(st, now, F, S) == w.t1):
                w = _whatif(st, g2, now, F, G, S, artifact)
                w.version = version
                whatif[i] = w
                m[i] = (gpu_seconds(w.alloc, w.end) - cur_gs[i]) / (g2 - g)

    for i in range(n):
        evaluate(i)
    order = sorted(range(n), key=lambda i: -m[i])
    grants: list[tuple[Hashable, int, int]] = []
    ends_left: list[float] = []
    while A > 0:
        pick = next((i for i in order if m[i] != -INF and _can_grow(states[i])), None)
        if pick is None:
            break
        st = states[pick]
        g = st.num_gpu
        g2 = next_level(st.job.levels, g)
        w = whatif[pick]
        if w is None or w.version != version:  # a reused what-if holds an older profile
            w = _whatif(st, g2, now, F, G, S, artifact)
        changed_at = _first_change(F.times, F.values, w.times, w.values, now)
        F.times, F.values = w.times, w.values
        states[pick] = replace(
            st, num_gpu=g2, alloc=w.alloc, end=w.end, real_end=w.real_end, feasible=w.feasible
        )
        cur_gs[pick] = gpu_seconds(w.alloc, w.end)
        whatif[pick] = None
        version += 1
        A -= g2 - g
        grants.append((st.job.key, g, g2))
        if w.end != st.end:
            ends_left.append(st.end)
        for i in range(n):
            # [ARTIFACT] only jobs below their top level are re-evaluated: a job a grant
            # took to its top level keeps the m_j it was picked with
            if not artifact or _can_grow(states[i]):
                evaluate(i)
        order.sort(key=lambda i: -m[i])
    return FreeResult(states, [keys[i] for i in order], grants, F, ends_left)


# ---------------------------------------------------------------------------
# Public entry points: EDF
# ---------------------------------------------------------------------------


def edf_plan(
    job: PlanJob,
    now: float,
    F: Profile,
    G: int,
    S: float,
    base_quota: int | None = None,
    columns: Sequence[int] | None = None,
    *,
    artifact_bug: bool,
    commit: bool = True,
) -> PlanResult:
    """``EDF_PLAN(j, now, F)`` of POLICIES.md 3.2.

    ``b = base_quota`` (default ``min(max_gpu, G)``). Walk the segments ``[t_k, t_{k+1})`` of
    ``F`` from ``now``: allocate ``b`` if ``F(t_k) >= b``, else the largest column ``<= F(t_k)``
    (0 if none); with ``a > 0``, ``R = ceil(t_k + W/tput(a))``; if ``R <= t_{k+1}`` the job
    ends here, else it consumes the segment and holds ``a`` on it. A segment the job does not
    finish in and that ends after the deadline marks it infeasible. After the last breakpoint
    it runs ``b`` ("available taken as G"): ``F(t_last) = G - b``, ``F(align(now, R)) = G``.
    ``end = real_end = R`` (exact, not aligned).

    Finishing inside a segment reserves ``a`` until ``align(now, R)``:

    * ``artifact_bug=False`` (clean): insert ``align(now, R)`` if absent, with the value just
      before it, and subtract ``a`` on ``[t_k, align(now, R))``.
    * ``artifact_bug=True`` ([ARTIFACT]): subtract ``a`` on ``[t_k, R)`` and *set*
      ``F(align(now, R))`` to ``F(t_k)``'s pre-subtraction value, overwriting an existing
      breakpoint (verified: 4-GPU job, ``F = {0:4, 480:8}``, 3000 iterations ->
      ``{0:0, 480:4}``; clean gives ``{0:0, 480:8}``).

    [DECIDE] ``columns`` (default: the job's levels) are the table's GPU-count columns;
    columns without a positive rate for this job are skipped (1.2: empty/nan/0 cells are not
    allowed). ``F`` is compressed after every commit, like EF's (this changes no value, only
    float rounding across merged segments). ``work <= 0`` plans nothing (``R = now``).
    """
    b = min(job.max_gpu, G) if base_quota is None else base_quota
    r_b = job.rate_at(b)
    if not r_b > 0:
        raise ValueError(f"job {job.key!r}: no rate for the base quota of {b} GPUs")
    cols = sorted({c for c in (job.levels if columns is None else columns) if job.rate_at(c) > 0})
    if commit:
        times, values = F.times, F.values
    else:
        times, values = F.times[:], F.values[:]
    W = job.work
    D = job.deadline
    if W <= 0:
        return PlanResult(
            [(now, 0)], now, now, now <= D, F if commit else _profile_of(times, values)
        )

    k = _ensure(times, values, now)
    alloc: Steps = []
    infeasible = False
    done_R: int | None = None
    while k < len(times) - 1:
        t, t_next, f = times[k], times[k + 1], values[k]
        if f >= b:
            a = b
        elif f >= 1:
            j = bisect_right(cols, f)
            a = cols[j - 1] if j else 0
        else:
            a = 0
        alloc.append((t, a))
        if a > 0:
            r = job.rate_at(a)
            R = math.ceil(t + W / r)
            if R <= t_next:
                Ea = align(now, R, S)
                if artifact_bug:
                    pre = values[k]
                    for i in range(k, bisect_left(times, R)):
                        values[i] -= a
                    i = bisect_left(times, Ea)
                    if i < len(times) and times[i] == Ea:
                        values[i] = pre
                    else:
                        times.insert(i, Ea)
                        values.insert(i, pre)
                else:
                    e = _ensure(times, values, Ea)
                    for i in range(k, e):
                        values[i] -= a
                done_R = R
                break
            W -= r * (t_next - t)
            values[k] -= a
        if t_next > D:
            infeasible = True
        k += 1

    if done_R is None:
        t_last = times[-1]
        alloc.append((t_last, b))
        done_R = math.ceil(t_last + W / r_b)
        values[-1] = G - b
        times.append(align(now, done_R, S))
        values.append(G)
    _compress(times, values)
    F_after = F if commit else _profile_of(times, values)
    feasible = not infeasible and done_R <= D
    return PlanResult(compress_steps(alloc), done_R, done_R, feasible, F_after)


def edf_plan_all(
    jobs_in_order: Sequence[PlanJob],
    now: float,
    G: int,
    S: float,
    columns: Sequence[int] | None = None,
    *,
    artifact_bug: bool,
) -> PlanAllResult:
    """``EDF_PLAN_ALL(jobs, now)`` of POLICIES.md 3.2: ``F = {now: G}``, stable sort by
    deadline, :func:`edf_plan` each (base quota ``min(max_gpu, G)``), AND of feasibilities."""
    return _plan_in_deadline_order(
        jobs_in_order, now, G,
        lambda job, F: edf_plan(job, now, F, G, S, None, columns, artifact_bug=artifact_bug))


# ---------------------------------------------------------------------------
# Helpers (public)
# ---------------------------------------------------------------------------


def align(t0: float, t: float, S: float) -> float:
    """``align(t0, t) = t0 + ceil((t - t0)/S) * S`` (POLICIES.md 1.4); ``inf`` stays ``inf``.

    Exact integer arithmetic when all arguments are ``int``.
    """
    if t == INF:
        return INF
    d = t - t0
    if type(d) is int and type(S) is int:
        return t0 + -(-d // S) * S
    return t0 + math.ceil(d / S) * S


def next_level(levels: Sequence[int], g: int) -> int:
    """Smallest level strictly above ``g`` (the smallest level for ``g = 0``); ``g`` itself if
    there is none (POLICIES.md 1.2). ``levels`` ascending."""
    i = bisect_right(levels, g)
    return levels[i] if i < len(levels) else g


def floor_level(levels: Sequence[int], f: float) -> int:
    """Largest level ``<= f``; 0 if there is none (e.g. ``f < 1``) (POLICIES.md 1.2)."""
    i = bisect_right(levels, f)
    return levels[i - 1] if i else 0


def _can_grow(st: JobAlloc) -> bool:
    return next_level(st.job.levels, st.num_gpu) != st.num_gpu


def gpu_seconds(alloc: Sequence[tuple[float, int]], end: float) -> float:
    """GPU-seconds of a plan as the artifact counts them (POLICIES.md 2.7,
    ``utils.py:L71-81``): GPUs x length of every step up to the next step, and of the
    last step up to ``end``. A plan's trailing 0 entry lies at or after its end, so the
    GPUs of its finishing segment count up to that entry, not to ``end``.
    """
    total = 0.0
    n = len(alloc)
    for i, (t, g) in enumerate(alloc):
        if g:
            t_next = alloc[i + 1][0] if i + 1 < n else end
            total += g * (t_next - t)
    return total


def alloc_at(alloc: Sequence[tuple[float, int]], t: float) -> int:
    """Value of a step function at ``t`` (0 before its first step)."""
    i = bisect_right(alloc, (t, math.inf)) - 1
    return alloc[i][1] if i >= 0 else 0


def compress_steps(steps: Iterable[tuple[float, int]]) -> Steps:
    """Merge consecutive equal values, keeping the earlier breakpoint (``utils.py:L56-64``)."""
    out: Steps = []
    for t, v in steps:
        if not out or out[-1][1] != v:
            out.append((t, v))
    return out


# ---------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tables:
    """Per-(levels, rates) lookup tables, shared by every job of the same model/batch.

    Level *indices* are 1-based (0 = no GPUs): ``lv[i]`` GPUs run at ``rt[i]`` it/s and
    ``cap[u][i]`` is the rate of ``min(level u+1, level i)``.
    """

    rate: dict[int, float]
    lv: tuple[int, ...]
    rt: tuple[float, ...]
    cap: tuple[tuple[float, ...], ...]


@lru_cache(maxsize=4096)
def _tables(levels: tuple[int, ...], rates: tuple[float, ...]) -> _Tables:
    if any(g <= 0 for g in levels) or any(a >= b for a, b in zip(levels, levels[1:])):
        raise ValueError("levels must be positive and strictly ascending")
    rt = (0.0, *(float(r) for r in rates))
    if any(not r > 0 for r in rt[1:]):
        raise ValueError("every level needs a positive rate")
    L = len(levels)
    cap = tuple(tuple(rt[min(u + 1, i)] for i in range(L + 1)) for u in range(L))
    return _Tables(dict(zip(levels, rt[1:])), (0, *levels), rt, cap)


@lru_cache(maxsize=1024)
def _floor_index(levels: tuple[int, ...], G: int) -> tuple[int, ...]:
    """``t[v]`` = number of levels ``<= v`` (the 1-based index of ``floor_level``), ``0<=v<=G``."""
    return tuple(bisect_right(levels, v) for v in range(G + 1))


def _plan_in_deadline_order(
    jobs_in_order: Sequence[PlanJob], now: float, G: int,
    plan_one: Callable[[PlanJob, Profile], PlanResult],
) -> PlanAllResult:
    """The shared pass of PLAN_ALL and EDF_PLAN_ALL: ``F = {now: G}``, stable sort by
    deadline, plan each job committing ``F``, AND of the feasibilities."""
    F = Profile.constant(now, G)
    order = sorted(jobs_in_order, key=_deadline_key)
    results: dict[Hashable, PlanResult] = {}
    feasible = True
    for job in order:
        if job.key in results:
            raise ValueError(f"duplicate job key {job.key!r}")
        res = plan_one(job, F)
        results[job.key] = res
        feasible = feasible and res.feasible
    return PlanAllResult(results, [j.key for j in order], feasible, F)


def _deadline_key(job: PlanJob) -> float:
    return job.deadline


def _profile_of(times: list[float], values: list[int]) -> Profile:
    p = Profile.__new__(Profile)
    p.times = times
    p.values = values
    return p


def _ensure(times: list[float], values: list[int], t: float) -> int:
    """Index of breakpoint ``t``, inserting it with the value just before it if absent."""
    i = bisect_left(times, t)
    if i < len(times) and times[i] == t:
        return i
    if i == 0:
        raise ValueError(f"time {t} precedes the profile's first breakpoint {times[0]}")
    times.insert(i, t)
    values.insert(i, values[i - 1])
    return i


def _compress(times: list[float], values: list[int]) -> None:
    """Merge consecutive equal values in place (keep the earlier breakpoint)."""
    keep = [True, *map(ne, values[1:], values)]
    if all(keep):
        return
    times[:] = compress(times, keep)
    values[:] = compress(values, keep)


def _steps(ts: list[float], gs: list[int]) -> Steps:
    """``compress_steps(zip(ts, gs))`` without a Python-level loop."""
    if not gs:
        return []
    keep = [True, *map(ne, gs[1:], gs)]
    return list(compress(zip(ts, gs), keep))


def _plan_core(
    job: PlanJob,
    W: float,
    now: float,
    times: list[float],
    values: list[int],
    G: int,
    S: float,
) -> tuple[Steps, float, float, bool, float]:
    """PLAN of 2.3 on raw lists (mutated and compressed).

    Returns ``(alloc, E, R, feasible, horizon)``; ``horizon`` is the last time whose
    breakpoints/values the computation read (used by the what-if cache of
    :func:`allocate_free`). Floating-point operations happen in exactly the order of the
    sequential description: backward sums accumulate from the latest segment, the forward
    walk subtracts segment by segment.
    """
    D = job.deadline
    if W <= 0:
        return [(now, 0)], now, now, now <= D, now
    levels = job.levels
    nu = bisect_right(levels, G)  # usable levels: q <= G
    if not nu:
        return [(now, 0)], INF, INF, False, now
    tab = job._tab

    # Step 1: deadline breakpoint (only if it lies after now).
    i0 = _ensure(times, values, now)
    Dh = align(now, D, S)
    if Dh != INF and Dh > now:
        _ensure(times, values, Dh)
    n = len(times)
    iD = n if Dh == INF else bisect_left(times, Dh, i0)
    nseg = iD - i0

    alloc_t: list[float] = []
    alloc_g: list[int] = []
    Wr = W
    if nseg:
        # Segments before D^: floor-level indices and usable lengths (last one measured to D).
        seg_t = times[i0:iD]
        seg_v = values[i0:iD]
        if min(seg_v) >= 0 and max(seg_v) <= G:
            fidx = list(map(_floor_index(levels, G).__getitem__, seg_v))
        else:
            fidx = [bisect_right(levels, v) for v in seg_v]
        ln = list(map(sub, times[i0 + 1 : iD], seg_t))
        ln.append(D - seg_t[-1])
        if ln[-1] == INF and fidx[-1] == 0:
            raise ValueError(
                f"job {job.key!r}: free capacity never reaches its smallest level "
                "(F's last value must be G)"
            )
        if ln[-1] > 0:  # all lengths positive: the sums below are monotone
            found = _plan_found(job, W, D, Dh, i0, seg_t, fidx, ln, nu, times, values, S)
            if found is not None:
                return found

        # Step 2: level search by backward fill (first level whose backward sum reaches W).
        # A level's total does not depend on the order of segments, so the candidate level
        # comes from totals grouped by floor level (one pass); the exact sequential backward
        # sum then confirms it and yields the switch point. Grouped and sequential sums
        # differ by far less than the 1e-9 margin, so no level below the candidate can pass.
        maxf = max(fidx)
        u_top = min(nu, max(1, maxf))  # levels above it give the same sums as u_top
        lsum = [0.0] * (len(levels) + 1)
        for f, s in zip(fidx, ln):
            lsum[f] += s
        lsum[0] = 0.0  # no GPUs, no iterations (and no inf * 0)
        need = W * (1.0 - 1e-9)
        u = 1
        while u < u_top and sum(map(mul, tab.cap[u - 1], lsum)) < need:
            u += 1
        u_found = 0
        kP = -1
        while u <= u_top:
            cap = tab.cap[u - 1]
            acc = 0.0
            for k in range(nseg - 1, -1, -1):
                f = fidx[k]
                if f:
                    acc += cap[f] * ln[k]
                    if acc >= W:
                        kP = k
                        break
            if kP >= 0:
                u_found = u
                break
            u += 1
        u_prev = u_found - 1 if u_found else u_top  # q_prev, or q_last when nothing fits

        # Step 3 / 4.1: forward walk before D^: q_prev before the switch point, q from it
        # (q_last everywhere if no level was found). Subtract as we go; stop where the
        # segment's iterations cover what is left.
        lv = tab.lv
        rt = tab.rt
        for idx in range(nseg):
            f = fidx[idx]
            cap_u = u_found if (u_found and idx >= kP) else u_prev
            if f > cap_u:
                f = cap_u
            alloc_t.append(seg_t[idx])
            alloc_g.append(lv[f])
            if not f:
                continue
            r = rt[f]
            seg = ln[idx]
            it = r * seg
            k = i0 + idx
            if it >= Wr:
                d = math.ceil(Wr / r)
                if seg != INF:
                    d = min(d, math.ceil(seg))  # float noise: never spill past the segment
                R = times[k] + d
                E = times[k] + align(0, d, S)
                # [ARTIFACT] the plan is recorded on every breakpoint before D^, so a
                # job ending inside a segment that closes before D^ keeps a 0 entry at
                # that segment's end (its GPU time is counted up to there, 2.7)
                steps = _steps(alloc_t, alloc_g)
                if idx + 1 < nseg:
                    steps.append((times[k + 1], 0))
                _reserve(times, values, k, lv[f], E)
                _compress(times, values)
                return steps, E, R, bool(u_found) and R <= D, Dh
            Wr -= it
            values[k] -= lv[f]
        if Dh == INF:  # unreachable: the unbounded last segment covers any work
            raise AssertionError("best-effort forward walk did not finish")

    # Step 4.2 / 4.3: segments from D^ on at floor_level(F(t_k)), then the unbounded tail.
    for k in range(iD, n):
        t = times[k]
        bounded = k + 1 < n
        f = values[k] if bounded else min(values[k], G)
        a = floor_level(levels, f)
        alloc_t.append(t)
        alloc_g.append(a)
        if not a:
            if bounded:
                continue
            raise ValueError(
                f"job {job.key!r}: free capacity never reaches its smallest level "
                "(F's last value must be G)"
            )
        r = tab.rate[a]
        if bounded:
            seg = times[k + 1] - t
            it = r * seg
            if it < Wr:
                Wr -= it
                values[k] -= a
                continue
            d = min(math.ceil(Wr / r), math.ceil(seg))
            horizon = times[k + 1]
        else:
            d = math.ceil(Wr / r)
            horizon = INF
        R = t + d
        E = align(now, R, S)
        _reserve(times, values, k, a, E)
        _compress(times, values)
        return _steps(alloc_t, alloc_g), E, R, False, horizon
    raise AssertionError("unreachable: the last segment is unbounded")


def _plan_found(job: PlanJob, W: float, D: float, Dh: float, i0: int, seg_t: list[float],
                fidx: list[int], ln: list[float], nu: int, times: list[float],
                values: list[int], S: float) -> tuple[Steps, float, float, bool, float] | None:
    """Steps 2-3 of :func:`_plan_core` when a level is found and the job finishes before
    ``D^`` (else ``None``, with nothing changed): the same float operations in the same
    order, with the sequential sums done by ``accumulate``. The level is the first whose
    sequential backward sum reaches W (``_plan_core``'s grouped candidate only skips
    levels whose sums fall short by far more than rounding)."""
    tab = job._tab
    nseg = len(seg_t)
    fidx_r = fidx[::-1]
    ln_r = ln[::-1]
    u = 0
    acc: list[float] = []
    for u in range(1, min(nu, max(1, max(fidx))) + 1):
        acc = list(accumulate(map(mul, map(tab.cap[u - 1].__getitem__, fidx_r), ln_r)))
        if acc[-1] >= W:
            break
    else:
        return None
    kP = nseg - 1 - bisect_left(acc, W)
    fs = list(map(min, fidx[:kP], repeat(u - 1)))
    fs += map(min, fidx[kP:], repeat(u))
    rt = tab.rt
    its = list(map(mul, map(rt.__getitem__, fs), ln))
    Wrs = list(accumulate(its, sub, initial=W))
    try:
        fin = list(map(ge, its, Wrs)).index(True)
    except ValueError:
        return None
    f = fs[fin]
    r = rt[f]
    seg = ln[fin]
    d = math.ceil(Wrs[fin] / r)
    if seg != INF:
        d = min(d, math.ceil(seg))  # float noise: never spill past the segment
    k = i0 + fin
    R = times[k] + d
    E = times[k] + align(0, d, S)
    lv = tab.lv
    steps = _steps(seg_t[: fin + 1], list(map(lv.__getitem__, fs[: fin + 1])))
    if fin + 1 < nseg:
        steps.append((times[k + 1], 0))
    if fin:
        values[i0:k] = map(sub, values[i0:k], map(lv.__getitem__, fs[:fin]))
    _reserve(times, values, k, lv[f], E)
    _compress(times, values)
    return steps, E, R, R <= D, Dh


def _reserve(times: list[float], values: list[int], k: int, a: int, E: float) -> None:
    """Hold ``a`` GPUs on ``[times[k], E)``: insert ``E`` with the pre-reservation value
    (2.3 step 3, "the job's GPUs are returned at E") and subtract ``a`` before it."""
    e = _ensure(times, values, E)
    if e == k + 1:
        values[k] -= a
    else:
        values[k:e] = map(sub, values[k:e], repeat(a, e - k))


@dataclass(slots=True)
class _WhatIf:
    """A what-if plan (2.7 step 2) with the profile to commit and its cache metadata."""

    alloc: Steps
    end: float
    real_end: float
    feasible: bool
    times: list[float]
    values: list[int]
    horizon: float  # F was read on (now, horizon]; inf if reads_now (never reusable)
    reads_now: bool  # the result also depends on the value F(now)
    t1: float = INF  # end of the forced first segment (depends on F(now) via compression)
    version: int = 0  # allocate_free's grant count when computed (times/values match it)


def _whatif(st: JobAlloc, g2: int, now: float, F: Profile, G: int, S: float,
            artifact: bool = False) -> _WhatIf:
    """The what-if plan of 2.7 step 2 for ``st`` forced to ``g2`` GPUs on its first segment.

    ``F`` plus the job's own plan is compressed (the artifact merges equal neighbours
    before planning), so the first segment ``[now, t1)`` ends at the first time the
    free capacity would change, or at ``D^`` if it never does. The job ends inside it if
    its slot-aligned end fits there and it meets its deadline; otherwise it runs ``g2``
    on it (measured to the exact deadline when ``t1 = D^``) and the rest is planned from
    ``t1``. Works on a copy of ``F``; the returned lists are the profile to commit.
    ``artifact`` keeps the artifact's over-commitment when ``D^`` splits the first segment.
    """
    job = st.job
    D = job.deadline
    iF = bisect_right(F.times, now)
    tF1 = F.times[iF] if iF < len(F.times) else INF  # F's first breakpoint after now
    times = F.times[:]
    values = F.values[:]
    _add_back(times, values, st.alloc, now, st.end)
    i0 = _ensure(times, values, now)
    _compress_from(times, values, i0)
    Dh = align(now, D, S)
    t1 = times[i0 + 1] if i0 + 1 < len(times) else Dh
    r = job.rate_at(g2)
    W = job.work
    d = math.ceil(W / r)
    if t1 != INF:
        d = min(d, math.ceil(t1 - now)) if r * (t1 - now) >= W else d
    R = now + d
    E = now + align(0, d, S)
    if t1 >= E and R <= D:
        _reserve(times, values, i0, g2, E)
        _compress(times, values)
        return _WhatIf([(now, g2)], E, R, True, times, values, t1, False, t1)
    # run g2 on [now, t1) and plan the rest from t1; D^ is a breakpoint from here on.
    # [ARTIFACT] only F(now) is reduced, so when D^ splits [now, t1) the job's GPUs on
    # [D^, t1) stay free in F (an over-commitment the next instant's re-plan undoes);
    # clean mode reduces the whole segment
    if now < Dh < INF:
        _ensure(times, values, Dh)
    seg = (D - now) if t1 == Dh else (t1 - now)
    rest_work = W - r * seg
    if rest_work <= 0 or t1 == INF:  # [DECIDE] the artifact cannot reach this (it asserts)
        _reserve(times, values, i0, g2, E)
        _compress(times, values)
        return _WhatIf([(now, g2)], E, R, R <= D, times, values, INF, True, t1)
    if not artifact and now < Dh < t1:
        values[i0 + 1] -= g2  # clean: the job holds g2 on all of [now, t1)
    values[i0] -= g2
    rest, E, R, feasible, horizon = _plan_core(job, rest_work, t1, times, values, G, S)
    alloc = compress_steps([(now, g2), *rest])
    # F'(t1) = F(now) + own plan when no breakpoint of F lies in (now, t1]: then the result
    # reads F(now), which every grant changes, so it must never be reused (horizon inf).
    reads_now = t1 < tF1
    horizon = INF if reads_now else max(horizon, t1)
    return _WhatIf(alloc, E, R, feasible, times, values, horizon, reads_now, t1)


def _whatif_t1(st: JobAlloc, now: float, F: Profile, S: float) -> float:
    """The ``t1`` :func:`_whatif` would use now: the first time after ``now`` where ``F``
    plus the job's own plan changes value, else ``D^``."""
    alloc, end = st.alloc, st.end
    def own(t: float) -> int:
        return alloc_at(alloc, t) if t < end else 0
    base = F.value_at(now) + own(now)
    cands = sorted({t for t in F.times if t > now}
                   | {t for t, _ in alloc if t > now} | ({end} if end > now else set()))
    for t in cands:
        if t == INF:
            break
        if F.value_at(t) + own(t) != base:
            return t
    return align(now, st.job.deadline, S)


def _compress_from(times: list[float], values: list[int], i0: int) -> None:
    """Compress ``times[i0:]``/``values[i0:]`` in place, keeping breakpoint ``i0``."""
    tail_t, tail_v = times[i0:], values[i0:]
    _compress(tail_t, tail_v)
    if len(tail_t) != len(times) - i0:
        times[i0:] = tail_t
        values[i0:] = tail_v


def _add_back(
    times: list[float],
    values: list[int],
    alloc: Sequence[tuple[float, int]],
    start: float,
    end: float,
) -> None:
    """Add a job's plan back to the free lists on ``[start, end)`` (what-if, 2.7 step 2),
    inserting its breakpoints (kept uncompressed)."""
    n = len(alloc)
    for idx, (t, g) in enumerate(alloc):
        lo = max(t, start)
        hi = min(alloc[idx + 1][0] if idx + 1 < n else end, end)
        if not g or lo >= hi:
            continue
        i = _ensure(times, values, lo)
        e = _ensure(times, values, hi) if hi != INF else len(times)
        values[i:e] = map(add, values[i:e], repeat(g, e - i))


def _first_change(
    t_old: list[float], v_old: list[int], t_new: list[float], v_new: list[int], now: float
) -> float:
    """Earliest time ``> now`` where two profiles differ in a breakpoint or its value
    (``inf`` if they agree on ``(now, inf)``; the value at ``now`` itself is ignored)."""
    i = bisect_right(t_old, now)
    j = bisect_right(t_new, now)
    no, nn = len(t_old), len(t_new)
    while i < no and j < nn:
        a, b = t_old[i], t_new[j]
        if a != b:
            return a if a < b else b
        if v_old[i] != v_new[j]:
            return a
        i += 1
        j += 1
    if i < no:
        return t_old[i]
    if j < nn:
        return t_new[j]
    return INF


# ---------------------------------------------------------------------------
# allocate_free, fast path: what-ifs reused under a certificate
# ---------------------------------------------------------------------------
#
# After a grant, the literal loop (2.7 step 4) recomputes the what-if of every job that can
# grow. Almost every grant changes F somewhere inside every other job's planning window, yet
# the what-if's GPU time (all that ``m`` needs) rarely changes. The rest plan (from t1) reads
# F only through (a) t1, (b) the "flags" ``min(floor_index(F + own), u)`` on the window
# ``[t1, D^)``, u the level it finds, and (c) the breakpoints where the planner decides
# something: the switch point ``t_P`` (where the backward fill crosses the work) and the
# segment the job finishes in. Any other breakpoint only splits a segment into two of the
# same rate: the exact (real-valued) sums stay the same and the float ones move by rounding
# (< 1e-12 relative), which cannot flip a decision that had a margin of ``_TOL`` relative.
# So a what-if is reused when the grant provably left (a), (b) and (c) alone and each of its
# decisions had that margin when it was computed; anything else is recomputed.
#
# When F is large enough on the whole window that every flag is saturated (the usual case),
# the rest plan has a closed form: level u is the first whose rate covers the work over
# ``[t1, D)``, ``t_P`` is the last breakpoint before ``D - W'/rate_u``, and so on
# (:func:`_sat_eval`), so a what-if costs a few bisections instead of a pass over F. Its
# decisions carry the same margins, so it returns exactly what the sequential code would;
# without the margins (or off the common path) the sequential mirror (:func:`_rest_eval`)
# or :func:`_whatif` itself runs.
#
# ``cache=False`` is the literal reference; the property tests and bench/ef_replay.py check
# that both give identical results.

_TOL = 1e-10
"""Relative margin required of each float decision a reused or closed-form what-if relies
on. The float error of any sum the planner forms is below ``n * 2**-53`` relative (n
segments), i.e. < 1e-12 for n < 10**4, so a decision with this margin comes out the same on
any segmentation of the same flags."""

_T1, _PLAN, _HZ = 1, 2, 3
"""Certificate kinds: the result depends on t1 only; on t1, flags and zones; the original
horizon rule (F unchanged on (now, horizon] and the same t1)."""


@dataclass(slots=True)
class _Eval:
    """A what-if plan (2.7 step 2), what committing it reserves, and what it depends on."""

    gs: float  # gpu_seconds(alloc, end)
    t1: float
    Dh: float
    kind: int
    alloc: Steps
    end: float
    real_end: float
    feasible: bool
    first_end: float  # committing reserves g' on [now, first_end) ...
    rest: Steps | None  # ... then these steps until `end`; None: commit via _whatif
    horizon: float = INF  # _HZ
    lo: float = INF  # _PLAN: flags window [lo, hi)
    hi: float = -INF
    theta: int = 0  # _PLAN: the flags are saturated where F >= theta
    zones: tuple[float, ...] = ()  # _PLAN: closed intervals (lo, hi, lo, hi, ...) in which
    # no breakpoint may change
    own: tuple[tuple[float, int, bool], ...] = ()
    """_PLAN: own change points inside a zone: (time, own plan's jump, F + own jumps there)"""
    whatif: _WhatIf | None = None  # computed by _whatif itself (on the profile of `version`)
    version: int = -1
    sat: tuple | None = None  # computed by _sat_eval: its flag-only part
    full: bool = False  # while certified, the whole result (not only gs) stays exact


def _step_fn(steps: Sequence[tuple[float, int]], start: float, end: float
             ) -> tuple[list[float], list[int]]:
    """``steps`` held on ``[start, end)`` (0 elsewhere) as a compressed step function from
    ``start``: the function :func:`_add_back` adds."""
    ts: list[float] = [start]
    vs: list[int] = [0]
    n = len(steps)
    for idx in range(n):
        t, g = steps[idx]
        lo = t if t > start else start
        nt = steps[idx + 1][0] if idx + 1 < n else end
        hi = nt if nt < end else end
        if not g or lo >= hi:
            continue
        if lo == ts[-1]:
            vs[-1] = g
        else:
            ts.append(lo)
            vs.append(g)
        if hi != INF:
            ts.append(hi)
            vs.append(0)
    if len(ts) > 1:
        _compress(ts, vs)
    return ts, vs


def _own_steps(st: JobAlloc, now: float) -> tuple[list[float], list[int]]:
    """The job's own plan on ``[now, inf)`` as a compressed step function (0 after ``end``)."""
    return _step_fn(st.alloc, now, st.end)


def _t1_of(own: tuple[list[float], list[int]], now: float, F: Profile, Dh: float) -> float:
    """``t1`` of :func:`_whatif` on ``F``: the first time after ``now`` where ``F`` plus the
    job's own plan ``own`` (see :func:`_own_steps`) changes value, else ``D^``."""
    Ft, Fv = F.times, F.values
    own_t, own_v = own
    i = bisect_right(Ft, now)
    nF, no = len(Ft), len(own_t)
    f = Fv[i - 1]
    o = own_v[0]
    base = f + o
    j = 1
    while True:
        x_f = Ft[i] if i < nF else INF
        x_o = own_t[j] if j < no else INF
        x = x_f if x_f < x_o else x_o
        if x == INF:
            return Dh
        if x_f == x:
            f = Fv[i]
            i += 1
        if x_o == x:
            o = own_v[j]
            j += 1
        if f + o != base:
            return x


def _bp_pred(Ft: list[float], Fv: list[int], own_t: list[float], own_v: list[int],
             x: float, lo: float) -> float:
    """The last breakpoint of compressed ``F + own`` in ``(lo, x]``, else ``lo``. ``F`` is
    compressed, so a breakpoint of only one of the two is always one of the sum."""
    i = bisect_right(Ft, x) - 1
    j = bisect_right(own_t, x) - 1
    while True:
        a = Ft[i] if i >= 1 else -INF
        b = own_t[j] if j >= 1 else -INF
        c = a if a > b else b
        if c <= lo:
            return lo
        if a != b or (Fv[i] - Fv[i - 1]) + (own_v[j] - own_v[j - 1]):
            return c
        i -= 1
        j -= 1


def _bp_succ(Ft: list[float], Fv: list[int], own_t: list[float], own_v: list[int],
             x: float, hi: float) -> float:
    """The first breakpoint of compressed ``F + own`` in ``(x, hi)``, else ``hi``."""
    i = bisect_right(Ft, x)
    j = bisect_right(own_t, x)
    nF, no = len(Ft), len(own_t)
    while True:
        a = Ft[i] if i < nF else INF
        b = own_t[j] if j < no else INF
        c = a if a < b else b
        if c >= hi:
            return hi
        if a != b or (Fv[i] - Fv[i - 1]) + (own_v[j] - own_v[j - 1]):
            return c
        i += 1
        j += 1


def _own_entries(zones: tuple[float, ...], own: tuple[list[float], list[int]],
                 hjump: Callable[[float, int], bool]) -> tuple[tuple[float, int, bool], ...]:
    """The own change points inside ``zones`` (flat ``lo, hi, ...``): (time, the own
    plan's jump, whether ``F`` + own jumps there)."""
    own_t, own_v = own
    return tuple(
        (y, jump, hjump(y, jump))
        for y, jump in zip(own_t[1:], map(sub, own_v[1:], own_v))
        if any(zones[k] <= y <= zones[k + 1] for k in range(0, len(zones), 2))
    )


def _whatif_eval(st: JobAlloc, g2: int, now: float, F: Profile, G: int, S: float,
                 own: tuple[list[float], list[int]], artifact: bool,
                 Dh: float | None = None, t1: float | None = None) -> _Eval:
    """:func:`_whatif` (plan, end, real end, feasibility, and what committing reserves),
    with a certificate. Same decisions as :func:`_whatif` on every path: the early
    returns are copied; the rest plan comes from :func:`_sat_eval`, else the sequential
    mirror :func:`_rest_eval`, else :func:`_whatif` itself. ``Dh`` and ``t1``, when
    given, must be ``align(now, D, S)`` and ``_t1_of(own, now, F, Dh)`` (the caller
    already knows them)."""
    job = st.job
    D = job.deadline
    if Dh is None:
        Dh = align(now, D, S)
    if t1 is None:
        t1 = _t1_of(own, now, F, Dh)
    r = job._tab.rate.get(g2)
    if r is None:
        r = job.rate_at(g2)
    W = job.work
    d = math.ceil(W / r)
    if t1 != INF:
        d = min(d, math.ceil(t1 - now)) if r * (t1 - now) >= W else d
    R = now + d
    E = now + align(0, d, S)
    alloc = [(now, g2)]
    if t1 >= E and R <= D:
        return _Eval(gpu_seconds(alloc, E), t1, Dh, _T1, alloc, E, R, True, E, [], full=True)
    seg = (D - now) if t1 == Dh else (t1 - now)
    Wp = W - r * seg
    split = now < Dh < t1  # D^ splits the forced segment
    if Wp <= 0 or t1 == INF:
        # clean mode also reserved [D^, t1) once more before this branch (_whatif)
        return _Eval(gpu_seconds(alloc, E), t1, Dh, _T1, alloc, E, R, R <= D, E,
                     None if split and not artifact else [], full=True)
    first_end = Dh if split and artifact else t1
    ev = _sat_eval(job, g2, now, F, own, t1, Dh, Wp, G, S, first_end)
    if ev is not None:
        return ev
    times = F.times[:]
    values = F.values[:]
    _add_back(times, values, st.alloc, now, st.end)
    i0 = _ensure(times, values, now)
    _compress_from(times, values, i0)
    if now < Dh < INF:
        _ensure(times, values, Dh)
    iF = bisect_right(F.times, now)
    reads_now = t1 < (F.times[iF] if iF < len(F.times) else INF)
    ev = _rest_eval(job, Wp, t1, times, values, G, S, Dh, now, g2, own,
                    INF if reads_now else Dh, first_end)
    if ev is not None:
        return ev
    w = _whatif(st, g2, now, F, G, S, artifact)
    return _Eval(gpu_seconds(w.alloc, w.end), w.t1, Dh, _HZ, w.alloc, w.end, w.real_end,
                 w.feasible, 0.0, None, w.horizon, whatif=w)


def _sat_eval(job: PlanJob, g2: int, now: float, F: Profile,
              own: tuple[list[float], list[int]], t1: float, Dh: float, Wp: float, G: int,
              S: float, first_end: float) -> _Eval | None:
    """The rest plan in closed form when ``F >= lv_u`` on all of ``[t1, D)`` (every flag
    saturated), u the level found; ``None`` when that does not hold or a decision lacks
    the ``_TOL`` margin.

    Saturated, segment k of the window adds ``rate_u * len_k`` to the backward fill at
    level u, so (exactly, up to rounding) level u passes iff ``rate_u * (D - t1) >= W'``,
    the backward fill crosses W' at the last breakpoint ``t_P <= D - W'/rate_u``, and the
    forward walk runs level u-1 on ``[t1, t_P)`` and level u from ``t_P`` and reaches the
    work at ``x_f``, in the segment containing ``x_f``.
    """
    D = job.deadline
    if D == INF or not t1 < D:
        return None
    d = D - t1  # align(t1, D, S) must be D^ (as in _rest_eval)
    if t1 + (-(-d // S) * S if type(d) is int and type(S) is int
             else math.ceil(d / S) * S) != Dh:
        return None
    nu = bisect_right(job.levels, G)
    tab = job._tab
    rt = tab.rt
    span = D - t1
    tol = _TOL * Wp
    u = 0
    for k in range(1, nu + 1):
        T = rt[k] * span
        if T >= Wp + tol:
            u = k
            break
        if T > Wp - tol:
            return None
    if not u:
        return None
    lv = tab.lv
    theta = lv[u]
    Ft = F.times
    if min(F.values[bisect_right(Ft, t1) - 1 : bisect_left(Ft, D)]) < theta:
        return None
    rho = rt[u]
    sat = (D, Wp, tol, tol / rho, rho, rt[u - 1], lv[u - 1], theta,
           D - (Wp + tol) / rho, D - (Wp - tol) / rho, math.nextafter(Dh, -INF))
    return _sat_finish(g2, now, F, own, t1, Dh, S, first_end, sat)


def _sat_finish(g2: int, now: float, F: Profile, own: tuple[list[float], list[int]],
                t1: float, Dh: float, S: float, first_end: float,
                sat: tuple) -> _Eval | None:
    """The part of :func:`_sat_eval` that reads the breakpoints (and not the flags): also
    re-run on its own when a grant changed breakpoints but not the flags."""
    D, Wp, tol, tt, rho, rho_p, lv_p, theta, s_lo, s_hi, Dm = sat
    Ft, Fv = F.times, F.values
    own_t, own_v = own
    if D < Dh and (bisect_left(Ft, D) != bisect_left(Ft, Dh)
                   or bisect_left(own_t, D) != bisect_left(own_t, Dh)):
        return None  # the window's last segment might start in [D, D^)
    # t_P: the last breakpoint of F + own at or before s_hi (see _bp_pred)
    i = bisect_right(Ft, s_hi) - 1
    a = Ft[i] if i >= 1 else -INF
    k = bisect_right(own_t, s_hi) - 1
    b = own_t[k] if k >= 1 else -INF
    if a != b:
        t_P = a if a > b else b
        if t_P <= t1:
            t_P = t1
    else:
        t_P = _bp_pred(Ft, Fv, own_t, own_v, s_hi, t1)
    if t_P > s_lo:
        return None
    rem = Wp - rho_p * (t_P - t1)
    x_f = t_P + rem / rho
    x_lo = x_f - 2 * tt
    if x_lo < t_P:
        return None
    # the segment [s_f, s_f1) the job finishes in
    i = bisect_right(Ft, x_lo)
    k = bisect_right(own_t, x_lo)
    a = Ft[i - 1] if i >= 2 else -INF
    b = own_t[k - 1] if k >= 2 else -INF
    if a != b:
        s_f = a if a > b else b
        if s_f <= t_P:
            s_f = t_P
    else:
        s_f = _bp_pred(Ft, Fv, own_t, own_v, x_lo, t_P)
    a = Ft[i] if i < len(Ft) else INF
    b = own_t[k] if k < len(own_t) else INF
    if a != b:
        s_f1 = a if a < b else b
        if s_f1 >= Dh:
            s_f1 = Dh
    else:
        s_f1 = _bp_succ(Ft, Fv, own_t, own_v, x_lo, Dh)
    if s_f1 < x_f + tt:
        return None
    last = s_f1 >= Dh
    dq = (rem - rho * (s_f - t_P)) / rho
    if abs(dq - round(dq)) <= tt + 1e-9:
        return None
    d = math.ceil(dq)
    d = min(d, math.ceil((D if last else s_f1) - s_f))
    R = s_f + d
    E = s_f + (-(-d // S) * S if type(S) is int else math.ceil(d / S) * S)  # align(0, d, S)
    # the plan (compress_steps of the sequential one's steps)
    if t_P > t1:
        rest = [(t1, lv_p), (t_P, theta)]
        alloc = [(now, g2), (t1, lv_p), (t_P, theta)] if lv_p != g2 else [(now, g2),
                                                                         (t_P, theta)]
    else:
        rest = [(t_P, theta)]
        alloc = [(now, g2), (t_P, theta)] if theta != g2 else [(now, g2)]
    # on the grid, moving the finishing segment's start only shifts d by whole slots:
    # R and E stay (see _allocate_free_fast for breakpoints off the grid)
    on_grid = (s_f - now) % S == 0
    if on_grid and own_t[-1] > s_f:
        for y in own_t:
            if y > s_f and (y - now) % S:
                on_grid = False
                break
    zones: tuple[float, ...]
    if last:
        zones = (t_P, s_hi + 1.0, x_lo - 1.0 if on_grid else s_f, Dm)
    else:
        alloc.append((s_f1, 0))
        zones = (t_P, s_hi + 1.0, x_lo - 1.0, s_f1)
    if D < Dh:
        zones += (D, Dm)
    ents: tuple[tuple[float, int, bool], ...] = ()
    for k in range(1, len(own_t)):
        y = own_t[k]
        if (zones[0] <= y <= zones[1] or zones[2] <= y <= zones[3]
                or (len(zones) > 4 and zones[4] <= y <= zones[5])):
            jump = own_v[k] - own_v[k - 1]
            i = bisect_left(Ft, y)
            jf = Fv[i] - Fv[i - 1] if i < len(Ft) and Ft[i] == y else 0
            ents += ((y, jump, jf + jump != 0),)
    gs = 0.0  # gpu_seconds(alloc, E)
    t, g = alloc[0]
    for k in range(1, len(alloc)):
        t_next, g_next = alloc[k]
        if g:
            gs += g * (t_next - t)
        t, g = t_next, g_next
    if g:
        gs += g * (E - t)
    return _Eval(gs, t1, Dh, _PLAN, alloc, E, R, R <= D, first_end, rest,
                 INF, t1, Dh, theta, zones, ents, None, -1, sat, on_grid or last)


def _rest_eval(job: PlanJob, Wp: float, t1: float, times: list[float], values: list[int],
               G: int, S: float, Dh: float, now: float, g2: int,
               own: tuple[list[float], list[int]], horizon: float,
               first_end: float) -> _Eval | None:
    """The rest plan, ``_plan_core(job, Wp, t1, ...)`` on the what-if profile
    ``times``/``values`` (read only), when a level is found and the job finishes before
    ``D^``; ``None`` on any other path. Same float operations in the same order."""
    D = job.deadline
    levels = job.levels
    nu = bisect_right(levels, G)
    if not nu or not (t1 < Dh) or align(t1, D, S) != Dh:
        return None
    i1 = bisect_left(times, t1)
    if i1 >= len(times) or times[i1] != t1:
        return None
    iD = len(times) if Dh == INF else bisect_left(times, Dh, i1)
    nseg = iD - i1
    if nseg <= 0:
        return None
    tab = job._tab
    seg_t = times[i1:iD]
    seg_v = values[i1:iD]
    if min(seg_v) >= 0 and max(seg_v) <= G:
        fidx = list(map(_floor_index(levels, G).__getitem__, seg_v))
    else:
        fidx = [bisect_right(levels, v) for v in seg_v]
    ln = list(map(sub, times[i1 + 1 : iD], seg_t))
    ln.append(D - seg_t[-1])
    if not ln[-1] > 0 or (ln[-1] == INF and fidx[-1] == 0):
        return None
    u_top = min(nu, max(1, max(fidx)))
    fidx_r = fidx[::-1]
    ln_r = ln[::-1]
    # Level search: the first u <= u_top whose sequential backward sum reaches Wp (the
    # grouped candidate of _plan_core only skips levels that provably fail).
    u_found = 0
    fail_max = 0.0
    acc: list[float] = []
    capu: tuple[float, ...] = ()
    for u in range(1, u_top + 1):
        capu = tab.cap[u - 1]
        acc = list(accumulate(map(mul, map(capu.__getitem__, fidx_r), ln_r)))
        if acc[-1] >= Wp:
            u_found = u
            break
        if acc[-1] > fail_max:
            fail_max = acc[-1]
    if not u_found:
        return None
    kP_r = bisect_left(acc, Wp)
    kP = nseg - 1 - kP_r
    u_prev = u_found - 1
    fs = list(map(min, fidx[:kP], repeat(u_prev)))
    fs += map(min, fidx[kP:], repeat(u_found))
    rt = tab.rt
    its = list(map(mul, map(rt.__getitem__, fs), ln))
    Wrs = list(accumulate(its, sub, initial=Wp))
    try:
        fin = list(map(ge, its, Wrs)).index(True)
    except ValueError:
        return None
    f = fs[fin]
    r = rt[f]
    Wr = Wrs[fin]
    segl = ln[fin]
    dq = Wr / r
    dd = math.ceil(dq)
    if segl != INF:
        dd = min(dd, math.ceil(segl))
    tk = seg_t[fin]
    R = tk + dd
    E = tk + align(0, dd, S)
    lv = tab.lv
    rest = _steps(seg_t[: fin + 1], list(map(lv.__getitem__, fs[: fin + 1])))
    last = fin + 1 >= nseg
    alloc = compress_steps([(now, g2), *rest] if last else [(now, g2), *rest,
                                                            (seg_t[fin + 1], 0)])
    gs = gpu_seconds(alloc, E)
    res = (alloc, E, R, R <= D, first_end, rest)

    # Certificate: every decision above with margin _TOL.
    tol = _TOL * Wp
    acc_P = acc[kP_r]
    acc_next = acc[kP_r - 1] if kP_r else 0.0
    if not (fail_max <= Wp - tol and acc_P >= Wp + tol and acc_next <= Wp - tol
            and Wr >= 2 * tol and its[fin] - Wr >= tol
            and dd == math.ceil(dq) and abs(dq - round(dq)) > tol / r + 1e-9):
        return _Eval(gs, t1, Dh, _HZ, *res, horizon)
    t_P = seg_t[kP]
    e_P = D if kP == nseg - 1 else seg_t[kP + 1]
    x_safe = e_P - (Wp - tol - acc_next) / capu[fidx[kP]]
    zones: tuple[float, ...] = (t_P, x_safe + 1.0)
    if last:
        zones += (tk, math.nextafter(Dh, -INF))
    else:
        zones += (tk + (Wr - tol) / r - 1.0, seg_t[fin + 1])
    if D < Dh:
        zones += (D, math.nextafter(Dh, -INF))

    def hjump(y: float, jump: int) -> bool:  # does the what-if profile change at y?
        return values[bisect_right(times, y) - 1] != values[bisect_left(times, y) - 1]

    return _Eval(gs, t1, Dh, _PLAN, *res, INF, t1, Dh, lv[u_found], zones,
                 _own_entries(zones, own, hjump))


def _commit(g2: int, now: float, F: Profile, ev: _Eval,
            own: tuple[list[float], list[int]]
            ) -> tuple[list[tuple[float, float, float]], list[float], float, list[float]]:
    """Commit the what-if ``ev``: update ``F`` (lists owned by the caller) in place to the
    profile :func:`_whatif` leaves, i.e. ``F`` plus the job's current plan ``own`` minus
    what the what-if reserves, compressed (the representation is canonical, so building
    it directly gives the very same lists). Returns what :func:`_profile_diff` would say
    about the change, and the times where F's jumps may have changed.

    The change ``delta`` is a short step function: values change exactly where it is not
    0, a breakpoint can appear or vanish (and neighbours become equal) only where it
    jumps."""
    rest = ev.rest if ev.rest is not None else []
    rt, rv = _step_fn([(now, g2), (ev.first_end, 0), *rest], now, ev.end)
    dt, dv = _merge_sub(own[0], own[1], rt, rv)
    T, V = F.times, F.values
    n = len(dt)
    # what changes, read off the old profile
    pieces: list[tuple[float, float, float]] = []
    k = 0
    while k < n:
        if not dv[k]:
            k += 1
            continue
        a = dt[k]
        mv = INF
        while k < n and dv[k]:
            hi = dt[k + 1] if k + 1 < n else INF
            lo = min(V[bisect_right(T, dt[k]) - 1 : bisect_left(T, hi)])
            if dv[k] < 0:
                lo += dv[k]
            if lo < mv:
                mv = lo
            k += 1
        pieces.append((a, dt[k] if k < n else INF, mv))
    bps: list[float] = []
    first = INF
    for k in range(1, n):
        x = dt[k]
        i = bisect_left(T, x)
        old = i < len(T) and T[i] == x
        jump = (V[i] - V[i - 1] if old else 0) + dv[k] - dv[k - 1]
        if old != (jump != 0):
            bps.append(x)
            if first == INF:
                first = x
    for a, b, _ in pieces:
        if a >= first:
            break
        i = bisect_right(T, now) if a <= now else bisect_left(T, a)
        if i < len(T) and T[i] < b and T[i] < first:
            first = T[i]
    # apply it
    for k in range(n):
        d = dv[k]
        if not d:
            continue
        i = _ensure(T, V, dt[k])
        e = _ensure(T, V, dt[k + 1]) if k + 1 < n else len(T)
        if e - i == 1:
            V[i] += d
        else:
            V[i:e] = map(add, V[i:e], repeat(d, e - i))
    for x in reversed(dt):
        i = bisect_left(T, x)
        if i and i < len(T) and T[i] == x and V[i] == V[i - 1]:
            del T[i]
            del V[i]
    return pieces, bps, first, dt[1:]


def _merge_sub(at: list[float], av: list[int], bt: list[float], bv: list[int]
               ) -> tuple[list[float], list[int]]:
    """``a - b`` for two step functions starting at the same time, compressed."""
    ts: list[float] = [at[0]]
    vs: list[int] = [av[0] - bv[0]]
    i = j = 1
    na, nb = len(at), len(bt)
    x_a = at[1] if na > 1 else INF
    x_b = bt[1] if nb > 1 else INF
    a, b = av[0], bv[0]
    while x_a != INF or x_b != INF:
        x = x_a if x_a < x_b else x_b
        if x_a == x:
            a = av[i]
            i += 1
            x_a = at[i] if i < na else INF
        if x_b == x:
            b = bv[j]
            j += 1
            x_b = bt[j] if j < nb else INF
        if a - b != vs[-1]:
            ts.append(x)
            vs.append(a - b)
    return ts, vs


def _profile_diff(
    t_old: list[float], v_old: list[int], t_new: list[float], v_new: list[int], now: float,
    hi: float,
) -> tuple[list[tuple[float, float, float]], list[float], float]:
    """How a grant changed ``F`` (both profiles compressed, equal after ``hi``): the maximal
    intervals ``[a, b)`` after ``now`` where the values differ, each with the smallest value
    either profile has there; the breakpoints after ``now`` present in only one of them;
    and ``_first_change(t_old, v_old, t_new, v_new, now)``."""
    pieces: list[tuple[float, float, float]] = []
    io = bisect_right(t_old, now)
    jn = bisect_right(t_new, now)
    vo = v_old[io - 1]
    vn = v_new[jn - 1]
    no, nn = len(t_old), len(t_new)
    io0, jn0 = io, jn
    t = now
    a = None
    mv = 0
    first = INF
    while True:
        x_o = t_old[io] if io < no else INF
        x_n = t_new[jn] if jn < nn else INF
        x = x_o if x_o < x_n else x_n
        if vo != vn:
            lo = vo if vo < vn else vn
            if a is None:
                a, mv = t, lo
            elif lo < mv:
                mv = lo
        elif a is not None:
            pieces.append((a, t, mv))
            a = None
        elif x > hi:
            break  # equal from here on
        if x == INF:
            break
        if x_o == x:
            vo = v_old[io]
            io += 1
        if x_n == x:
            vn = v_new[jn]
            jn += 1
        if first == INF and (x_o != x_n or vo != vn):
            first = x
        t = x
    if a is not None:
        pieces.append((a, INF, mv))
    bps = sorted(set(t_old[io0:io]).symmetric_difference(t_new[jn0:jn]))
    return pieces, bps, first


def _own_ok(ev: _Eval, pieces: list[tuple[float, float, float]], F: Profile) -> bool:
    """The own change points of a certificate: where ``F`` changed next to one, ``F`` plus
    the job's plan must still jump there exactly when it did."""
    for y, jump, status in ev.own:
        for a, b, _ in pieces:
            if a <= y <= b:
                Ft, Fv = F.times, F.values
                i = bisect_left(Ft, y)
                jf = Fv[i] - Fv[i - 1] if i < len(Ft) and Ft[i] == y else 0
                if (jf + jump != 0) != status:
                    return False
                break
    return True


_NZ = 3  # zones per certificate (crossing, finish, [D, D^))
_NO_EVAL = _Eval(0.0, INF, INF, 0, [], INF, INF, False, INF, None)  # no what-if (m = +-inf)
_NO_OWN: tuple[list[float], list[int]] = ([], [])  # own plan not built yet
_NOZONES = (INF, -INF) * _NZ
_NOFLAGS = (INF, -INF, 0.0)


def _allocate_free_fast(states: list[JobAlloc], keys: list[Hashable], A: int, now: float,
                        F: Profile, G: int, S: float, artifact: bool) -> FreeResult:
    """:func:`allocate_free` with ``cache=True``: the literal loop of 2.7 step 4, except
    that after a grant a job's ``m`` is only recomputed when the grant can have changed it.

    A job's what-if (:func:`_whatif_eval`) comes with a certificate of what it depends on.
    It survives a grant that changed ``F`` (by ``pieces``: intervals where the values
    changed, with the lowest value either profile has there; ``bps``: breakpoints that
    appeared or vanished) iff

    * its ``t1`` is the same (only possible to change for every job when ``F``'s first
      breakpoint after ``now`` moves, else only for jobs whose own plan changes there);
    * kind ``_T1``: nothing else (the job ends in its forced first segment);
    * kind ``_HZ``: ``F`` did not change on ``(now, horizon]`` (the original rule);
    * kind ``_PLAN``: no piece with a value below ``theta`` overlaps ``[t1, D^)`` (the flags
      stay saturated), no breakpoint changed inside its zones (around the switch point and
      the end of the finishing segment), and ``F`` + own still jumps (or not) at each own
      change point inside a zone.

    A ``_PLAN`` job that fails only on zones or own points is re-derived from its kept flag
    part (:func:`_sat_finish`); every other failure is recomputed. A certified what-if
    whose whole result (not only ``gs``) provably survives (``full``) is committed as is
    when picked; others are recomputed then. Commits apply the what-if's change to ``F``
    in place (:func:`_commit`), which also yields ``pieces`` and ``bps``."""
    n = len(states)
    cur_gs = [gpu_seconds(st.alloc, st.end) for st in states]
    m: list[float] = [0.0] * n
    evs: list[_Eval] = [_NO_EVAL] * n
    owns: list[tuple[list[float], list[int]]] = [_NO_OWN] * n
    g2s = [next_level(st.job.levels, st.num_gpu) for st in states]
    y1s = [INF] * n  # the own plan's first change after now, and its jump there
    jo1s = [0] * n
    version = 0
    acts: set[int] = set()  # finite m: has a certificate
    hz: set[int] = set()  # ... of kind _HZ
    by_y1: dict[float, set[int]] = {}
    by_own: dict[float, set[int]] = {}
    c_lo = np.full(n, INF)  # _PLAN: flags window and threshold
    c_hi = np.full(n, -INF)
    c_th = np.zeros(n)
    c_zlo = np.full(n * _NZ, INF)  # _PLAN: zones, _NZ per job
    c_zhi = np.full(n * _NZ, -INF)
    top_level = max((st.job.levels[-1] for st in states if st.job.levels), default=0)
    heap: list[tuple[int, int, int]] = []  # (-step, job, stamp): who may drop out as A falls
    stamps = [0] * n
    dhs = [align(now, st.job.deadline, S) for st in states]  # D^ of each job
    t1_known: dict[int, float] = {}  # jobs to recompute whose new t1 is already known

    def leave(i: int) -> None:
        if i in acts:
            acts.discard(i)
            hz.discard(i)
            by_y1[y1s[i]].discard(i)
            ev = evs[i]
            if ev.kind == _PLAN:
                for y, _, _ in ev.own:
                    by_own[y].discard(i)
                c_lo[i] = INF
                c_hi[i] = -INF
                c_th[i] = 0
                c_zlo[i * _NZ : i * _NZ + _NZ] = INF
                c_zhi[i * _NZ : i * _NZ + _NZ] = -INF
        evs[i] = _NO_EVAL

    def enter(i: int, ev: _Eval) -> None:
        old_own: tuple[tuple[float, int, bool], ...] = ()
        if i in acts:
            old = evs[i]
            if old.kind == _PLAN:
                old_own = old.own
        else:
            acts.add(i)
            by_y1.setdefault(y1s[i], set()).add(i)
        new_own = ev.own if ev.kind == _PLAN else ()
        if old_own != new_own:
            for y, _, _ in old_own:
                by_own[y].discard(i)
            for y, _, _ in new_own:
                by_own.setdefault(y, set()).add(i)
        evs[i] = ev
        m[i] = (ev.gs - cur_gs[i]) / (g2s[i] - states[i].num_gpu)
        kind = ev.kind
        if kind == _HZ:
            hz.add(i)
        else:
            hz.discard(i)
        k = i * _NZ
        if kind == _PLAN:
            c_lo[i] = ev.lo
            c_hi[i] = ev.hi
            c_th[i] = ev.theta
            zs = ev.zones
            c_zlo[k] = zs[0]
            c_zhi[k] = zs[1]
            c_zlo[k + 1] = zs[2]
            c_zhi[k + 1] = zs[3]
            if len(zs) > 4:
                c_zlo[k + 2] = zs[4]
                c_zhi[k + 2] = zs[5]
            else:
                c_zlo[k + 2] = INF
                c_zhi[k + 2] = -INF
        else:
            c_lo[i] = INF
            c_hi[i] = -INF
            c_th[i] = 0
            c_zlo[k : k + _NZ] = INF
            c_zhi[k : k + _NZ] = -INF

    def fresh(i: int) -> None:
        st = states[i]
        g = st.num_gpu
        g2 = g2s[i]
        stamps[i] += 1
        if g2 == g or g2 - g > A:
            leave(i)
            m[i] = -INF
            return
        heappush(heap, (g - g2, i, stamps[i]))
        if g == 0:
            leave(i)
            m[i] = INF
            return
        own = owns[i]
        if own is _NO_OWN:
            leave(i)
            own = owns[i] = _own_steps(st, now)
            own_t, own_v = own
            y1s[i] = own_t[1] if len(own_t) > 1 else INF
            jo1s[i] = own_v[1] - own_v[0] if len(own_t) > 1 else 0
        ev = _whatif_eval(st, g2, now, F, G, S, own, artifact, dhs[i], t1_known.get(i))
        ev.version = version
        enter(i, ev)

    for i in range(n):
        fresh(i)
    order = sorted(range(n), key=m.__getitem__, reverse=True)  # stable, like key=-m
    grants: list[tuple[Hashable, int, int]] = []
    ends_left: list[float] = []
    owned = False  # F's lists are ours to change in place
    while A > 0:
        pick = next((i for i in order if m[i] != -INF and g2s[i] != states[i].num_gpu), None)
        if pick is None:
            break
        m_pick = m[pick]
        st = states[pick]
        g = st.num_gpu
        g2 = g2s[pick]
        ev = evs[pick]
        if ev is _NO_EVAL or (ev.version != version and not (ev.full and ev.rest is not None)):
            own = owns[pick]
            if own is _NO_OWN:
                own = owns[pick] = _own_steps(st, now)
            ev = _whatif_eval(st, g2, now, F, G, S, own, artifact, dhs[pick])
        t_old, v_old = F.times, F.values
        io = bisect_right(t_old, now)
        tF1_old = t_old[io] if io < len(t_old) else INF  # F's first breakpoint after now
        if ev.rest is None:
            w = ev.whatif
            if w is None or ev.version != version:
                w = _whatif(st, g2, now, F, G, S, artifact)
            t_new, v_new = w.times, w.values
            owned = True
            alloc, end, real_end, feasible = w.alloc, w.end, w.real_end, w.feasible
            gs = gpu_seconds(alloc, end)
            pieces, bps, changed_at = _profile_diff(t_old, v_old, t_new, v_new, now,
                                                    max(st.end, end))
            jumps = None  # unknown: recheck own change points next to any piece
            F.times, F.values = t_new, v_new
        else:
            if not owned:  # the caller's lists: work on copies from here on
                F.times, F.values = F.times[:], F.values[:]
            owned = True
            pieces, bps, changed_at, jumps = _commit(g2, now, F, ev, owns[pick])
            t_new, v_new = F.times, F.values
            alloc, end, real_end, feasible = ev.alloc, ev.end, ev.real_end, ev.feasible
            gs = ev.gs  # = gpu_seconds(alloc, end)
        version += 1
        leave(pick)
        owns[pick] = _NO_OWN
        states[pick] = JobAlloc(st.job, g2, alloc, end, real_end, feasible)
        cur_gs[pick] = gs
        g2s[pick] = next_level(st.job.levels, g2)
        A -= g2 - g
        grants.append((st.job.key, g, g2))
        if end != st.end:
            ends_left.append(st.end)

        # every other job: still able to grow within A? then is its certificate intact?
        while heap and -heap[0][0] > A:
            _, i, stamp = heappop(heap)
            if stamp == stamps[i]:  # its current step no longer fits
                stamps[i] += 1
                leave(i)
                m[i] = -INF
        fail: set[int] = set()  # recompute
        zfail: set[int] = set()  # only breakpoints near t_P / the finish moved
        # t1: the first change of F + own after now; F is compressed, so F's first
        # breakpoint tF1 is one unless the own plan changes there too and they cancel
        iF = bisect_right(t_new, now)
        tF1 = t_new[iF] if iF < len(t_new) else INF
        if tF1 != tF1_old:
            for i in acts:
                y1 = y1s[i]
                e = evs[i]
                if tF1 < y1:
                    t1 = tF1
                elif y1 < tF1:
                    t1 = y1
                elif y1 == INF:
                    t1 = e.Dh
                elif jo1s[i] + v_new[iF] - v_new[iF - 1]:
                    t1 = tF1
                else:
                    t1 = _t1_of(owns[i], now, F, e.Dh)
                if t1 != e.t1:
                    fail.add(i)
                    t1_known[i] = t1
        elif tF1 != INF and tF1 in by_y1:
            # same tF1: only a job whose own plan changes at tF1 can see t1 move
            jF1 = v_new[iF] - v_new[iF - 1]
            for i in by_y1[tF1]:
                e = evs[i]
                if e.t1 != tF1 or jo1s[i] + jF1 == 0:
                    t1 = _t1_of(owns[i], now, F, e.Dh)
                    if t1 != e.t1:
                        fail.add(i)
                        t1_known[i] = t1
        for i in hz:
            if not evs[i].horizon < changed_at:
                fail.add(i)
        th_max = -1.0
        for a, b, mv in pieces:
            if mv < top_level:  # no flag threshold exceeds the largest level
                if th_max < 0:
                    th_max = c_th.max()
                if mv < th_max:
                    fail.update(((c_lo < b) & (c_hi > a) & (c_th > mv)).nonzero()[0].tolist())
        if bps:
            if any((x - now) % S for x in bps):  # off the grid: no zone relaxation holds
                zfail.update(i for i in acts if evs[i].kind == _PLAN)
            if len(bps) == 1:
                x = bps[0]
                hit = ((c_zlo <= x) & (c_zhi >= x)).nonzero()[0]
            else:  # bps is sorted: a zone holds one iff some lie in [lo, hi]
                X = np.array(bps)
                hit = (X.searchsorted(c_zhi, "right") > X.searchsorted(c_zlo)).nonzero()[0]
            if len(hit):
                zfail.update((hit // _NZ).tolist())
        if jumps is None:
            cand = [i for y, js in by_own.items() for i in js
                    if any(a <= y <= b for a, b, _ in pieces)]
        else:
            cand = [i for x in jumps if x in by_own for i in by_own[x]]
        for i in cand:
            if i not in zfail and not _own_ok(evs[i], pieces, F):
                zfail.add(i)
        fail.discard(pick)
        zfail.discard(pick)
        t1_known.pop(pick, None)
        for i in fail:
            fresh(i)
        t1_known.clear()
        for i in zfail:
            if i in fail:
                continue
            e = evs[i]
            if e.sat is not None:
                ev2 = _sat_finish(g2s[i], now, F, owns[i], e.t1, e.Dh, S, e.first_end, e.sat)
                if ev2 is not None:
                    ev2.version = version
                    enter(i, ev2)
                    continue
            fresh(i)
        fresh(pick)
        if artifact and g2s[pick] == g2:
            m[pick] = m_pick  # [ARTIFACT] a job at its top level keeps its last m_j
        order.sort(key=m.__getitem__, reverse=True)  # stable, like key=-m
    return FreeResult(states, [keys[i] for i in order], grants, F, ends_left)
