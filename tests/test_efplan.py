"""Tests for sim.policies.efplan: the ElasticFlow / EDF planners (POLICIES.md 2.3-2.7, 3.2).

* golden vectors: every row of the verified table in 2.3, the EDF overwrite quirk of 3.2,
  and the two EF instants of the toy trace in 11.1 that exercise ALLOCATE_FREE;
* a literal, dict-based reference of PLAN written straight from the prose of 2.3, against
  which the optimised planner is differential-tested;
* the property tests suggested in 13.3.

Property tests use rates that are multiples of 1/4 (and integer times and work), so every
sum, difference and ``ceil`` in the planner is exact and the properties hold exactly.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.policies.efplan import (
    JobAlloc,
    PlanJob,
    Profile,
    align,
    alloc_at,
    allocate_free,
    compress_steps,
    edf_plan,
    edf_plan_all,
    floor_level,
    gpu_seconds,
    next_level,
    plan,
    plan_all,
)

INF = math.inf
LEVELS = (1, 2, 4, 8, 16, 32, 64)
# A100 throughput tables, iterations/s of the whole job (sim/data/throughputs/A100).
RESNET50_128 = (
    3.6553729658054332,
    6.619528678370847,
    11.224201427896464,
    16.53414011075494,
    20.15564728008105,
    20.291015806510305,
    21.070922780581487,
)
VGG16_128 = (
    2.6247764189255065,
    4.873619474205853,
    8.720751494818506,
    13.573026788365198,
    18.05975694586296,
    23.615372405335012,
    25.78250120819821,
)
BERT_128 = (
    3.5749256045333064,
    5.679410396897942,
    8.45093362704855,
    9.994239610576015,
    10.767556247473081,
)


def resnet(work: float, deadline: float, key: object = "j") -> PlanJob:
    return PlanJob(key, work, deadline, LEVELS, RESNET50_128, 64)


# ---------------------------------------------------------------------------
# Golden vectors
# ---------------------------------------------------------------------------

# POLICIES.md 2.3, verified test vectors: resnet50 batch 128, max_gpu 64, G=8, S=240, now=0.
TABLE_2_3 = [
    # W, ddl, input F, plan, E, R, F after, feasible
    (20000, 2000, {0: 8}, [(0, 4)], 1920, 1782, {0: 4, 1920: 8}, True),
    (3000, 2000, {0: 4, 480: 8}, [(0, 0), (480, 1)], 1440, 1301, {0: 4, 480: 7, 1440: 8}, True),
    (3000, 300, {0: 4, 480: 8}, [(0, 4)], 480, 268, {0: 0, 480: 8}, True),
    (9000, 2000, {0: 8, 480: 8}, [(0, 1), (480, 2)], 1680, 1575, {0: 7, 480: 6, 1680: 8}, True),
    (
        9000,
        2000,
        {0: 8, 480: 1, 960: 8},
        [(0, 2), (480, 1), (960, 2)],
        1680,
        1575,
        {0: 6, 480: 0, 960: 6, 1680: 8},
        True,
    ),
    (20000, 1500, {0: 2, 720: 8}, [(0, 2), (720, 8)], 1920, 1822, {0: 0, 1920: 8}, False),
    (3000, INF, {0: 4, 480: 8}, [(0, 0), (480, 1)], 1440, 1301, {0: 4, 480: 7, 1440: 8}, True),
]


@pytest.mark.parametrize("W, ddl, F_in, alloc, E, R, F_out, feasible", TABLE_2_3)
def test_plan_verified_vectors(
    W: int, ddl: float, F_in: dict, alloc: list, E: int, R: int, F_out: dict, feasible: bool
) -> None:
    F = Profile.from_pairs(F_in)
    res = plan(resnet(W, ddl), 0, F, 8, 240)
    assert res.alloc == alloc
    assert res.end == E
    assert res.real_end == R
    assert res.feasible is feasible
    assert F.as_dict() == F_out  # committed in place, compressed
    assert res.F_after is F


@pytest.mark.parametrize("W, ddl, F_in, alloc, E, R, F_out, feasible", TABLE_2_3)
def test_plan_what_if_leaves_profile_untouched(
    W: int, ddl: float, F_in: dict, alloc: list, E: int, R: int, F_out: dict, feasible: bool
) -> None:
    F = Profile.from_pairs(F_in)
    res = plan(resnet(W, ddl), 0, F, 8, 240, commit=False)
    assert (res.alloc, res.end, res.real_end, res.feasible) == (alloc, E, R, feasible)
    assert res.F_after.as_dict() == F_out
    assert F.as_dict() == F_in  # uncompressed input kept as given


def test_uncompressed_breakpoint_changes_the_plan() -> None:
    """2.3: surviving breakpoints split segments and change the backward fill (row 4)."""
    split = plan(resnet(9000, 2000), 0, Profile.from_pairs({0: 8, 480: 8}), 8, 240)
    merged = plan(resnet(9000, 2000), 0, Profile.from_pairs({0: 8}), 8, 240)
    assert split.alloc == [(0, 1), (480, 2)]
    assert merged.alloc == [(0, 2)]


def test_deadline_breakpoint_survives_only_if_it_changes_the_value() -> None:
    F = Profile.from_pairs({0: 8})
    plan(resnet(3000, 2000), 0, F, 8, 240)  # D^ = 2160 inserted, then merged away
    assert 2160 not in F.as_dict()
    assert F.times == sorted(F.times)
    assert all(a != b for a, b in zip(F.values, F.values[1:]))


@pytest.mark.parametrize("bug, expected", [(True, {0: 0, 480: 4}), (False, {0: 0, 480: 8})])
def test_edf_overwrite_quirk(bug: bool, expected: dict[int, int]) -> None:
    """3.2: a 4-GPU job, F = {0:4, 480:8}, 3000 iterations."""
    job = PlanJob("e", 3000, 10_000, LEVELS[:3], RESNET50_128[:3], 4)
    F = Profile.from_pairs({0: 4, 480: 8})
    res = edf_plan(job, 0, F, 8, 240, artifact_bug=bug)
    assert F.as_dict() == expected
    assert res.alloc == [(0, 4)]
    assert res.end == res.real_end == 268  # exact R, not aligned
    assert res.feasible


def test_edf_toy_trace_ends() -> None:
    """11.1 `edf`: each job runs alone on all 8 GPUs; ends 1210, 2684, 3185."""
    j0 = PlanJob(0, 20000, 4000, LEVELS, RESNET50_128, 64)
    res = edf_plan_all([j0], 0, 8, 240, artifact_bug=False)
    assert res.results[0].alloc == [(0, 8)] and res.results[0].end == 1210
    assert res.F.as_dict() == {0: 0, 1440: 8}
    j1 = PlanJob(1, 20000, 6000, LEVELS, VGG16_128, 64)
    j2 = PlanJob(2, 5000, INF, LEVELS[:5], BERT_128, 16)
    res = edf_plan_all([j2, j1], 1210, 8, 240, artifact_bug=False)
    assert res.order == [1, 2]
    assert res.results[1].end == 2684
    assert res.results[2].alloc == [(1210, 0), (2890, 8)]  # waits for job 1's aligned end
    assert edf_plan_all([j2], 2684, 8, 240, artifact_bug=False).results[2].end == 3185


def test_edf_falls_back_to_largest_allowed_column() -> None:
    # Column 16 has no rate for this job (an empty/nan cell): never chosen.
    job = PlanJob("e", 10**6, INF, (1, 2, 4, 8, 32), (1.0, 2.0, 3.0, 4.0, 5.0), 32)
    F = Profile.from_pairs({0: 6, 480: 20, 960: 64})
    res = edf_plan(job, 0, F, 64, 240, columns=LEVELS, artifact_bug=False)
    assert res.alloc == [(0, 4), (480, 8), (960, 32)]


def test_edf_infeasible_when_a_segment_passes_the_deadline() -> None:
    job = PlanJob("e", 10_000, 300, (1, 2), (1.0, 2.0), 2)
    res = edf_plan(job, 0, Profile.from_pairs({0: 0, 480: 4}), 4, 240, artifact_bug=False)
    assert res.alloc == [(0, 0), (480, 2)]
    assert res.end == 480 + 5000 and not res.feasible


def test_allocate_free_toy_trace_t0() -> None:
    """11.1 `ef-accessctrl` at t=0: job 0 alone gets its minimum share 2, then 4 and 8."""
    j0 = resnet(20000, 4000, key=0)
    pa = plan_all([j0], 0, 8, 240)
    assert pa.results[0].alloc == [(0, 2)]
    fr = allocate_free([JobAlloc.from_plan(j0, pa.results[0], 0)], 0, pa.F, 8, 240)
    assert fr.grants == [(0, 2, 4), (0, 4, 8)]
    (s,) = fr.jobs
    assert (s.num_gpu, s.alloc, s.end, s.real_end) == (8, [(0, 8)], 1440, 1210)
    assert fr.F.as_dict() == {0: 0, 1440: 8}


def test_allocate_free_toy_trace_t240() -> None:
    """11.1 at t=240: jobs 0 and 1 keep their minimum shares (2 each); the best-effort job 2
    (0 GPUs, m = +inf) takes all 4 leftovers 1 -> 2 -> 4 and is planned to end at 960 (logged
    968 = 960 + 8 s overhead; it really finishes at 832 + 8 = 840)."""
    # Job 0 ran 240 s on 8 GPUs minus its 10 s overhead (1.6: 8 GPUs, not cached).
    j0 = resnet(20000 - 230 * RESNET50_128[3], 4000, key=0)
    j1 = PlanJob(1, 20000, 6000, LEVELS, VGG16_128, 64)
    j2 = PlanJob(2, 5000, INF, LEVELS[:5], BERT_128, 16)
    pa = plan_all([j0, j1, j2], 240, 8, 240)
    assert [pa.results[k].alloc for k in (0, 1, 2)] == [
        [(240, 2)],
        [(240, 2)],
        [(240, 0), (4560, 1)],
    ]
    states = [JobAlloc.from_plan(j, pa.results[j.key], 240) for j in (j0, j1, j2)]
    for artifact, order in ((True, [2, 0, 1]), (False, [2, 1, 0])):
        fr = allocate_free(states, 240, pa.F.copy(), 8, 240, artifact=artifact)
        assert fr.grants == [(2, 0, 1), (2, 1, 2), (2, 2, 4)]
        assert [s.num_gpu for s in fr.jobs] == [2, 2, 4]
        assert (fr.jobs[2].end, fr.jobs[2].real_end) == (960, 832)
        # the artifact re-sorts on every job's new m after each grant; the clean loop is
        # lazy: it re-evaluates only the first candidate (job 2 each time), so 0 and 1
        # keep the order of the first evaluation
        assert fr.order == order
        assert fr.F.as_dict() == {240: 0, 960: 4, 2880: 6, 4560: 8}


# ---------------------------------------------------------------------------
# Helpers and edge cases
# ---------------------------------------------------------------------------


def test_helpers() -> None:
    assert align(0, 1500, 240) == 1680
    assert align(0, 1680, 240) == 1680
    assert align(100, 100, 240) == 100
    assert align(100, 101, 240) == 340
    assert align(0, INF, 240) == INF
    assert align(0.0, 1.5, 1) == 2.0
    assert next_level(LEVELS, 0) == 1
    assert next_level(LEVELS, 3) == 4
    assert next_level(LEVELS, 64) == 64
    assert next_level((), 0) == 0
    assert floor_level(LEVELS, 0.5) == 0
    assert floor_level(LEVELS, 7) == 4
    assert floor_level(LEVELS, 100) == 64
    assert gpu_seconds([(0, 0), (480, 1)], 1440) == 960
    assert gpu_seconds([(0, 2), (480, 1), (960, 2)], 1680) == 2 * 480 + 480 + 2 * 720
    # a trailing 0 after the end: the finishing segment counts up to it (artifact)
    assert gpu_seconds([(0, 4), (480, 0)], 240) == 4 * 480
    assert alloc_at([(0, 0), (480, 1)], 479) == 0
    assert alloc_at([(0, 0), (480, 1)], 480) == 1
    assert alloc_at([(10, 3)], 5) == 0
    assert compress_steps([(0, 1), (5, 1), (9, 2), (12, 2), (15, 1)]) == [(0, 1), (9, 2), (15, 1)]


def test_profile_basics() -> None:
    F = Profile.from_pairs({480: 8, 0: 4})
    assert F.times == [0, 480] and F.value_at(-5) == 4 and F.value_at(480) == 8
    assert F == F.copy() and F.copy() is not F
    assert Profile.from_pairs({0: 8, 480: 8}).compressed().as_dict() == {0: 8}
    with pytest.raises(ValueError):
        Profile([0, 0], [1, 2])
    with pytest.raises(ValueError):
        Profile([], [])


def test_planjob_validation_and_callable_rate() -> None:
    with pytest.raises(ValueError):
        PlanJob("x", 1, 1, (2, 1), (1.0, 2.0), 8)
    with pytest.raises(ValueError):
        PlanJob("x", 1, 1, (1, 2), (1.0,), 8)
    with pytest.raises(ValueError):
        PlanJob("x", 1, 1, (1, 16), (1.0, 2.0), 8)
    with pytest.raises(ValueError):
        PlanJob("x", 1, 1, (1, 2), (1.0, 0.0), 8)
    by_table = dict(zip(LEVELS, RESNET50_128))
    j = PlanJob("c", 20000, 2000, LEVELS, lambda g: by_table.get(g, 0.0), 64)
    assert plan(j, 0, Profile.from_pairs({0: 8}), 8, 240).alloc == [(0, 4)]
    assert j.rate_at(4) == RESNET50_128[2]
    assert j.rate_at(0) == 0.0 and j.rate_at(3) == 0.0


def test_exact_fit_meets_the_deadline() -> None:
    """Work exactly equal to tput(q) * (D - now) fits level q (>=, not >) and ends at D."""
    job = PlanJob("x", 2000, 1100, (1, 2, 4), (1.0, 2.0, 3.0), 4)
    F = Profile.from_pairs({100: 8})
    res = plan(job, 100, F, 8, 240)
    assert (res.alloc, res.real_end, res.end, res.feasible) == ([(100, 2)], 1100, 1300, True)
    assert F.as_dict() == {100: 6, 1300: 8}


def test_degenerate_jobs() -> None:
    F = Profile.from_pairs({0: 8})
    done = plan(resnet(0, 100), 0, F, 8, 240)
    assert (done.alloc, done.end, done.real_end, done.feasible) == ([(0, 0)], 0, 0, True)
    too_big = PlanJob("b", 100, 1000, (16, 32), (1.0, 2.0), 32)
    res = plan(too_big, 0, F, 8, 240)
    assert res.end == INF and not res.feasible
    assert F.as_dict() == {0: 8}


def test_deadline_already_passed_runs_from_now() -> None:
    F = Profile.from_pairs({100: 8})
    res = plan(resnet(3000, 50), 100, F, 8, 240)
    assert res.alloc == [(100, 8)] and not res.feasible
    assert res.real_end == 100 + math.ceil(3000 / RESNET50_128[3])
    assert F.as_dict() == {100: 0, res.end: 8}


def test_allocate_free_rejects_inconsistent_input() -> None:
    j0 = resnet(20000, 4000, key=0)
    pa = plan_all([j0], 0, 8, 240)
    s = JobAlloc.from_plan(j0, pa.results[0], 0)
    with pytest.raises(ValueError):
        allocate_free([s, s], 0, pa.F, 8, 240)
    with pytest.raises(ValueError):
        allocate_free([s], 0, Profile.from_pairs({0: 8}), 8, 240)


# ---------------------------------------------------------------------------
# Literal reference of PLAN (2.3), dict based, written from the prose
# ---------------------------------------------------------------------------


def reference_plan(
    job: PlanJob, now: int, F_in: dict[float, int], G: int, S: int
) -> tuple[list[tuple[float, int]], float, float, bool, dict[float, int]]:
    """PLAN exactly as 2.3 words it, with no optimisation. Returns (alloc, E, R, ok, F)."""
    F = dict(F_in)
    rate = dict(zip(job.levels, job.rate))
    W, D = job.work, job.deadline

    def val(t: float) -> int:
        return F[max(k for k in F if k <= t)]

    def floor(f: float) -> int:
        return max((q for q in job.levels if q <= f), default=0)

    def al(t0: float, t: float) -> float:
        return INF if t == INF else t0 + math.ceil((t - t0) / S) * S

    def finish(t: float, a: int, E: float) -> dict[float, int]:
        if E not in F:
            F[E] = val(E)
        for k in list(F):
            if t <= k < E:
                F[k] -= a
        merged: dict[float, int] = {}
        for k in sorted(F):
            if not merged or merged[max(merged)] != F[k]:
                merged[k] = F[k]
        return merged

    if not any(q <= G for q in job.levels):  # [DECIDE] in plan(): never runs, F untouched
        return [(now, 0)], INF, INF, False, F
    F.setdefault(now, val(now))
    Dh = al(now, D)
    if Dh != INF and Dh > now:
        F.setdefault(Dh, val(Dh))
    bps = sorted(F)
    segs: list[tuple[float, float]] = []  # (t_k, usable length) for now <= t_k < D^
    for i, t in enumerate(bps):
        if now <= t < Dh:
            end = bps[i + 1] if i + 1 < len(bps) else INF
            segs.append((t, D - t if end == Dh else end - t))
    found: tuple[int, float] | None = None
    q_prev = 0
    for q in (q for q in job.levels if q <= G):
        acc = 0.0
        for t, length in reversed(segs):
            a = min(q, floor(F[t]))
            if a:
                acc += rate[a] * length
                if acc >= W:
                    found = (q, t)
                    break
        if found:
            break
        q_prev = q
    alloc: list[tuple[float, int]] = []
    Wr = W
    for i, (t, length) in enumerate(segs):
        cap = found[0] if found and t >= found[1] else q_prev
        a = min(cap, floor(F[t]))
        alloc.append((t, a))
        if not a:
            continue
        if rate[a] * length >= Wr:
            d = math.ceil(Wr / rate[a])
            R = t + d
            E = t + al(0, d)
            F = finish(t, a, E)
            # the artifact records 0 on every later breakpoint before D^
            alloc += [(t2, 0) for t2, _ in segs[i + 1:]]
            return compress_steps(alloc), E, R, found is not None and R <= D, F
        Wr -= rate[a] * length
        F[t] -= a
    later = [t for t in sorted(F) if t >= max(Dh, now)]
    for i, t in enumerate(later):
        last = i == len(later) - 1
        a = floor(min(F[t], G) if last else F[t])
        alloc.append((t, a))
        if not a:
            continue
        if not last:
            length = later[i + 1] - t
            if rate[a] * length < Wr:
                Wr -= rate[a] * length
                F[t] -= a
                continue
        R = t + math.ceil(Wr / rate[a])
        E = al(now, R)
        F = finish(t, a, E)
        return compress_steps(alloc), E, R, False, F
    raise AssertionError("unreachable")


@pytest.mark.parametrize("W, ddl, F_in, alloc, E, R, F_out, feasible", TABLE_2_3)
def test_reference_reproduces_the_verified_table(
    W: int, ddl: float, F_in: dict, alloc: list, E: int, R: int, F_out: dict, feasible: bool
) -> None:
    assert reference_plan(resnet(W, ddl), 0, F_in, 8, 240) == (alloc, E, R, feasible, F_out)


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

quarter_rates = st.integers(1, 160).map(lambda k: k / 4)


@st.composite
def plan_jobs(
    draw: st.DrawFn,
    key: object = "j",
    now: int = 0,
    best_effort: bool | None = None,
    first_level_one: bool = False,
) -> PlanJob:
    levels = tuple(
        sorted(draw(st.lists(st.sampled_from(LEVELS), min_size=1, max_size=7, unique=True)))
    )
    if first_level_one and levels[0] != 1:
        levels = (1, *levels)
    rates = tuple(draw(quarter_rates) for _ in levels)
    work = draw(st.integers(1, 200_000))
    if best_effort is None:
        best_effort = draw(st.booleans())
    ddl = INF if best_effort else draw(st.integers(now - 300, now + 30_000))
    return PlanJob(key, work, ddl, levels, rates, levels[-1])


@st.composite
def grid_profiles(draw: st.DrawFn, G: int, now: int, S: int) -> Profile:
    ks = sorted(draw(st.lists(st.integers(1, 24), unique=True, max_size=6)))
    times = [now] + [now + k * S for k in ks]
    values = [draw(st.integers(0, G)) for _ in times[:-1]] + [G]
    return Profile(times, values)


clusters = st.sampled_from([1, 2, 4, 8, 12, 16, 64])
slots = st.sampled_from([1, 60, 240])
nows = st.integers(0, 2_000)


def assert_consistent(
    F: Profile, holds: list[tuple[list[tuple[float, int]], float]], G: int, now: float
) -> None:
    """F == G - sum of every job's allocation (held until its end) and F >= 0, everywhere
    from ``now`` on (checking every breakpoint of every step function suffices)."""
    points = {t for t in F.times if t >= now}
    for alloc, end in holds:
        points.update(t for t, _ in alloc)
        if end != INF:
            points.add(end)
    for t in sorted(points):
        if t < now:
            continue
        used = sum(alloc_at(alloc, t) for alloc, end in holds if t < end)
        assert used <= G
        assert F.value_at(t) == G - used, (t, F, holds)
    assert F.values[-1] == G


# ---------------------------------------------------------------------------
# Properties (13.3)
# ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.data(), G=clusters, S=slots, now=nows)
def test_plan_matches_literal_reference(data: st.DataObject, G: int, S: int, now: int) -> None:
    job = data.draw(plan_jobs(now=now))
    F = data.draw(grid_profiles(G, now, S))
    expected = reference_plan(job, now, F.as_dict(), G, S)
    res = plan(job, now, F, G, S)
    assert (res.alloc, res.end, res.real_end, res.feasible, F.as_dict()) == expected


@settings(max_examples=150, deadline=None)
@given(data=st.data(), G=clusters, S=slots, now=nows)
def test_plan_all_never_overcommits(data: st.DataObject, G: int, S: int, now: int) -> None:
    n = data.draw(st.integers(1, 8))
    jobs = [data.draw(plan_jobs(key=i, now=now)) for i in range(n)]
    pa = plan_all(jobs, now, G, S)
    holds: list[tuple[list[tuple[float, int]], float]] = []
    for job in jobs:
        r = pa.results[job.key]
        if r.end == INF:  # no level fits this cluster: never runs
            assert r.alloc == [(now, 0)] and not r.feasible
            continue
        assert all(g == 0 or (g in job.levels and g <= G) for _, g in r.alloc)
        steps = r.alloc
        if steps[-1][1] == 0:  # the artifact's trailing 0 lies at or after the end
            assert len(steps) > 1 and steps[-1][0] >= r.end
            steps = steps[:-1]
        assert steps[0][0] == now and steps[-1][1] > 0
        assert (r.end - now) % S == 0 and r.real_end <= r.end
        assert r.feasible == (r.real_end <= job.deadline)
        holds.append((r.alloc, r.end))
    assert_consistent(pa.F, holds, G, now)
    assert pa.feasible == all(r.feasible for r in pa.results.values())
    assert pa.order == [j.key for j in sorted(jobs, key=lambda j: j.deadline)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), G=clusters, S=slots, now=nows)
def test_feasibility_is_monotone_in_free_capacity(
    data: st.DataObject, G: int, S: int, now: int
) -> None:
    """Feasible iff some level q <= G has  integral_now^D tput(min(q, floor_level(F))) >= W,
    which only grows with F; adding capacity never makes a feasible job infeasible."""
    job = data.draw(plan_jobs(now=now, best_effort=False))
    F1 = data.draw(grid_profiles(G, now, S))
    extra = [data.draw(st.integers(0, G - v)) for v in F1.values]
    F2 = Profile(F1.times, [v + e for v, e in zip(F1.values, extra)])
    r1 = plan(job, now, F1, G, S, commit=False)
    r2 = plan(job, now, F2, G, S, commit=False)
    if r1.feasible:
        assert r2.feasible


@settings(max_examples=300, deadline=None)
@given(data=st.data(), G=clusters, S=slots, now=nows, realistic=st.booleans())
def test_lone_job_gets_its_minimum_satisfactory_share(
    data: st.DataObject, G: int, S: int, now: int, realistic: bool
) -> None:
    """On an empty cluster the only pre-deadline segment is [now, D^), measured to the exact
    D, so the planner picks the smallest level q <= min(G, max_gpu) with
    tput(q) * (D - now) >= W, runs it alone, ends at R = now + ceil(W / tput(q)) <= D and
    returns the GPUs at the first grid point E >= R (which may lie after D, up to D^).
    With no such level it runs the largest level q_m <= G to D, idles on [D, D^) (still
    reserved), resumes at D^ and is infeasible."""
    if realistic:
        job = PlanJob(
            "j",
            data.draw(st.integers(1, 200_000)),
            now + data.draw(st.integers(1, 30_000)),
            LEVELS,
            RESNET50_128,
            64,
        )
    else:
        job = data.draw(plan_jobs(now=now, best_effort=False))
    D, W = job.deadline, job.work
    rate = dict(zip(job.levels, job.rate))
    usable = [q for q in job.levels if q <= G]
    F = Profile.constant(now, G)
    res = plan(job, now, F, G, S)
    if not usable:
        assert res.end == INF and not res.feasible
        return
    fits = [q for q in usable if D > now and rate[q] * (D - now) >= W]
    if fits:
        q = fits[0]
        d = min(math.ceil(W / rate[q]), D - now)  # the clamp only matters for float noise
        assert res.alloc == [(now, q)]
        assert res.real_end == now + d <= D
        assert res.end == align(now, now + d, S)
        assert res.feasible
    else:
        q = usable[-1]
        Dh = align(now, D, S)
        left = W - rate[q] * (D - now) if Dh > now else W
        R = max(Dh, now) + math.ceil(left / rate[q])
        assert res.alloc == [(now, q)]
        assert (res.real_end, res.end) == (R, align(now, R, S))
        assert not res.feasible
    assert F.as_dict() == {now: G - q, res.end: G}


@settings(max_examples=150, deadline=None)
@given(data=st.data(), G=clusters, S=slots, now=nows)
def test_best_effort_waits_for_jobs_planned_before_it(
    data: st.DataObject, G: int, S: int, now: int
) -> None:
    """2.3: a best-effort job gets 0 GPUs until every job planned before it has finished
    (the last breakpoint of F is the latest end E so far), then its smallest level."""
    n_ddl = data.draw(st.integers(0, 6))
    n_be = data.draw(st.integers(1, 3))
    jobs = [
        data.draw(plan_jobs(key=i, now=now, best_effort=False, first_level_one=True))
        for i in range(n_ddl)
    ]
    jobs += [
        data.draw(plan_jobs(key=n_ddl + i, now=now, best_effort=True, first_level_one=True))
        for i in range(n_be)
    ]
    pa = plan_all(jobs, now, G, S)
    by_key = {j.key: j for j in jobs}
    ends_so_far: list[float] = []
    for key in pa.order:
        job, r = by_key[key], pa.results[key]
        if job.best_effort:
            T = max(ends_so_far, default=now)
            assert T >= max((pa.results[j.key].end for j in jobs[:n_ddl]), default=now)
            q0 = job.levels[0]
            d = math.ceil(job.work / job.rate[0])
            assert r.alloc == ([(now, 0), (T, q0)] if T > now else [(now, q0)])
            assert (r.real_end, r.end) == (T + d, T + align(0, d, S))
            assert r.feasible
        ends_so_far.append(r.end)
    assert all(pa.results[j.key].feasible for j in jobs if j.best_effort)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), G=st.sampled_from([4, 8, 16, 64]), S=slots, now=nows)
def test_allocate_free_fills_or_nobody_can_grow(
    data: st.DataObject, G: int, S: int, now: int
) -> None:
    n = data.draw(st.integers(1, 7))
    jobs = [data.draw(plan_jobs(key=i, now=now, first_level_one=True)) for i in range(n)]
    pa = plan_all(jobs, now, G, S)
    by_key = {j.key: j for j in jobs}
    before = [JobAlloc.from_plan(by_key[k], pa.results[k], now) for k in pa.order]
    A0 = pa.F.value_at(now)
    F_ref = pa.F.copy()
    # the artifact's variant: the cache only skips work
    F_art, F_art_ref = pa.F.copy(), pa.F.copy()
    art = allocate_free(before, now, F_art, G, S, artifact=True)
    art_ref = allocate_free(before, now, F_art_ref, G, S, cache=False, artifact=True)
    assert (art.jobs, art.order, art.grants, art.F) == (
        art_ref.jobs, art_ref.order, art_ref.grants, art_ref.F)
    fr = allocate_free(before, now, pa.F, G, S)
    ref = allocate_free(before, now, F_ref, G, S, cache=False)
    assert (fr.jobs, fr.order, fr.grants, fr.F) == (ref.jobs, ref.order, ref.grants, ref.F)

    A = fr.F.value_at(now)
    assert A >= 0
    assert A == 0 or all(
        next_level(s.job.levels, s.num_gpu) == s.num_gpu
        or next_level(s.job.levels, s.num_gpu) - s.num_gpu > A
        for s in fr.jobs
    )
    assert A == G - sum(s.num_gpu for s in fr.jobs)
    assert_consistent(fr.F, [(s.alloc, s.end) for s in fr.jobs], G, now)
    for s0, s1 in zip(before, fr.jobs):
        assert s1.num_gpu >= s0.num_gpu and alloc_at(s1.alloc, now) == s1.num_gpu
    # One level step per grant; 0-GPU jobs that fit are served before any running job grows.
    cur = {s.job.key: s.num_gpu for s in before}
    levels = {s.job.key: s.job.levels for s in before}
    free = A0
    for key, old, new in fr.grants:
        assert old == cur[key] and new == next_level(levels[key], old)
        if old > 0:
            assert not any(g == 0 and levels[k][0] <= free for k, g in cur.items())
        cur[key] = new
        free -= new - old
    assert free == A


@settings(max_examples=150, deadline=None)
@given(data=st.data(), G=clusters, S=slots, now=nows)
def test_edf_clean_never_overcommits(data: st.DataObject, G: int, S: int, now: int) -> None:
    n = data.draw(st.integers(1, 6))
    jobs = [data.draw(plan_jobs(key=i, now=now)) for i in range(n)]
    jobs = [j for j in jobs if j.rate_at(min(j.max_gpu, G)) > 0]
    pa = edf_plan_all(jobs, now, G, S, artifact_bug=False)
    holds: list[tuple[list[tuple[float, int]], float]] = []
    for job in jobs:
        r = pa.results[job.key]
        assert r.end == r.real_end
        assert r.feasible == (r.real_end <= job.deadline)
        holds.append((r.alloc, align(now, r.real_end, S)))  # reserved up to the aligned R
    assert_consistent(pa.F, holds, G, now)


TABLE_ROWS = [(LEVELS, RESNET50_128), (LEVELS, VGG16_128), (LEVELS[:5], BERT_128)]


@st.composite
def busy_jobs(draw: st.DrawFn, key: object, now: int) -> PlanJob:
    """ITP-like jobs: hours to days of work at a requested size, deadlines 1-2x that."""
    if draw(st.integers(0, 3)):
        levels, rates = draw(st.sampled_from(TABLE_ROWS))
    else:
        levels = (1, *sorted(draw(st.lists(st.sampled_from(LEVELS[1:]), max_size=6, unique=True))))
        rates = tuple(draw(quarter_rates) for _ in levels)
    i = draw(st.integers(0, len(levels) - 1))  # requested size
    duration = draw(st.integers(600, 200_000))
    work = int(rates[i] * duration)
    slack = draw(st.sampled_from([1.0, 1.1, 1.3, 1.6, 2.0, INF]))
    ddl = INF if slack == INF else now + int(duration * slack)
    return PlanJob(key, max(work, 1), ddl, levels, rates, levels[-1])


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(), G=st.sampled_from([32, 64, 256, 1024]), S=st.sampled_from([60, 240]), now=nows
)
def test_allocate_free_cache_is_exact(data: st.DataObject, G: int, S: int, now: int) -> None:
    """The what-if cache only skips work: same grants, plans, order and F as the literal
    recompute-everything loop. States come from a short replay (plan_all, allocate_free,
    one slot of progress, repeat) with jobs arriving over time, like real instants.
    ``efjit.plan_then_free`` (both in one call, no objects between) reads the same."""
    from sim.policies import efjit

    artifact = data.draw(st.booleans())
    n = data.draw(st.integers(4, 24))
    arrivals = sorted(data.draw(st.lists(st.integers(0, 7), min_size=n, max_size=n)))
    pending = [data.draw(busy_jobs(key=i, now=now)) for i in range(n)]
    active: list[PlanJob] = []
    t = now
    for step in range(8):
        active += [j for i, j in enumerate(pending) if arrivals[i] == step]
        if not active:
            t += S
            continue
        pa = plan_all(active, t, G, S)
        by_key = {j.key: j for j in active}
        before = [JobAlloc.from_plan(by_key[k], pa.results[k], t) for k in pa.order]
        F_ref = pa.F.copy()
        fast = allocate_free(before, t, pa.F, G, S, artifact=artifact)
        ref = allocate_free(before, t, F_ref, G, S, cache=False, artifact=artifact)
        assert fast.grants == ref.grants
        assert fast.jobs == ref.jobs
        assert fast.order == ref.order
        assert fast.F == ref.F
        pf = efjit.plan_then_free(active, t, G, S, artifact)
        plans = [pa.results[k] for k in pa.order]
        assert pf.keys == pa.order
        assert pf.gpus0 == [st.num_gpu for st in before]
        assert pf.first == [next((s for s, g in r.alloc if g), None) for r in plans]
        assert pf.real0 == [r.real_end for r in plans]
        assert pf.gpus == [st.num_gpu for st in ref.jobs]
        assert pf.end == [st.end for st in ref.jobs]
        assert pf.real == [st.real_end for st in ref.jobs]
        assert pf.next == [next((s for s, _ in st.alloc if s > t), None) for st in ref.jobs]
        assert (pf.order, pf.grants, pf.ends_left) == (ref.order, ref.grants, ref.ends_left)
        # One slot of progress at the allocated size; finished jobs leave.
        active = []
        for s in fast.jobs:
            left = s.job.work - S * s.job.rate_at(s.num_gpu)
            if left > 0:
                active.append(
                    PlanJob(
                        s.job.key, left, s.job.deadline, s.job.levels, s.job.rate, s.job.max_gpu
                    )
                )
        t += S


# The reuse contract of the compiled allocate_free, tested on the reference what-if: a what-if
# that does not read F(now) depends only on F's breakpoints and values on (now, horizon].


@settings(max_examples=400, deadline=None)
@given(data=st.data(), G=st.sampled_from([8, 16, 64]), S=st.sampled_from([60, 240]), now=nows)
def test_whatif_reads_only_its_window(data: st.DataObject, G: int, S: int, now: int) -> None:
    from sim.policies.efplan import _whatif, _whatif_t1

    job = data.draw(plan_jobs(now=now, first_level_one=True))
    growable = [g for g in job.levels if g < G and next_level(job.levels, g) != g]
    if not growable:
        return
    g = data.draw(st.sampled_from(growable))
    k_end = data.draw(st.integers(1, 12))
    alloc = [(now, g)]
    if k_end > 1 and data.draw(st.booleans()):
        alloc.append(
            (now + data.draw(st.integers(1, k_end - 1)) * S, data.draw(st.sampled_from(job.levels)))
        )
    state = JobAlloc(job, g, compress_steps(alloc), now + k_end * S, now + k_end * S)
    F1 = data.draw(grid_profiles(G, now, S))
    w1 = _whatif(state, next_level(job.levels, g), now, F1, G, S)
    assert _whatif_t1(state, now, F1, S) == w1.t1  # the cheap t1 check (efjit._t1_now)
    if w1.reads_now:  # allocate_free never reuses these: every grant changes F(now)
        assert w1.horizon == INF

    kept = [(t, v) for t, v in F1.items() if now < t <= w1.horizon]
    times = [now] + [t for t, _ in kept]
    values = [data.draw(st.integers(0, G))] + [v for _, v in kept]
    if w1.horizon != INF:
        extra = sorted(data.draw(st.lists(st.integers(1, 12), unique=True, max_size=4)))
        last = max(times[-1], w1.horizon)
        for k in extra:
            times.append(align(now, last, S) + k * S)
            values.append(data.draw(st.integers(0, G)))
    else:
        values[-1] = F1.values[-1]
    if values[-1] != G:  # keep F's last value G, after the window
        times.append(align(now, max(times[-1], w1.horizon) + 1, S))
        values.append(G)
    F2 = Profile(times, values)
    w2 = _whatif(state, next_level(job.levels, g), now, F2, G, S)
    # the first segment ends where F + own plan first changes, which also depends on
    # F(now): allocate_free reuses a what-if only if that end is unchanged too
    same_t1 = _whatif_t1(state, now, F2, S) == w1.t1
    if same_t1 and (not w1.reads_now or values[0] == F1.values[0]):
        assert (w2.alloc, w2.end, w2.real_end, w2.feasible) == (
            w1.alloc,
            w1.end,
            w1.real_end,
            w1.feasible,
        )


def test_whatif_reads_now_when_its_first_segment_ends_inside_fs() -> None:
    """The job's own plan ends at 100, where F has no breakpoint (another job's equal step
    merged it away): the remainder from t1 = 100 sees F(now), so the cache must not reuse
    it across a grant (every grant changes F(now))."""
    from sim.policies.efplan import _whatif

    job = PlanJob("x", 1000, 300, (1, 2, 4, 8), (1.0, 2.0, 4.0, 8.0), 8)
    state = JobAlloc(job, 2, [(0, 2)], 100, 100)
    a = _whatif(state, 4, 0, Profile.from_pairs({0: 6, 300: 16}), 16, 100)
    b = _whatif(state, 4, 0, Profile.from_pairs({0: 3, 300: 16}), 16, 100)
    assert a.reads_now and b.reads_now and a.horizon == b.horizon == INF
    assert (a.alloc, a.end, a.real_end, a.feasible) == ([(0, 4)], 300, 250, True)
    assert not b.feasible  # only 2 GPUs fit from 100 on: same F after now, different plan


@settings(max_examples=300, deadline=None)
@given(data=st.data(), G=st.sampled_from([8, 64, 512]), S=st.sampled_from([60, 240, 60.0]),
       now=nows)
def test_compiled_plan_all_matches_reference(data: st.DataObject, G: int, S: float,
                                             now: int) -> None:
    """The numba plan_all (sim.policies.efjit) gives the Python reference's plans, ends,
    feasibility, order and profile bit for bit, on integer or float clocks."""
    if data.draw(st.booleans()):
        now = float(now)
    n = data.draw(st.integers(1, 12))
    jobs = [data.draw(busy_jobs(key=i, now=now)) for i in range(n)]
    fast = plan_all(jobs, now, G, S)
    ref = plan_all(jobs, now, G, S, compiled=False)
    assert (fast.order, fast.feasible, fast.F) == (ref.order, ref.feasible, ref.F)
    for k in ref.order:
        a, b = fast.results[k], ref.results[k]
        assert (a.alloc, a.end, a.real_end, a.feasible) == (b.alloc, b.end, b.real_end,
                                                            b.feasible)


def test_whatif_that_finishes_in_its_forced_segment_after_the_deadline_holds_g2_once() -> None:
    """Clean mode, D^ inside the forced segment and the work done within it: the job holds
    g' on [now, E) once (it used to be subtracted on [D^, t1) twice: F went negative)."""
    jobs = [PlanJob(key=0, work=1, deadline=0, levels=(1,), rate=(0.25,), max_gpu=1),
            PlanJob(key=1, work=1, deadline=2, levels=(1, 2), rate=(0.5, 0.25), max_gpu=2)]
    pa = plan_all(jobs, 0, 4, 1)
    by_key = {j.key: j for j in jobs}
    before = [JobAlloc.from_plan(by_key[k], pa.results[k], 0) for k in pa.order]
    for cache in (True, False):
        fr = allocate_free(before, 0, pa.F.copy(), 4, 1, cache=cache)
        assert fr.grants == [(1, 1, 2)]
        assert_consistent(fr.F, [(s.alloc, s.end) for s in fr.jobs], 4, 0)
        assert fr.F.value_at(2) == 1


