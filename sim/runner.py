"""Build and run one scenario; write its output folder.

This module wires the pieces: it loads the validated inputs, creates the policy
through the registry, turns the preset into engine settings, runs the
:class:`~sim.engine.sim.SimExecutor` and writes the results. It is, with the
CLI, the only place that imports the engine.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sim import registry
from sim.atomic import atomic_dir
from sim.control import Controller
from sim.engine.overhead import ArtifactOverhead, ChangeOverhead, OverheadModel
from sim.engine.sim import EngineConfig, SimExecutor
from sim.errors import InputError
from sim.metrics.summary import job_table, summarise
from sim.model.cluster import ClusterSpec
from sim.model.job import JobSpec
from sim.model.throughput import ThroughputTable, bundled_table
from sim.policies.base import Policy
from sim.scenario import Scenario

EVENT_COLUMNS = ["time_s", "event", "job_id", "gpus", "detail"]
TIMELINE_COLUMNS = ["time_s", "allocated_gpus", "running_jobs", "queued_jobs"]


@dataclass
class Prepared:
    scenario: Scenario
    jobs: list[JobSpec]
    cluster: ClusterSpec
    table: ThroughputTable
    policy: Policy


@dataclass
class RunResult:
    scenario: Scenario
    jobs: pd.DataFrame
    events: pd.DataFrame
    timeline: pd.DataFrame
    summary: dict[str, Any]


def prepare(scn: Scenario) -> Prepared:
    """Load and validate every input of ``scn`` (raises InputError, writes nothing)."""
    from sim.model.cluster_io import cluster_from_dict, load_cluster
    from sim.traces import generate_trace, read_trace

    if isinstance(scn.cluster, dict):
        cluster = cluster_from_dict(scn.cluster, source=scn.source or "<scenario>")
    else:
        c = scn.cluster
        cluster = load_cluster(scn.path(c) if scn.path(c).exists() else c)
    gpu_type = scn.gpu_type or cluster.gpu_type or "A100"
    table = bundled_table(gpu_type)
    if isinstance(scn.trace, dict):
        gen = dict(scn.trace["generate"])
        gen.pop("gpu_type", None)
        gen.setdefault("seed", scn.seed)
        jobs = generate_trace(table=table, **gen)
    else:
        p = scn.path(scn.trace)
        if not p.exists():
            raise InputError("trace file not found", file=scn.trace, field="trace")
        jobs = read_trace(p, table=table, cluster=cluster)
    artifact = scn.preset == "elasticflow-artifact"
    policy = registry.create(scn.policy, scn.params, artifact=artifact, source=scn.source or None)
    if artifact and policy.ARTIFACT.all_strict:
        jobs = [all_strict(s) for s in jobs]
    return Prepared(scn, jobs, cluster, table, policy)


def all_strict(spec: JobSpec) -> JobSpec:
    """The artifact's Chronus converter (POLICIES.md 10.3): every job is strict, a
    best-effort job keeps the deadline written in its trace row."""
    if not spec.best_effort:
        return spec
    ddl = spec.trace_deadline_s if spec.trace_deadline_s is not None else spec.deadline_s
    return dataclasses.replace(spec, best_effort=False, deadline_s=float(ddl))


#: A checkpoint holds the weights plus two Adam moments: three times the gradient size.
CHECKPOINT_FACTOR = 3.0


def _checkpoint_MB(p: Prepared) -> Callable[[JobSpec], float] | None:
    if p.scenario.preset == "elasticflow-artifact" or p.scenario.comm == "none":
        return None
    from sim.engine.network import load_model_sizes

    sizes = load_model_sizes()
    return lambda spec: CHECKPOINT_FACTOR * sizes.get(spec.model, 100.0)


def engine_settings(p: Prepared) -> tuple[EngineConfig, OverheadModel, Any]:
    """The preset as engine knobs: (config, overhead model, communication factor)."""
    scn = p.scenario
    if scn.preset == "elasticflow-artifact":
        tr = p.policy.ARTIFACT
        cfg = EngineConfig(instants=tr.instants, completion="declared", slot_s=scn.slot_s,
                           detect_done=tr.detect_done, judge=tr.judge,
                           idle_step_s=tr.idle_step_s,
                           queued_ends_for_all=tr.queued_ends_for_all,
                           wake_rule=tr.wake_rule, clip_at_real_end=tr.clip_at_real_end)
        ov = ArtifactOverhead(rule=tr.overhead, extends_end=tr.overhead_extends_end, carry=False)
        return cfg, ov, None
    cfg = EngineConfig(instants="exact", completion="exact", slot_s=scn.slot_s)
    if scn.horizon_s is not None:
        cfg.horizon_s = float(scn.horizon_s)
    comm = _comm_factor(p) if scn.comm == "allreduce" else None
    return cfg, ChangeOverhead(suspend=p.policy.PREEMPT == "suspend"), comm


def planning_table(p: Prepared) -> ThroughputTable:
    """The rates policies plan with: what the executor will deliver.

    Under the all-reduce communication model a job on several nodes runs slower than
    the (single-node) table says; a planner that does not know it keeps promising
    deadlines the jobs then miss. So in clean mode with ``comm: allreduce`` each cell
    is scaled by the all-reduce factor of the most compact placement of that many
    GPUs (whole nodes, as few switches as possible). A job placed less compactly still
    runs at its real placement's speed. Otherwise the table is used as is.
    """
    scn = p.scenario
    if scn.preset == "elasticflow-artifact" or scn.comm != "allreduce":
        return p.table
    model = _allreduce()
    cluster, table = p.cluster, p.table
    G = cluster.num_gpus

    def compact(m: str, b: int, g: int) -> float:
        return model.rate_factor(m, table.rate(m, b, g), tuple(range(min(g, G))), cluster)

    return table.scaled(compact, f"{table.source} x all-reduce (compact placement)")


def _allreduce():
    from sim.engine.network import AllReduceComm, load_model_sizes

    return AllReduceComm(load_model_sizes(), default_MB=100.0)


def _comm_factor(p: Prepared) -> Callable[[JobSpec, tuple[int, ...]], float]:
    model = _allreduce()
    cluster, table = p.cluster, p.table
    gpn, nps = cluster.gpus_per_node, cluster.nodes_per_switch
    cache: dict[tuple, float] = {}

    def factor(spec: JobSpec, gpus: tuple[int, ...]) -> float:
        nodes = {g // gpn for g in gpus}
        if len(nodes) <= 1:
            return 1.0
        key = (spec.model, spec.batch_size, len(gpus), len(nodes), len({n // nps for n in nodes}))
        f = cache.get(key)
        if f is None:
            rate = table.rate(spec.model, spec.batch_size, len(gpus))
            f = cache[key] = model.rate_factor(spec.model, rate, gpus, cluster)
        return f

    return factor


def run_scenario(
    scn: Scenario, *, progress: Callable[[float, int, int], None] | None = None
) -> RunResult:
    """Run one scenario in simulation and return its tables and summary."""
    p = prepare(scn)
    return run_prepared(p, progress=progress)


def run_prepared(
    p: Prepared, *, progress: Callable[[float, int, int], None] | None = None,
    overhead: OverheadModel | None = None,
) -> RunResult:
    """Simulate ``p``; ``overhead`` replaces the preset's overhead model (fidelity replay)."""
    cfg, ov, comm = engine_settings(p)
    if overhead is not None:
        ov = overhead
    ex = SimExecutor(p.jobs, p.cluster, p.table, Controller(p.policy), config=cfg, overhead=ov,
                     comm_factor=comm, work=p.policy.WORK, progress=progress,
                     checkpoint_MB=_checkpoint_MB(p), plan_table=planning_table(p))
    t0 = time.perf_counter()
    ex.run()
    wall = time.perf_counter() - t0
    jobs = job_table(ex.runs.values())
    events = pd.DataFrame(ex.rec.events, columns=EVENT_COLUMNS)
    timeline = pd.DataFrame(ex.rec.timeline, columns=TIMELINE_COLUMNS)
    summary = summarise(jobs, timeline, p.cluster.num_gpus)
    summary.update(run_fields(p, ex.instant, wall))
    return RunResult(p.scenario, jobs, events, timeline, summary)


def run_fields(p: Prepared, instants: int, wall_s: float) -> dict[str, Any]:
    """What a GPU-job run's summary says about the run itself (simulated or real)."""
    return {
        "policy": p.scenario.policy,
        "preset": p.scenario.preset,
        "cluster": p.cluster.name,
        "num_gpus": p.cluster.num_gpus,
        "gpu_type": p.table.gpu_type,
        "slot_s": p.scenario.slot_s,
        "instants": instants,
        "wall_s": wall_s,
    }


def write_run(result: RunResult, out_dir: str | Path) -> Path:
    """Write the run's folder atomically: all files appear together, or none do."""
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        (tmp / "scenario.yaml").write_text(
            yaml.safe_dump(result.scenario.resolved(), sort_keys=False))
        result.jobs.to_csv(tmp / "jobs.csv", index=False)
        result.events.to_csv(tmp / "events.csv", index=False)
        result.timeline.to_csv(tmp / "timeline.csv", index=False)
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")
    return out
