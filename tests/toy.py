"""The toy trace of POLICIES.md 11.1, shared by several tests."""

from sim.model.cluster import ClusterSpec
from sim.model.job import BEST_EFFORT_DEADLINE, JobSpec

TOY_CSV = """job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration,best_effort
0,0,20000,resnet50,4000,128,1,5471,0
1,100,20000,vgg16,6000,128,2,4103,0
2,200,5000,bert,3000,128,1,1398,1
"""

TOY_JOBS = [
    JobSpec(job_id="0", idx=0, submit_s=0, iterations=20000, model="resnet50", batch_size=128,
            deadline_s=4000, num_gpu=1, duration_s=5471, trace_deadline_s=4000),
    JobSpec(job_id="1", idx=1, submit_s=100, iterations=20000, model="vgg16", batch_size=128,
            deadline_s=6000, num_gpu=2, duration_s=4103, trace_deadline_s=6000),
    JobSpec(job_id="2", idx=2, submit_s=200, iterations=5000, model="bert", batch_size=128,
            deadline_s=BEST_EFFORT_DEADLINE, num_gpu=1, duration_s=1398, best_effort=True,
            trace_deadline_s=3000),
]

N1G8 = ClusterSpec(name="n1g8", num_switch=1, nodes_per_switch=1, gpus_per_node=8)

# --- helpers shared by the policy tests -------------------------------------------
from pathlib import Path  # noqa: E402

from sim import registry  # noqa: E402
from sim.model.throughput import bundled_table  # noqa: E402
from sim.runner import Prepared, RunResult, run_prepared  # noqa: E402
from sim.scenario import Scenario  # noqa: E402

FIG10 = Path(__file__).resolve().parents[1] / "traces" / "fig10_100jobs_1500lam.csv"
N16G8 = ClusterSpec(name="n16g8", num_switch=1, nodes_per_switch=16, gpus_per_node=8)
TABLE = bundled_table("A100")


def run(name: str, jobs: list[JobSpec], cluster: ClusterSpec, *, artifact: bool = True,
        slot_s: float = 240, params: dict | None = None, table=None) -> RunResult:
    """Run policy ``name`` on ``jobs`` (artifact preset by default, no comm slowdown)."""
    preset = "elasticflow-artifact" if artifact else "clean"
    scn = Scenario(name="t", trace="-", policy=name, slot_s=slot_s, preset=preset, comm="none",
                   params=dict(params or {}))
    policy = registry.create(name, params, artifact=artifact)
    return run_prepared(Prepared(scn, jobs, cluster, table or TABLE, policy))


def rows(res: RunResult) -> list[tuple[int, float, float]]:
    """(GPUs at completion, start, end) per job, in trace order."""
    return [(int(r.gpus_at_end), float(r.start_s), float(r.end_s))
            for r in res.jobs.itertuples()]


def fig10_jobs() -> list[JobSpec]:
    from sim.traces import read_trace

    return read_trace(FIG10, table=TABLE, cluster=N16G8)


def run_fig8a(name: str, **kw) -> RunResult:
    """Run ``name`` on Figure 8(a): elasticVpollux_e (195 jobs) on n16g4 T4, slot 60."""
    from sim.model.cluster_io import load_cluster
    from sim.traces import read_trace

    t4 = bundled_table("T4")
    cluster = load_cluster("n16g4")
    jobs = read_trace(FIG10.parent / "elasticVpollux_e.csv", table=t4, cluster=cluster)
    return run(name, jobs, cluster, slot_s=60, table=t4, **kw)
