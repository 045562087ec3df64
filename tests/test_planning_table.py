"""The rates policies plan with in clean mode: the table scaled by the all-reduce factor
of a compact placement, and elastic levels that are never slower than a smaller one."""

from __future__ import annotations

import math

import pytest

from sim import registry
from sim.engine.network import AllReduceComm, load_model_sizes
from sim.model.job import JobSpec
from sim.model.throughput import ThroughputTable, bundled_table
from sim.runner import Prepared, planning_table, run_prepared
from sim.scenario import Scenario
from tests.toy import N16G8

A100 = bundled_table("A100")
NAN = math.nan


def test_rising_levels_drop_counts_no_faster_than_a_smaller_one():
    t = ThroughputTable(gpu_type="A100", columns=(1, 2, 4, 8, 16),
                        rates={("m", 8): (1.0, 2.0, 1.5, NAN, 3.0)})
    assert t.levels("m", 8) == (1, 2, 4, 16)
    assert t.rising_levels("m", 8, 16) == (1, 2, 16)  # 4 is slower than 2; 8 not allowed
    assert t.rising_levels("m", 8, 8) == (1, 2)
    assert t.rising_levels("m", 8, 0) == ()


@pytest.mark.parametrize("gpu_type", ["A100", "T4"])
def test_rising_levels_of_the_bundled_tables(gpu_type):
    table = bundled_table(gpu_type)
    for m, b in table.rates:
        kept = table.rising_levels(m, b, 64)
        assert set(kept) <= set(table.levels(m, b))
        for c in table.levels(m, b):
            faster = all(table.rate(m, b, c) > table.rate(m, b, s)
                         for s in table.levels(m, b) if s < c)
            assert (c in kept) == faster, (m, b, c)


def _prepared(preset: str, comm: str, jobs=(), policy: str = "ef") -> Prepared:
    scn = Scenario(name="t", trace="-", policy=policy, slot_s=60, preset=preset, comm=comm)
    pol = registry.create(policy, None, artifact=preset == "elasticflow-artifact")
    return Prepared(scn, list(jobs), N16G8, A100, pol)


def test_planning_table_scales_multi_node_cells_by_the_compact_all_reduce_factor():
    view = planning_table(_prepared("clean", "allreduce"))
    comm = AllReduceComm(load_model_sizes(), default_MB=100.0)
    for m, b in A100.rates:
        for g in A100.levels(m, b):
            raw = A100.rate(m, b, g)
            if g <= N16G8.gpus_per_node:
                assert view.rate(m, b, g) == raw
            else:
                f = comm.rate_factor(m, raw, tuple(range(g)), N16G8)
                assert view.rate(m, b, g) == pytest.approx(raw * f)
                assert view.rate(m, b, g) < raw
    # vgg16's gradients are large: on 64 GPUs it runs slower than on one node
    assert view.rate("vgg16", 128, 64) < view.rate("vgg16", 128, 8)


@pytest.mark.parametrize("preset, comm", [("elasticflow-artifact", "allreduce"),
                                          ("clean", "none")])
def test_planning_table_is_the_table_without_a_communication_model(preset, comm):
    p = _prepared(preset, comm)
    assert planning_table(p) is p.table


@pytest.mark.parametrize("policy", ["ef", "edf"])  # admission control would decline it
def test_clean_elastic_policies_keep_a_late_job_on_one_node_where_more_gpus_run_slower(
        policy):
    """The runaway this guards against: a job that cannot meet its deadline takes the
    largest level that fits (POLICIES.md 2.3 step 4; EDF: its base quota). Planned with
    the table's rates, vgg16 gets 64 GPUs over 8 nodes, which the all-reduce model makes
    slower than one node of 8; planned with the executor's rates it stays on its fastest
    level, 8."""
    iters = 200_000
    job = JobSpec(job_id="0", idx=0, submit_s=0, iterations=iters, model="vgg16",
                  batch_size=128, deadline_s=600, num_gpu=8, duration_s=1000,
                  trace_deadline_s=600)
    res = run_prepared(_prepared("clean", "allreduce", [job], policy))
    row = res.jobs.iloc[0]
    assert int(row.gpus_at_end) == 8
    alone = iters / A100.rate("vgg16", 128, 8)
    assert alone < row.end_s < alone + 120  # the 8-GPU rate, plus start-up overhead