@pytest.mark.parametrize("cache", [False, True])
def test_late_job_alone_grows_without_a_first_segment_end(cache: bool) -> None:
    """A late job (D^ <= now) whose F + own plan never changes after now: its forced first
    segment has no end (it used to start the remainder at D^ = 0, before now, and raise;
    found by Hypothesis). It runs g' until it is done and stays infeasible."""
    job = PlanJob(key="j", work=1, deadline=0, levels=(1, 2), rate=(0.25, 0.25), max_gpu=2)
    st = JobAlloc(job, 1, [(60, 1)], 120, 120)
    F = Profile.from_pairs({60: 15, 120: 16})
    res = allocate_free([st], 60, F, 16, 60, cache=cache)
    assert res.grants == [("j", 1, 2)]
    got = res.jobs[0]
    assert (got.alloc, got.end, got.real_end, got.feasible) == ([(60, 2)], 120, 64, False)
    assert F == Profile.from_pairs({60: 14, 120: 16})


@settings(max_examples=500, deadline=None)
@given(data=st.data(), G=st.sampled_from([8, 16, 64, 1024]), S=st.sampled_from([1, 60, 240]),
       now=nows)
def test_compiled_whatif_for_m_equals_the_whatif(data: st.DataObject, G: int, S: int,
                                                 now: int) -> None:
    """``efjit._whatif_m`` (the one-pass what-if the m loop runs) gives the plan, ends, t1 and
    horizon of ``efjit._whatif(commit=False)``, which copies F, adds the plan back,
    compresses and inserts; late, best-effort and uneven (unaligned) plans included."""
    import numpy as np

    from sim.policies import efjit

    job = data.draw(plan_jobs(now=now, first_level_one=True))
    growable = [g for g in job.levels if g < G and next_level(job.levels, g) != g]
    if not growable:
        return
    g = data.draw(st.sampled_from(growable))
    start = now - data.draw(st.sampled_from([0, 0, S, 7]))
    steps = [(start, g)]
    for _ in range(data.draw(st.integers(0, 3))):
        steps.append((steps[-1][0] + data.draw(st.integers(1, 6 * S)),
                      data.draw(st.sampled_from((0, *job.levels)))))
    if len(steps) > 1 and steps[1][0] <= now:
        steps[1] = (now + 1, steps[1][1])
        steps = steps[:2]
    end = max(steps[-1][0], now) + data.draw(st.integers(1, 8 * S))
    F = data.draw(grid_profiles(G, now, S))
    if data.draw(st.booleans()):  # breakpoints off the slot grid, as after R-based ends
        extra = data.draw(st.integers(1, 30 * S))
        F = Profile.from_pairs({**dict(F.items()), now + extra: F.value_at(now + extra)})
    g2 = next_level(job.levels, g)
    J = efjit._Jobs([job], 256)
    at = np.array([t for t, _ in compress_steps(steps)], dtype=np.float64)
    ag = np.array([v for _, v in compress_steps(steps)], dtype=np.int64)
    FT = np.array(F.times, dtype=np.float64)
    FV = np.array(F.values, dtype=np.int64)
    outs = []
    for fused in (False, True):  # the reference first
        sc = efjit._scratch(256)
        args = (J.W[0], J.D[0], J.LV[0], J.RT[0], J.NL[0], g2, at, ag, len(at), float(end),
                float(now), FT, FV, len(FT), G, float(S))
        if fused:
            wl, e, r, ok, t1, hz, err = efjit._whatif_m(*args, *sc)
            assert err == 0
        else:
            artifact = data.draw(st.booleans())  # only the committed profile differs
            _, wl, e, r, ok, t1, hz = efjit._whatif(*args, artifact, *sc, False)
        outs.append((sc[2][:wl].tolist(), sc[3][:wl].tolist(), e, r, ok, t1, hz))
    assert outs[1] == outs[0]


@pytest.mark.parametrize("cache", [False, True])
def test_allocate_free_names_the_job_whose_whatif_cannot_fit(cache: bool) -> None:
    """Bad input found inside a what-if of the m loop (F ends below the job's smallest level):
    the compiled loop reports it from its threads and the same named error comes out."""
    job = PlanJob(key="big", work=10_000, deadline=INF, levels=(2, 4, 8), rate=(1.0, 1.5, 2.0),
                  max_gpu=8)
    st = JobAlloc(job, 2, [(0, 2)], 6000, 6000)
    with pytest.raises(ValueError, match="job 'big': free capacity never reaches"):
        allocate_free([st], 0, Profile.from_pairs({0: 6, 100: 1}), 8, 60, cache=cache)
