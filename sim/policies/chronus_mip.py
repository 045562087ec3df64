"""Chronus's lease plan: which admitted jobs run in which future leases (POLICIES.md 7.4).

Entry point: :func:`solve_leases`. Given jobs that each need ``need`` whole leases
of ``gpus`` GPUs among the first ``within`` leases from now, and the capacity of
every lease, it returns a :class:`LeasePlan`: for each job the lease offsets
(0 = the lease starting now) it is given. The plan is the optimum of the
mixed-integer program of POLICIES.md 7.4, built with PuLP and solved by HiGHS or
CBC, or the greedy fallback when the program is infeasible or the solver stops
without an incumbent.

Formulation. The spec's program has one binary ``x[i, tau]`` per job and lease.
Leases after the first are interchangeable for a job as long as the set of jobs
allowed in them and their capacity do not change, so the program is built over
*intervals*: lease 0 on its own (the objective looks at it), then the maximal
runs of leases between consecutive deadline leases ``within_i`` and capacity
changes. Variables: ``x0_i`` binary (job ``i`` runs in lease 0), ``y_ij``
integer in ``[0, len_j]`` (leases job ``i`` gets in interval ``j``), ``s_i``
binary (the job's one deadline option is selected). Constraints:
``x0_i + sum_j y_ij = need_i * s_i``, ``s_i = 1``, ``sum_i gpus_i x0_i <= cap_0``,
``sum_i gpus_i y_ij <= cap_j * len_j``. Objective: maximise
``sum_i value_i s_i +/- sum_i gpus_i x0_i / max(cap)`` (``+`` for "maximize",
``-`` for "minimize"). Any per-lease plan aggregates to a feasible point with
the same objective, so the interval program is a relaxation: its optimum is at
least as good. When its interval totals split into leases (:func:`_disaggregate`:
largest job first, into the leases with most room left) the split is an
optimal per-lease plan. They need not split (a small job in every lease of an
interval can leave too little room for two larger ones); then the exact
per-lease program (one binary per job and lease, the spec's form) is solved
instead, or, if that would exceed ``max_exact_vars`` binaries, the greedy
fallback is used and says so. The interval program has ``O(jobs x distinct
deadlines)`` variables instead of ``O(jobs x leases)``: on the Figure 10 trace a
job may need 2,700 of 3,700 leases.

Shortcut (``shortcut=True``): before calling a solver, a greedy plan is compared
with a bound on the objective; when it reaches the bound it is optimal and the
solver is skipped (status ``"bound"``). For "minimize" the bound is the GPUs of
jobs that need every lease up to their deadline (they must run now); for
"maximize" it is every job in lease 0 when they all fit there.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pulp


@dataclass(frozen=True)
class LeaseJob:
    """One admitted job as the lease planner sees it.

    Attributes:
        job_id: identifier (ties are broken by list position, not by id).
        gpus: GPUs it holds in each of its leases (Chronus: ``bin(num_gpu)``).
        need: leases it still needs (``r``), >= 1.
        within: it may only use leases ``0 .. within - 1`` (``m``, the deadline lease).
        value: the value of meeting its deadline (Chronus: 10).
    """

    job_id: str
    gpus: int
    need: int
    within: int
    value: float = 10.0


@dataclass
class LeasePlan:
    """The answer of :func:`solve_leases`.

    Attributes:
        rows: job id -> sorted lease offsets it is given (jobs in ``unpacked`` have none).
        unpacked: jobs the greedy fallback could not pack (only when ``status`` is
            ``"greedy"``); Chronus demotes them to UNACCEPTED.
        status: ``"optimal"`` (solver proved optimality), ``"limit"`` (time limit hit,
            best incumbent used), ``"bound"`` (shortcut: a greedy plan reached the
            bound), ``"greedy"`` (fallback), ``"empty"`` (no jobs).
        method: ``"highs"``, ``"cbc"``, ``"shortcut"`` or ``"greedy"``.
        reason: why the fallback was used (infeasible, no incumbent, split failed).
        lease0_gpus: GPUs the plan uses in lease 0.
        objective: value of the program's objective at the plan (``nan`` for greedy
            plans that leave jobs unpacked).
        solve_s: wall time spent in the solver (0 when none was called).
        solver_called: whether a MIP solver ran.
    """

    rows: dict[str, np.ndarray] = field(default_factory=dict)
    unpacked: tuple[str, ...] = ()
    status: str = "empty"
    method: str = "shortcut"
    reason: str = ""
    lease0_gpus: int = 0
    objective: float = math.nan
    solve_s: float = 0.0
    solver_called: bool = False


SOLVERS = ("auto", "highs", "cbc")


def highs_available() -> bool:
    """Whether HiGHS can be used through PuLP (the ``highspy`` package is installed)."""
    return importlib.util.find_spec("highspy") is not None


def resolve_solver(name: str) -> str:
    """``"auto"`` -> ``"highs"`` when installed, else ``"cbc"``; checks the name."""
    if name not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {name!r}")
    if name == "auto":
        return "highs" if highs_available() else "cbc"
    if name == "highs" and not highs_available():
        raise ValueError("solver 'highs' needs the highspy package (pip install highspy); "
                         "use 'cbc' or 'auto'")
    return name


def solve_leases(
    jobs: Sequence[LeaseJob], caps: Sequence[int] | np.ndarray, *, objective: str = "minimize",
    solver: str = "auto", time_limit_s: float = 5.0, seed: int = 0, shortcut: bool = True,
    max_exact_vars: int = 50_000,
) -> LeasePlan:
    """Plan leases for ``jobs`` on per-lease capacities ``caps`` (offset 0 = now).

    ``caps`` must cover ``max(within)`` leases. ``objective`` is ``"maximize"``
    (run as much reserved work as possible now) or ``"minimize"`` (defer it, leaving
    lease 0 to opportunistic jobs). Every solve is single-threaded with the given
    seed and stops after ``time_limit_s``; a solve that stops with an incumbent
    uses it (status ``"limit"``), one that stops without, or proves the program
    infeasible, falls back to :func:`greedy_leases` (status ``"greedy"``). When the
    interval program's solution does not split into leases, the exact per-lease
    program (one binary per job and lease) is solved instead if it has at most
    ``max_exact_vars`` binaries, else the greedy fallback is used.
    """
    if objective not in ("maximize", "minimize"):
        raise ValueError(f"objective must be maximize or minimize, not {objective!r}")
    if not jobs:
        return LeasePlan()
    caps_a = np.asarray(caps, dtype=np.int64)
    M = max(j.within for j in jobs)
    if len(caps_a) < M:
        raise ValueError(f"caps cover {len(caps_a)} leases, jobs need {M}")
    sign = 1.0 if objective == "maximize" else -1.0
    scale = float(max(int(caps_a[:M].max()), 1))

    def value_of(rows: Mapping[str, np.ndarray]) -> float:
        used = sum(j.gpus for j in jobs if len(rows.get(j.job_id, ())) and rows[j.job_id][0] == 0)
        return sum(j.value for j in jobs) + sign * used / scale

    if shortcut:
        rows = _bound_plan(jobs, caps_a, objective)
        if rows is not None:
            return LeasePlan(rows=rows, status="bound", method="shortcut",
                             lease0_gpus=_lease0(jobs, rows), objective=value_of(rows))

    name = resolve_solver(solver)
    t0 = time.perf_counter()
    got = _solve_intervals(jobs, caps_a, sign, scale, name, time_limit_s, seed)
    solve_s = time.perf_counter() - t0
    status, counts, reason = got
    if counts is not None:
        rows = _disaggregate(jobs, caps_a, counts)
        if rows is None and sum(j.within for j in jobs) <= max_exact_vars:
            # the interval totals do not split into leases: solve the exact per-lease program
            status, rows, reason = _solve_per_lease(jobs, caps_a, sign, scale, name,
                                                    time_limit_s, seed)
            solve_s = time.perf_counter() - t0
        elif rows is None:
            reason = "the interval solution did not split into leases"
        if rows is not None:
            return LeasePlan(rows=rows, status=status, method=name,
                             lease0_gpus=_lease0(jobs, rows), objective=value_of(rows),
                             solve_s=solve_s, solver_called=True)
    rows, unpacked = greedy_leases(jobs, caps_a)
    obj = value_of(rows) if not unpacked else math.nan
    return LeasePlan(rows=rows, unpacked=unpacked, status="greedy", method="greedy",
                     reason=reason, lease0_gpus=_lease0(jobs, rows), objective=obj,
                     solve_s=solve_s, solver_called=True)


def greedy_leases(
    jobs: Sequence[LeaseJob], caps: Sequence[int] | np.ndarray,
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The greedy fallback (POLICIES.md 7.4, ``solver.py:L298-344``).

    Jobs in order (value desc, GPUs desc, slack ``within - need`` asc, ``within``
    asc, list position); each takes its ``need`` latest leases before ``within``
    that still have room. A job that does not fit takes nothing and is returned in
    ``unpacked``. Returns ``(rows, unpacked)``.
    """
    free = np.array(caps, dtype=np.int64)
    order = sorted(range(len(jobs)), key=lambda i: (-jobs[i].value, -jobs[i].gpus,
                                                   jobs[i].within - jobs[i].need,
                                                   jobs[i].within, i))
    rows: dict[str, np.ndarray] = {}
    unpacked: list[str] = []
    for i in order:
        j = jobs[i]
        got = latest_fit(free, j.gpus, j.need, j.within)
        if got is None:
            unpacked.append(j.job_id)
            continue
        free[got] -= j.gpus
        rows[j.job_id] = got
    return rows, tuple(unpacked)


