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
job's deadline; it copies nothing when committing. :func:`plan_all` and
:func:`allocate_free` run, by default, a numba port of this module's literal code
(:mod:`sim.policies.efjit`): :func:`allocate_free` recomputes the what-if plan of every
job that can grow after each grant (2.7 step 4), which is ``O(grants x jobs x B)`` and
only affordable compiled. The Python functions here stay the reference the port is tested
against.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import accumulate, compress, repeat
from operator import add, ge, mul, ne, sub

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

    def __setstate__(self, state: dict) -> None:
        # unpickled (or deep-copied): the lookup tables are this process's own
        self.__dict__.update(state)
        self.__post_init__()

    @classmethod
    def from_table(cls, table, model: str, batch: int, key: Hashable, deadline: float,
                   max_gpu: int, *, rising: bool = False) -> PlanJob:
        """A job's static view (``work`` 0) from a throughput table: its levels are the
        allowed columns ``<= max_gpu``. ``rising`` (clean mode) keeps only those faster
        than every smaller one, and ``max_gpu`` becomes the last of them, so no share
        runs slower than a smaller one (docs/semantics.md)."""
        if rising:
            levels = table.rising_levels(model, batch, max_gpu)
            max_gpu = levels[-1] if levels else max_gpu
        else:
            levels = tuple(c for c in table.levels(model, batch) if c <= max_gpu)
        rates = tuple(table.rate(model, batch, c) for c in levels)
        return cls(key=key, work=0.0, deadline=deadline, levels=levels, rate=rates,
                   max_gpu=max_gpu)

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

    ``cache=True`` (default) runs the compiled port (:func:`sim.policies.efjit.allocate_free`),
    which also keeps a job's ``m`` across a grant when the grant changed nothing its
    what-if read (its ``t1``, and ``F`` on ``[t1, horizon]``); the result is identical to
    ``cache=False``, the literal reference below (property-tested, and replayed on whole
    traces by ``bench/ef_replay.py``). The reference also runs when the port rejects the
    input, to raise the error naming the job.

    [ARTIFACT] ``m_j`` is the *increase* in planned GPU time per extra GPU and the order is
    descending (largest increase first), and 0-GPU jobs (``+inf``) take leftovers before any
    running job grows. The paper's "diminishing returns" reading could differ (2.7 [DECIDE]).

    Choices where the spec is ambiguous ([DECIDE]):

    * [CLEAN] (``artifact=False``) the loop is lazy: after a grant every ``m`` is stale,
      and only the first candidate in the order is re-evaluated. If its new ``m`` is
      smaller than the (stale) ``m`` of the jobs after it, it moves back behind them
      (ahead of equal ones, as a stable sort would put it) and the loop looks again;
      otherwise it gets the grant. The returned ``order`` is the loop's last order, stale
      values included.
    * [ARTIFACT] after a grant, ``m`` is recomputed with the step-2 rule for every job
      below its top level (jobs that can no longer grow within the smaller ``A`` drop to
      ``-inf``); a job that a grant takes to its top level keeps the ``m`` it was picked
      with (``scheduler.py``, ``allocate_free_gpus``). This only moves it in ``order``,
      which feeds the runnable-list order and so placement ties.
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
    whatif: list[_WhatIf | None] = [None] * n  # each at the current F (0-GPU jobs: none)

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
            w = whatif[i] = _whatif(st, g2, now, F, G, S, artifact)
            m[i] = (gpu_seconds(w.alloc, w.end) - cur_gs[i]) / (g2 - g)

    for i in range(n):
        evaluate(i)
    order = sorted(range(n), key=lambda i: -m[i])
    grants: list[tuple[Hashable, int, int]] = []
    ends_left: list[float] = []
    stale = [False] * n  # clean (lazy): m computed before the last grant
    while A > 0:
        pos = next((p for p, i in enumerate(order) if m[i] != -INF and _can_grow(states[i])),
                   None)
        if pos is None:
            break
        pick = order[pos]
        if stale[pick]:
            # [CLEAN] lazy: re-evaluate only the first candidate, move it behind the jobs
            # whose (possibly stale) m is now larger, and look again
            stale[pick] = False
            evaluate(pick)
            q = pos
            while q + 1 < n and m[order[q + 1]] > m[pick]:
                order[q] = order[q + 1]
                q += 1
            order[q] = pick
            continue
        st = states[pick]
        g = st.num_gpu
        g2 = next_level(st.job.levels, g)
        w = whatif[pick] or _whatif(st, g2, now, F, G, S, artifact)
        F.times, F.values = w.times, w.values
        states[pick] = replace(
            st, num_gpu=g2, alloc=w.alloc, end=w.end, real_end=w.real_end, feasible=w.feasible
        )
        cur_gs[pick] = gpu_seconds(w.alloc, w.end)
        whatif[pick] = None
        A -= g2 - g
        grants.append((st.job.key, g, g2))
        if w.end != st.end:
            ends_left.append(st.end)
        if not artifact:
            stale = [True] * n
            continue
        for i in range(n):
            # [ARTIFACT] only jobs below their top level are re-evaluated: a job a grant
            # took to its top level keeps the m_j it was picked with
            if _can_grow(states[i]):
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
    tid: int  # index in TABLES (the compiled planner keeps their rows in one array)


@lru_cache(maxsize=4096)
def _tables(levels: tuple[int, ...], rates: tuple[float, ...]) -> _Tables:
    if any(g <= 0 for g in levels) or any(a >= b for a, b in zip(levels, levels[1:])):
        raise ValueError("levels must be positive and strictly ascending")
    rt = (0.0, *(float(r) for r in rates))
    if any(not r > 0 for r in rt[1:]):
        raise ValueError("every level needs a positive rate")
    L = len(levels)
    cap = tuple(tuple(rt[min(u + 1, i)] for i in range(L + 1)) for u in range(L))
    tab = _Tables(dict(zip(levels, rt[1:])), (0, *levels), rt, cap, len(TABLES))
    TABLES.append(tab)
    return tab


TABLES: list[_Tables] = []  # every table made, by tid


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
    # no change after now: the first segment runs to D^, or on without end for a late job
    # (D^ <= now would start the remainder in the past)
    t1 = times[i0 + 1] if i0 + 1 < len(times) else (Dh if Dh > now else INF)
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
    Dh = align(now, st.job.deadline, S)
    return Dh if Dh > now else INF


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
