"""EDF and EDF with admission control: golden rows from the artifact (POLICIES.md 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import registry
from sim.model.cluster_io import load_cluster
from sim.model.throughput import bundled_table
from sim.policies.efplan import PlanJob, Profile, edf_plan
from sim.runner import Prepared, run_prepared
from sim.scenario import Scenario
from sim.traces import read_trace
from tests.toy import N1G8, TOY_JOBS
from tests.toy import run as run_policy

ROOT = Path(__file__).resolve().parents[1]
A100 = bundled_table("A100")


def run(policy, jobs, cluster, slot):
    return run_policy(policy, jobs, cluster, slot_s=slot)


@pytest.mark.parametrize("policy, rows", [
    ("edf", [(8, 0, 1210), (8, 1210, 2684), (8, 2684, 3185)]),
    ("edf-accessctrl", [(8, 0, 1222), (8, 1222, 2698), (8, 2698, 3201)]),
])
def test_toy_rows_exact(policy, rows):
    res = run(policy, TOY_JOBS, N1G8, 240)
    got = [(int(r.gpus_at_end), int(r.start_s), int(r.end_s)) for r in res.jobs.itertuples()]
    assert got == rows
    assert res.summary["deadline_satisfactory_ratio"] == 1.0


@pytest.mark.parametrize("policy, ratio, jct", [
    ("edf", 0.92, 63_319), ("edf-accessctrl", 0.92, 39_406),
])
def test_figure10(policy, ratio, jct):
    cluster = load_cluster("n16g8")
    jobs = read_trace(ROOT / "traces" / "fig10_100jobs_1500lam.csv", table=A100, cluster=cluster)
    res = run(policy, jobs, cluster, 240)
    assert res.summary["deadline_satisfactory_ratio"] == pytest.approx(ratio, abs=1e-9)
    assert res.summary["jct_mean_s"] == pytest.approx(jct, abs=1.0)
    if policy == "edf-accessctrl":
        assert res.summary["declined_at_arrival"] == 8


def test_edf_ignores_requested_gpus_unless_asked():
    res = run("edf", TOY_JOBS[:1], N1G8, 240)
    assert int(res.jobs.gpus_at_end[0]) == 8  # requested 1, got min(max_gpu, G)
    scn = Scenario(trace="<test>", cluster="n1g8", policy="edf", slot_s=240,
                   preset="elasticflow-artifact", params={"use_requested_gpus": True})
    pol = registry.create("edf", {"use_requested_gpus": True}, artifact=True)
    res = run_prepared(Prepared(scn, TOY_JOBS[:1], N1G8, A100, pol))
    assert int(res.jobs.gpus_at_end[0]) == 1


def test_admission_declines_arrival_that_breaks_a_deadline():
    # job 0 needs the whole cluster until its deadline; an urgent second job cannot fit
    from sim.model.job import JobSpec

    r8 = A100.rate("resnet50", 128, 8)
    j0 = JobSpec(job_id="a", idx=0, submit_s=0, iterations=int(r8 * 2000), model="resnet50",
                 batch_size=128, deadline_s=2100, num_gpu=8, duration_s=2000)
    j1 = JobSpec(job_id="b", idx=1, submit_s=10, iterations=int(r8 * 1000), model="resnet50",
                 batch_size=128, deadline_s=1500, num_gpu=8, duration_s=1000)
    res = run("edf-accessctrl", [j0, j1], N1G8, 60)
    status = dict(zip(res.jobs.job_id, res.jobs.status))
    assert status == {"a": "done", "b": "declined"}
    assert res.summary["deadline_satisfactory_ratio"] == 0.5
    plain = run("edf", [j0, j1], N1G8, 60)
    assert (plain.jobs.status == "done").all()  # without admission both run


def test_edf_plan_artifact_overwrite_vs_clean():
    rates = (3.6553729658054332, 6.619528678370847, 11.224201427896464)
    job = PlanJob(key="j", work=3000, deadline=2000, levels=(1, 2, 4), rate=rates, max_gpu=4)
    for bug, expected in [(True, {0: 0, 480: 4}), (False, {0: 0, 480: 8})]:
        F = Profile.from_pairs({0: 4, 480: 8})
        edf_plan(job, 0, F, 8, 240, artifact_bug=bug)
        assert F.as_dict() == expected