def latest_fit(free: np.ndarray, gpus: int, need: int, within: int,
               start: int = 0) -> np.ndarray | None:
    """The ``need`` latest leases in ``[start, within)`` with ``gpus`` free, or None."""
    if need <= 0:
        return np.zeros(0, dtype=np.int64)
    if within - start < need:
        return None
    ok = np.flatnonzero(free[start:within] >= gpus)
    if len(ok) < need:
        return None
    return ok[-need:] + start


def check_plan(jobs: Sequence[LeaseJob], caps: Sequence[int] | np.ndarray,
               rows: Mapping[str, np.ndarray]) -> list[str]:
    """Problems with a plan (empty = feasible): every planned job gets exactly
    ``need`` distinct leases before ``within``, and no lease holds more than its
    capacity."""
    caps_a = np.asarray(caps, dtype=np.int64)
    load = np.zeros(len(caps_a), dtype=np.int64)
    out = []
    for j in jobs:
        if j.job_id not in rows:
            continue
        r = np.asarray(rows[j.job_id], dtype=np.int64)
        if len(r) != j.need:
            out.append(f"{j.job_id}: {len(r)} leases, needs {j.need}")
        if len(set(r.tolist())) != len(r):
            out.append(f"{j.job_id}: a lease twice")
        if len(r) and (r.min() < 0 or r.max() >= j.within):
            out.append(f"{j.job_id}: lease outside [0, {j.within})")
            continue
        np.add.at(load, r, j.gpus)
    over = np.flatnonzero(load > caps_a)
    if len(over):
        out.append(f"lease {int(over[0])}: {int(load[over[0]])} GPUs > {int(caps_a[over[0]])}")
    return out


