"""Executor semantics: exact completions, overheads on change, checkpoint moves."""

from __future__ import annotations

import pytest

from sim.control import Controller
from sim.engine.overhead import ChangeOverhead, NoOverhead, artifact_overhead_s
from sim.engine.sim import EngineConfig, SimExecutor
from sim.model.cluster import ClusterSpec, LinkSpec
from sim.model.decision import Decision
from sim.model.job import JobSpec
from sim.model.snapshot import Snapshot
from sim.model.throughput import bundled_table
from sim.policies.base import Policy

A100 = bundled_table("A100")
RATE1 = A100.rate("resnet50", 128, 1)
SLOW = {"intra_node": LinkSpec(1e6, 0.0), "node_switch": LinkSpec(10.0, 0.5),
        "switch_switch": LinkSpec(1e6, 0.0)}
TWO = ClusterSpec(name="n2g1", num_switch=1, nodes_per_switch=2, gpus_per_node=1, links=SLOW)
JOB = JobSpec(job_id="j", idx=0, submit_s=0, iterations=int(RATE1 * 1000), model="resnet50",
              batch_size=128, deadline_s=5000, num_gpu=1, duration_s=1000)


class Mover(Policy):
    """GPU 0 until t=100, then GPU 1 (another node): a migration."""

    NAME = "mover-test"

    def decide(self, snap: Snapshot) -> Decision:
        if not snap.jobs:
            return Decision()
        gpu = (0,) if snap.now_s < 100 else (1,)
        return Decision(alloc={"j": gpu}, wake_s=100.0 if snap.now_s < 100 else None)


def run(policy, overhead, checkpoint_MB=None):
    ex = SimExecutor([JOB], TWO, A100, Controller(policy), config=EngineConfig(),
                     overhead=overhead, checkpoint_MB=checkpoint_MB)
    ex.run()
    return ex


def test_exact_completion_without_overhead():
    ex = run(Mover(), NoOverhead())
    assert ex.runs["j"].finish_s == pytest.approx(JOB.iterations / RATE1)


def test_overhead_charged_on_start_and_on_migration_only():
    ex = run(Mover(), ChangeOverhead())
    o_start = artifact_overhead_s(1, restart=True, cached=False, cluster_gpus=2)
    o_move = artifact_overhead_s(1, restart=False, cached=False, cluster_gpus=2)
    assert ex.runs["j"].overhead_total_s == pytest.approx(o_start + o_move)
    assert ex.runs["j"].finish_s == pytest.approx(JOB.iterations / RATE1 + o_start + o_move)


def test_migration_waits_for_checkpoint_over_the_network():
    size = 200.0  # MB over a 10 MB/s node uplink and downlink, 0.5 s latency each
    ex = run(Mover(), ChangeOverhead(), checkpoint_MB=lambda spec: size)
    o_start = artifact_overhead_s(1, restart=True, cached=False, cluster_gpus=2)
    copy = size / 10.0 + 1.0  # both links run at 10 MB/s in series; two latencies
    # the restart overhead of the move overlaps the copy, so the copy time is what counts
    expected = JOB.iterations / RATE1 + o_start + copy
    assert ex.runs["j"].finish_s == pytest.approx(expected, rel=1e-6)
    kinds = [e[1] for e in ex.rec.events]
    assert "checkpoint" in kinds and "checkpoint_arrived" in kinds


class Slicer(Policy):
    """Time-slices the one job: GPU 0 until 100, none until 200, then GPU 0 (or 1) again."""

    NAME = "slicer-test"

    def __init__(self, back_on: int, **kw) -> None:
        super().__init__(**kw)
        self.back_on = back_on

    def decide(self, snap: Snapshot) -> Decision:
        if not snap.jobs:
            return Decision()
        t = snap.now_s
        if t < 100:
            return Decision(alloc={"j": (0,)}, wake_s=100.0)
        if t < 200:
            return Decision(alloc={}, wake_s=200.0)
        return Decision(alloc={"j": (self.back_on,)})


@pytest.mark.parametrize("suspend", [False, True])
@pytest.mark.parametrize("back_on", [0, 1])
def test_suspended_job_resuming_where_it_left_pays_only_the_warm_cost(suspend, back_on):
    ex = run(Slicer(back_on), ChangeOverhead(suspend=suspend))
    o_start = artifact_overhead_s(1, restart=True, cached=False, cluster_gpus=2)
    warm = artifact_overhead_s(1, restart=True, cached=True, cluster_gpus=2)
    o_resume = warm if (suspend and back_on == 0) else o_start
    assert warm < o_start
    assert ex.runs["j"].overhead_total_s == pytest.approx(o_start + o_resume)
    # 100 s of the first interval minus the start cost ran; the rest after 200 + resume
    expected = 200 + o_resume + JOB.iterations / RATE1 - (100 - o_start)
    assert ex.runs["j"].finish_s == pytest.approx(expected)


def test_only_suspending_policies_get_the_warm_resume():
    from sim import registry
    from sim.runner import Prepared, engine_settings
    from sim.scenario import Scenario

    for name, suspend in (("gandiva", True), ("dlas-gpu", False), ("ef", False)):
        scn = Scenario(name="t", trace="-", policy=name, slot_s=60, preset="clean")
        p = Prepared(scn, [JOB], TWO, A100, registry.create(name, None, artifact=False))
        assert engine_settings(p)[1].suspend is suspend
