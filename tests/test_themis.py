"""Themis: artifact parity (POLICIES.md 11.1, 11.2), the min-max solver, the greedy pick (section 5)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog, minimize

from sim.model.cluster import ClusterSpec
from sim.model.job import JobSpec
from sim.model.snapshot import JobStatus, JobView, Snapshot
from sim.policies.themis import Themis, central_shares, ftf_value, solve_ftf
from tests import toy
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


# ------------------------------------------------------- analytic centre
def slack_instance(rng: np.random.Generator):
    """An instance whose capacity is slack at r* (one job far behind the others)."""
    n = int(rng.integers(2, 12))
    a = rng.uniform(0, 1e3, n)
    b = rng.uniform(1, 1e3, n)
    d = rng.uniform(1e3, 1e5, n)
    d[0] = 1.0  # the bottleneck: rho_0(1) = a_0 + b_0 dwarfs everyone else's
    g = rng.choice([1.0, 2.0, 4.0, 8.0], n)
    return a, b, d, g, float(g.sum()) * 0.6 + 8


@pytest.mark.parametrize("seed", range(20))
def test_centre_is_an_interior_optimum_solving_its_stationarity_equations(seed):
    a, b, d, g, G = slack_instance(np.random.default_rng(200 + seed))
    m, r = solve_ftf(a, b, d, g, G)
    x, r2 = solve_ftf(a, b, d, g, G, center=True)
    assert r2 == r and x[0] == 1.0 and m[0] == pytest.approx(1.0, abs=1e-12)
    free = m < 1 - 1e-12
    assert np.all(x[free] > m[free]) and np.all(x[free] < 1)
    assert float(np.dot(g, x)) < G  # strictly inside the capacity
    assert ftf_value(x, a, b, d) == pytest.approx(r, rel=1e-9)  # still optimal
    lam = 1 / (G - np.dot(g, x))
    xf, mf = x[free], m[free]
    res = 1.5 / (xf - mf) - 1 / (1 - xf) - g[free] * lam
    assert np.max(np.abs(res * (xf - mf))) < 1e-9


def test_centre_maximises_the_barrier_of_the_artifacts_conic_program():
    # independent check: maximise the log-barrier of cvxpy's canonical form over the
    # optimal face (t = r*) directly, auxiliary cone variables u_i included:
    #   log x + log(1 - x) + log(r* - (a + b u) / d) + 1/2 log(x u - 1), + log(G - g.x)
    a, b, d = np.array([50.0, 3.0, 5.0, 2.0]), np.array([40.0, 7.0, 2.0, 9.0]), \
        np.array([1.0, 900.0, 400.0, 700.0])
    g, G = np.array([1.0, 1.0, 4.0, 2.0]), 6.0
    x_c, r = solve_ftf(a, b, d, g, G, center=True)
    free = slice(1, None)

    def neg_barrier(z):
        x, u = z[:3], z[3:]
        terms = [x, 1 - x, r - (a[free] + b[free] * u) / d[free], x * u - 1,
                 [G - g[0] - np.dot(g[free], x)]]
        if any(np.any(np.asarray(t) <= 0) for t in terms):
            return np.inf
        return -(np.sum(np.log(x)) + np.sum(np.log(1 - x)) + np.sum(np.log(terms[2]))
                 + 0.5 * np.sum(np.log(terms[3])) + np.log(terms[4][0]))

    x0 = np.full(3, 0.5)
    u_hi = (r * d[free] - a[free]) / b[free]
    z0 = np.concatenate([x0, 0.5 * (1 / x0 + u_hi)])
    z = minimize(neg_barrier, z0, method="Nelder-Mead",
                 options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 40000}).x
    assert x_c[0] == 1.0
    assert np.max(np.abs(z[:3] - x_c[free])) < 1e-5


def test_centre_favours_small_jobs_and_follows_the_smallest_shares_per_size():
    m = np.array([1.0, 1e-6, 2e-6, 1e-6, 2e-6])
    g = np.array([1.0, 1.0, 1.0, 8.0, 8.0])
    x = central_shares(m, g, 20.0)
    assert x[0] == 1.0
    assert x[2] > x[1] > x[4] > x[3]  # size first, then the smallest share
    # no room left between the smallest shares and the capacity: the unique optimum
    assert np.array_equal(central_shares(m, g, float(np.dot(g, m))), m)


@pytest.mark.parametrize("artifact,center", [(True, True), (False, False)])
def test_optimum_defaults_to_the_centre_under_the_artifact_preset(artifact, center):
    assert Themis(artifact=artifact)._center() is center
    params = Themis.make_params({"optimum": "smallest" if center else "center"})
    assert Themis(params, artifact=artifact)._center() is not center
    with pytest.raises(ValueError, match="optimum"):
        Themis(Themis.make_params({"optimum": "ecos"}), artifact=artifact)._center()


@pytest.mark.slow
def test_fig8a_matches_the_paper():
    s = toy.run_fig8a("themis").summary
    # paper plot 0.312 (the artifact at HEAD does not finish Figure 8(a)); ECOS on the
    # artifact's program and the analytic centre meet the same 61 deadlines
    assert s["deadline_satisfactory_ratio"] == pytest.approx(0.313, abs=0.02)
    assert s["deadline_satisfactory_ratio"] == pytest.approx(61 / 195)
    smallest = toy.run_fig8a("themis", params={"optimum": "smallest"}).summary
    assert smallest["deadline_satisfactory_ratio"] == pytest.approx(46 / 195)


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


# ------------------------------------------------- small-n float loops
def artifact_like_instance(rng: np.random.Generator, n: int):
    """Shapes the preset produces: ``a`` up to days, ``d`` in iterations per share
    (large), a few jobs far behind (the bottleneck) and many sizes."""
    a = rng.uniform(0, 3e5, n)
    b = rng.uniform(1, 1e5, n) * rng.choice([1e-6, 1.0, 1.0, 1.0], n)
    d = rng.uniform(1e2, 1e7, n)
    d[rng.integers(0, n)] = rng.uniform(0.5, 50)
    g = rng.choice([1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 32.0], n)
    G = float(rng.choice([8, 64, 256, 512, 1024]))
    return a, b, d, g, G


@pytest.mark.parametrize("seed", range(30))
def test_small_n_loops_give_numpys_bits(seed, monkeypatch):
    """Up to SMALL_N jobs the solver runs as float loops; they must give exactly the bits
    of the numpy code (which SMALL_N = 0 forces), or the artifact's share order could move."""
    from sim.policies import themis

    rng = np.random.default_rng(900 + seed)
    cases = []
    for n in range(1, themis.SMALL_N + 1):
        cases.append(artifact_like_instance(rng, n))
        cases.append(random_instance(rng) if n < 9 else slack_instance(rng))
    got = [(solve_ftf(*c), solve_ftf(*c, center=True)) for c in cases]
    ms = [(np.minimum(1.0, rng.uniform(0, 1.2, n)), rng.choice([1.0, 4.0, 8.0, 12.0], n))
          for n in range(1, themis.SMALL_N + 1)]
    ms = [(m, g, float(g.sum()) * rng.uniform(0.3, 1.2)) for m, g in ms]
    cen = [central_shares(*c) for c in ms]
    monkeypatch.setattr(themis, "SMALL_N", 0)
    for c, ((x, r), (xc, rc)) in zip(cases, got):
        x0, r0 = solve_ftf(*c)
        xc0, rc0 = solve_ftf(*c, center=True)
        assert (x.tobytes(), r, xc.tobytes(), rc) == (x0.tobytes(), r0, xc0.tobytes(), rc0)
    for c, x in zip(ms, cen):
        assert x.tobytes() == central_shares(*c).tobytes()


def test_reusing_last_rounds_placement_changes_nothing(monkeypatch):
    """The artifact re-places every picked job each round; when the sequence of sizes
    was placed in a recent round, the policy reuses that placement. Same jobs, events and timeline
    as placing every round from scratch."""
    from sim.model import placement

    real = placement.PlacementMemo.place_all
    hits = {True: 0, False: 0}

    def counted(forget: bool):
        def place_all(self, cluster, sizes_in_order):
            out = real(self, cluster, sizes_in_order)
            hits[forget] = max(hits[forget], self.hits)
            if forget:
                self._ids.clear()  # next round places from scratch again
            return out
        return place_all

    monkeypatch.setattr(placement.PlacementMemo, "place_all", counted(False))
    res = run("themis", fig10_jobs(), N16G8)
    monkeypatch.setattr(placement.PlacementMemo, "place_all", counted(True))
    scratch = run("themis", fig10_jobs(), N16G8)
    assert hits[False] > 100 and hits[True] == 0
    assert res.jobs.equals(scratch.jobs)
    assert res.events.equals(scratch.events) and res.timeline.equals(scratch.timeline)