# ------------------------------------------------------------------- helpers
def _lease0(jobs: Sequence[LeaseJob], rows: Mapping[str, np.ndarray]) -> int:
    return sum(j.gpus for j in jobs
               if len(rows.get(j.job_id, ())) and int(rows[j.job_id][0]) == 0)


def _bound_plan(jobs: Sequence[LeaseJob], caps: np.ndarray,
                objective: str) -> dict[str, np.ndarray] | None:
    """A greedy plan that provably reaches the program's optimum, or None."""
    if objective == "minimize":
        rows, unpacked = greedy_leases(jobs, caps)
        if unpacked:
            return None
        forced = sum(j.gpus for j in jobs if j.need >= j.within)
        return rows if _lease0(jobs, rows) == forced else None
    if sum(j.gpus for j in jobs) > caps[0]:
        return None
    free = caps.copy()
    free[0] -= sum(j.gpus for j in jobs)
    order = sorted(range(len(jobs)), key=lambda i: (-jobs[i].value, -jobs[i].gpus,
                                                   jobs[i].within - jobs[i].need,
                                                   jobs[i].within, i))
    rows = {}
    for i in order:
        j = jobs[i]
        rest = latest_fit(free, j.gpus, j.need - 1, j.within, start=1)
        if rest is None:
            return None
        free[rest] -= j.gpus
        rows[j.job_id] = np.concatenate(([0], rest)).astype(np.int64)
    return rows


