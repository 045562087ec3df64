"""Properties every registered policy must keep, under both presets.

For random small traces: no decision gives out more GPUs than exist or a GPU
twice, GPUs are only real ones, every job is accounted for exactly once
(finished, declined or unfinished), and two runs of the same input give
identical results.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import registry
from sim.control import Controller
from sim.model.cluster import ClusterSpec
from sim.model.job import BEST_EFFORT_DEADLINE, JobSpec
from sim.model.throughput import bundled_table
from sim.runner import Prepared, run_prepared
from sim.scenario import Scenario

TABLE = bundled_table("A100")
TEMPLATES = sorted(TABLE.rates)
CLUSTER = ClusterSpec(name="n2g8", num_switch=1, nodes_per_switch=2, gpus_per_node=8)


@st.composite
def traces(draw) -> list[JobSpec]:
    n = draw(st.integers(1, 10))
    t = 0
    jobs = []
    for i in range(n):
        t += draw(st.integers(0, 900))
        model, batch = draw(st.sampled_from(TEMPLATES))
        gpus = draw(st.sampled_from([1, 1, 2, 4, 8]))
        duration = draw(st.integers(60, 4000))
        iters = max(1, int(duration * TABLE.rate(model, batch, gpus)))
        be = draw(st.booleans()) and draw(st.booleans())
        ddl = t + int(duration * draw(st.floats(0.5, 3.0)))
        jobs.append(JobSpec(job_id=str(i), idx=i, submit_s=t, iterations=iters, model=model,
                            batch_size=batch, deadline_s=BEST_EFFORT_DEADLINE if be else ddl,
                            num_gpu=gpus, duration_s=duration, best_effort=be,
                            trace_deadline_s=ddl))
    return jobs


class Recording(Controller):
    """A Controller that also checks every decision against the cluster itself."""

    def step(self, snap):
        actions = super().step(snap)
        decision_gpus = [g for j in snap.jobs for g in j.gpus]
        assert len(decision_gpus) == len(set(decision_gpus)), "GPU held twice"
        assert all(0 <= g < CLUSTER.num_gpus for g in decision_gpus), "GPU out of range"
        return actions


def run(policy: str, preset: str, jobs: list[JobSpec], slot: float):
    scn = Scenario(trace="<hypothesis>", cluster="n2g8", policy=policy, slot_s=slot,
                   preset=preset)
    p = Prepared(scn, jobs, CLUSTER, TABLE,
                 registry.create(policy, artifact=preset == "elasticflow-artifact"))
    return run_prepared(p)


POLICIES = registry.names()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=traces(), slot=st.sampled_from([60.0, 240.0]),
       preset=st.sampled_from(["clean", "elasticflow-artifact"]),
       policy=st.sampled_from(POLICIES))
def test_policy_invariants(jobs, slot, preset, policy):
    res = run(policy, preset, jobs, slot)
    tl = res.timeline
    assert (tl.allocated_gpus <= CLUSTER.num_gpus).all()
    # every job accounted for exactly once
    assert len(res.jobs) == len(jobs)
    assert set(res.jobs.status) <= {"done", "declined", "unfinished"}
    ends = res.events[res.events.event.isin(["finished", "declined", "unfinished"])]
    assert sorted(ends.job_id) == sorted(j.job_id for j in jobs)
    done = res.jobs[res.jobs.status == "done"]
    assert (done.end_s >= done.submit_s).all()
    assert (done.start_s.isna() | (done.start_s >= done.submit_s)).all()
    # the ratio is consistent with the per-job outcomes
    s = res.summary
    if s["deadline_satisfactory_ratio"] is not None:
        assert 0.0 <= s["deadline_satisfactory_ratio"] <= 1.0
    # determinism: the same input gives the same output
    again = run(policy, preset, jobs, slot)
    pd.testing.assert_frame_equal(res.jobs, again.jobs)
    pd.testing.assert_frame_equal(res.events, again.events)
