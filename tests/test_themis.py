"""Themis: artifact parity (POLICIES.md 11.1, 11.2), the min-max solver, the greedy pick (section 5)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from sim.model.cluster import ClusterSpec
from sim.model.job import JobSpec
from sim.model.snapshot import JobStatus, JobView, Snapshot
from sim.policies.themis import Themis, ftf_value, solve_ftf
from tests.toy import N1G8, N16G8, TABLE, TOY_JOBS, fig10_jobs, run


# --------------------------------------------------------------------- parity
def test_toy_trace_matches_artifact():
    res = run("themis", TOY_JOBS, N1G8)
    got = [(int(r.gpus_at_end), float(r.end_s)) for r in res.jobs.itertuples()]
    assert got == [(1, 5520.0), (2, 4560.0), (1, 1680.0)]
    assert res.summary["deadline_satisfactory_ratio"] == 0.5


def test_fig10_matches_artifact():
    res = run("themis", fig10_jobs(), N16G8)
    assert res.summary["deadline_satisfactory_ratio"] == pytest.approx(0.99)
    assert res.summary["jct_mean_s"] == pytest.approx(51242.9, abs=0.1)


def test_clean_mode_runs_fig10():
    res = run("themis", fig10_jobs(), N16G8, artifact=False)
    assert res.summary["unfinished"] == 0
    assert res.summary["deadline_satisfactory_ratio"] >= 0.95


# --------------------------------------------------------------------- solver
def lp_feasible(r: float, a, b, d, g, G) -> bool:
    """Is there x in [0, 1]^n with rho_i(x) <= r for all i and sum g x <= G? (one LP)"""
    slope = r * d - a  # rho_i <= r  <=>  slope_i * x_i >= b_i
    if np.any(slope <= 0):
        return False
    n = len(a)
    A = np.vstack([-np.diag(slope), g[None, :]])
    ub = np.concatenate([-b, [G]])
    res = linprog(np.zeros(n), A_ub=A, b_ub=ub, bounds=[(0, 1)] * n, method="highs")
    return res.status == 0


def lp_optimum(a, b, d, g, G) -> float:
    """Smallest feasible r by bisection over LP feasibility (independent of solve_ftf)."""
    lo = float(np.max((a + b) / d))  # x <= 1, so no r below every rho_i(1)
    if lp_feasible(lo, a, b, d, g, G):
        return lo
    hi = lo * 2 + 1
    while not lp_feasible(hi, a, b, d, g, G):
        hi *= 2
    for _ in range(80):
        mid = (lo + hi) / 2
        if lp_feasible(mid, a, b, d, g, G):
            hi = mid
        else:
            lo = mid
    return hi


def random_instance(rng: np.random.Generator):
    n = int(rng.integers(1, 9))
    a = rng.uniform(0, 1e4, n)
    b = rng.uniform(1, 1e4, n)
    d = rng.uniform(1, 1e4, n)
    g = rng.choice([1.0, 2.0, 4.0, 8.0], n)
    G = float(rng.choice([4, 8, 16, 32]))
    return a, b, d, g, G


@pytest.mark.parametrize("seed", range(40))
def test_solver_matches_lp_bisection(seed):
    a, b, d, g, G = random_instance(np.random.default_rng(seed))
    x, r = solve_ftf(a, b, d, g, G)
    assert np.all(x > 0) and np.all(x <= 1)
    assert float(np.dot(g, x)) <= G * (1 + 1e-12)
    assert ftf_value(x, a, b, d) == pytest.approx(r, rel=1e-9)
    true = lp_optimum(a, b, d, g, G)
    assert abs(ftf_value(x, a, b, d) - true) <= 1e-6 * max(1.0, true)


@pytest.mark.parametrize("seed", range(10))
def test_solver_beats_a_brute_force_grid(seed):
    rng = np.random.default_rng(100 + seed)
    a, b, d = rng.uniform(0, 100, 2), rng.uniform(1, 100, 2), rng.uniform(1, 100, 2)
    g, G = np.array([4.0, 8.0]), 8.0
    x, r = solve_ftf(a, b, d, g, G)
    grid = np.linspace(1e-4, 1, 20001)
    x2 = np.minimum(1, (G - g[0] * grid) / g[1])  # the rest of the capacity to job 2
    ok = x2 > 0
    rho = np.maximum((a[0] + b[0] / grid[ok]) / d[0], (a[1] + b[1] / x2[ok]) / d[1])
    assert r <= rho.min() + 1e-9  # never worse than any grid point
    assert rho.min() - r <= 1e-3 * r  # and the grid gets close to it


def test_solver_slack_capacity_gives_full_shares_to_the_bottleneck():
    # everything fits: the optimum is max_i rho_i(1), the worst job gets x = 1
    x, r = solve_ftf([0, 0], [10, 5], [10, 10], [1, 1], 8)
    assert r == pytest.approx(1.0) and x[0] == 1.0 and x[1] == pytest.approx(0.5)


def test_solver_rejects_bad_input():
    with pytest.raises(ValueError):
        solve_ftf([0], [0], [1], [1], 8)


# ------------------------------------------------------------- policy level
G8 = ClusterSpec(name="n1g8", num_switch=1, nodes_per_switch=1, gpus_per_node=8)


def spec(i: int, gpus: int, *, iterations: int = 20_000, duration: int = 5000,
         submit: int = 0) -> JobSpec:
    return JobSpec(job_id=str(i), idx=i, submit_s=submit, iterations=iterations,
                   model="resnet50", batch_size=128, deadline_s=1e9, num_gpu=gpus,
                   duration_s=duration)


def new(s: JobSpec) -> JobView:
    return JobView(s, JobStatus.NEW, (), float(s.iterations))


def snap(t: float, jobs: list[JobView], cluster: ClusterSpec = G8) -> Snapshot:
    return Snapshot(now_s=t, cluster=cluster, table=TABLE, jobs=tuple(jobs), slot_s=240)


def first_fit(order: list[str], sizes: dict[str, int], free: int) -> set[str]:
    out = set()
    for jid in order:
        if free <= 0:
            break
        if sizes[jid] <= free:
            out.add(jid)
            free -= sizes[jid]
    return out


@pytest.mark.parametrize("artifact", [True, False])
def test_running_set_is_first_fit_of_the_share_order(artifact):
    sizes = [8, 4, 4, 2, 1, 8, 2]
    jobs = [spec(i, g, iterations=1000 * (i + 3), submit=10 * i) for i, g in enumerate(sizes)]
    pol = Themis(artifact=artifact)
    d = pol.decide(snap(100, [new(s) for s in jobs]))
    shares = [round(pol.last_x[jid], 6) for jid in pol.order]
    assert shares == sorted(shares, reverse=True)
    want = first_fit(pol.order, {s.job_id: s.num_gpu for s in jobs}, 8)
    assert set(d.alloc) == want
    assert sum(len(g) for g in d.alloc.values()) <= 8


def test_declared_ends_per_round():
    tput = TABLE.rate("resnet50", 128, 1)
    out_of_iters = spec(0, 1, iterations=int(200 * tput), duration=5000)
    short = spec(1, 1, iterations=100_000, duration=100)
    long = spec(2, 1, iterations=100_000, duration=5000)
    pol = Themis(artifact=True)
    d = pol.decide(snap(0, [new(out_of_iters), new(short), new(long)]))
    assert set(d.alloc) == {"0", "1", "2"}
    assert d.end_s == {"0": 240, "1": 100}  # iterations run out: t + S; else t + remaining
    assert d.end_event_s == {"0": 240, "1": 240}  # completed at the next round
    assert d.wake_s == 240


def test_ties_keep_list_order_in_artifact_mode_and_submit_order_in_clean_mode():
    a, b = spec(0, 8, submit=0), spec(1, 8, submit=0)
    for artifact, first in ((True, "1"), (False, "0")):
        pol = Themis(artifact=artifact)
        d = pol.decide(snap(10, [new(b), new(a)]))  # b listed first
        assert set(d.alloc) == {first}


def test_artifact_uses_the_time_of_the_last_event():
    pol = Themis(artifact=True)
    s = spec(0, 1)
    pol.decide(snap(0, [new(s)]))
    running = JobView(s, JobStatus.RUNNING, (0,), 19_000.0, 240.0)
    pol.decide(snap(240, [running]))
    assert pol.t_ev == 0  # no arrival or completion at 240
    pol.decide(snap(480, [running, new(spec(1, 1, submit=400))]))
    assert pol.t_ev == 480