def _intervals(jobs: Sequence[LeaseJob], caps: np.ndarray) -> list[tuple[int, int]]:
    """Lease 0 alone, then maximal runs with the same allowed jobs and capacity."""
    M = max(j.within for j in jobs)
    cuts = {0, 1, M}
    cuts.update(j.within for j in jobs)
    if M > 1:
        change = np.flatnonzero(caps[2:M] != caps[1:M - 1]) + 2
        cuts.update(int(c) for c in change)
    pts = sorted(c for c in cuts if 0 <= c <= M)
    return [(a, b) for a, b in zip(pts, pts[1:]) if a < b]


def _solve_intervals(
    jobs: Sequence[LeaseJob], caps: np.ndarray, sign: float, scale: float, solver: str,
    time_limit_s: float, seed: int,
) -> tuple[str, list[dict[int, int]] | None, str]:
    """Solve the interval program; returns (status, per-job {interval start: count}, reason)."""
    ivs = _intervals(jobs, caps)
    prob = pulp.LpProblem("chronus_leases", pulp.LpMaximize)
    sel = [pulp.LpVariable(f"s_{i}", cat=pulp.LpBinary) for i in range(len(jobs))]
    x0: dict[int, pulp.LpVariable] = {}
    y: dict[tuple[int, int], pulp.LpVariable] = {}
    by_iv: dict[int, list[tuple[int, pulp.LpVariable]]] = {}
    for i, j in enumerate(jobs):
        terms = []
        for k, (a, b) in enumerate(ivs):
            if b > j.within or caps[a] < j.gpus:
                continue
            if a == 0:
                v = pulp.LpVariable(f"x0_{i}", cat=pulp.LpBinary)
                x0[i] = v
            else:
                v = pulp.LpVariable(f"y_{i}_{k}", lowBound=0, upBound=min(b - a, j.need),
                                    cat=pulp.LpInteger)
                y[i, k] = v
            terms.append(v)
            by_iv.setdefault(k, []).append((j.gpus, v))
        prob += pulp.lpSum(terms) == j.need * sel[i], f"need_{i}"
        prob += sel[i] == 1, f"one_option_{i}"
    for k, members in by_iv.items():
        a, b = ivs[k]
        prob += pulp.lpSum(g * v for g, v in members) <= int(caps[a]) * (b - a), f"cap_{k}"
    prob += (pulp.lpSum(j.value * sel[i] for i, j in enumerate(jobs))
             + pulp.lpSum((sign * jobs[i].gpus / scale) * v for i, v in x0.items()))
    status, reason = _run(prob, solver, scale, time_limit_s, seed)
    if status not in ("optimal", "limit"):
        return status, None, reason
    counts: list[dict[int, int]] = [{} for _ in jobs]
    for i, v in x0.items():
        if round(v.varValue or 0.0) >= 1:
            counts[i][0] = 1
    for (i, k), v in y.items():
        c = int(round(v.varValue or 0.0))
        if c > 0:
            counts[i][ivs[k][0]] = c
    # a solver that stopped on time may return a point that is not integral/feasible
    for i, j in enumerate(jobs):
        if sum(counts[i].values()) != j.need:
            return status, None, "the solver's point is not a plan"
    return status, counts, ""


def _run(prob: pulp.LpProblem, solver: str, scale: float, time_limit_s: float,
         seed: int) -> tuple[str, str]:
    """Solve ``prob`` single-threaded, seeded, time-limited; (status, reason)."""
    # an absolute gap below one GPU of lease 0 makes "optimal" mean optimal
    gap_abs = 0.5 / scale
    if solver == "highs":
        cmd = pulp.HiGHS(msg=False, timeLimit=time_limit_s, threads=1, gapRel=0.0,
                         gapAbs=gap_abs, random_seed=seed)
    else:
        cmd = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, threads=1, gapRel=0.0,
                                gapAbs=gap_abs,
                                options=[f"randomSeed {seed + 1}", f"randomCbcSeed {seed + 1}"])
    try:
        prob.solve(cmd)
    except pulp.PulpSolverError as e:  # the solver itself failed: use the fallback
        return "error", f"solver error: {e}"
    if prob.sol_status == pulp.LpSolutionOptimal:
        return "optimal", ""
    if prob.sol_status == pulp.LpSolutionIntegerFeasible:
        return "limit", ""
    if prob.sol_status == pulp.LpSolutionInfeasible:
        return "infeasible", "the program is infeasible"
    return "limit-none", f"no incumbent within {time_limit_s:g} s"


def _solve_per_lease(
    jobs: Sequence[LeaseJob], caps: np.ndarray, sign: float, scale: float, solver: str,
    time_limit_s: float, seed: int,
) -> tuple[str, dict[str, np.ndarray] | None, str]:
    """The spec's program verbatim: one binary ``x[i, tau]`` per job and lease."""
    prob = pulp.LpProblem("chronus_leases_exact", pulp.LpMaximize)
    sel = [pulp.LpVariable(f"s_{i}", cat=pulp.LpBinary) for i in range(len(jobs))]
    x: dict[tuple[int, int], pulp.LpVariable] = {}
    per_lease: dict[int, list[tuple[int, pulp.LpVariable]]] = {}
    for i, j in enumerate(jobs):
        row = []
        for t in range(j.within):
            if caps[t] < j.gpus:
                continue
            v = pulp.LpVariable(f"x_{i}_{t}", cat=pulp.LpBinary)
            x[i, t] = v
            row.append(v)
            per_lease.setdefault(t, []).append((j.gpus, v))
        prob += pulp.lpSum(row) == j.need * sel[i], f"need_{i}"
        prob += sel[i] == 1, f"one_option_{i}"
    for t, members in per_lease.items():
        prob += pulp.lpSum(g * v for g, v in members) <= int(caps[t]), f"cap_{t}"
    prob += (pulp.lpSum(j.value * sel[i] for i, j in enumerate(jobs))
             + pulp.lpSum((sign * jobs[i].gpus / scale) * v
                          for (i, t), v in x.items() if t == 0))
    status, reason = _run(prob, solver, scale, time_limit_s, seed)
    if status not in ("optimal", "limit"):
        return status, None, reason
    rows = {}
    for i, j in enumerate(jobs):
        got = [t for t in range(j.within) if (i, t) in x and round(x[i, t].varValue or 0) >= 1]
        if len(got) != j.need:
            return status, None, "the solver's point is not a plan"
        rows[j.job_id] = np.array(got, dtype=np.int64)
    return status, rows, ""


def _disaggregate(jobs: Sequence[LeaseJob], caps: np.ndarray,
                  counts: list[dict[int, int]]) -> dict[str, np.ndarray] | None:
    """Turn per-interval counts into concrete leases; None if it cannot be done.

    Per interval, jobs go largest first (then larger count, list position), each
    into the leases with the most room left (ties: the later lease).
    """
    ivs = {a: b for a, b in _intervals(jobs, caps)}
    free = caps.astype(np.int64).copy()
    got: list[list[np.ndarray]] = [[] for _ in jobs]
    by_iv: dict[int, list[int]] = {}
    for i, c in enumerate(counts):
        for a in c:
            by_iv.setdefault(a, []).append(i)
    for a, members in by_iv.items():
        b = ivs[a]
        members.sort(key=lambda i: (-jobs[i].gpus, -counts[i][a], i))
        idx = np.arange(a, b)
        for i in members:
            n, c = jobs[i].gpus, counts[i][a]
            room = free[a:b]
            ok = room >= n
            if int(ok.sum()) < c:
                return None
            # most room first, later lease first among equals
            order = np.lexsort((-idx[ok], -room[ok]))
            pick = idx[ok][order[:c]]
            free[pick] -= n
            got[i].append(pick)
    return {j.job_id: np.sort(np.concatenate(got[i])).astype(np.int64) if got[i]
            else np.zeros(0, dtype=np.int64) for i, j in enumerate(jobs)}
