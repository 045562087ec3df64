"""Tiresias (dlas-gpu): artifact parity (POLICIES.md 11.1, 11.2) and queue mechanics (section 4)."""

from __future__ import annotations

import math

import pytest

from sim.model.cluster import ClusterSpec
from sim.model.job import JobSpec
from sim.model.snapshot import JobStatus, JobView, Snapshot
from sim.policies.tiresias import Tiresias, TiresiasParams, restart_overhead_s
from tests.toy import N1G8, N16G8, TABLE, TOY_JOBS, fig10_jobs, rows, run


# --------------------------------------------------------------------- parity
def test_toy_trace_matches_artifact():
    res = run("dlas-gpu", TOY_JOBS, N1G8)
    assert rows(res) == [(1, 0.0, 5475.0), (2, 240.0, 4349.0), (1, 240.0, 1638.0)]
    assert res.summary["deadline_satisfactory_ratio"] == 0.5


def test_toy_instants_match_artifact():
    # 0: job 0; 240: jobs 1, 2 (coalesced); 1638: job 2 ends; 2567: job 1 demoted
    # (artifact jump 1638 + ceil((3250 - 1392) / 2)); 3254: job 0 demoted; 4349, 5475: ends
    res = run("dlas-gpu", TOY_JOBS, N1G8)
    assert list(res.timeline.time_s) == [0, 240, 1638, 2567, 3254, 4349, 5475]


def test_fig10_ratio_matches_artifact():
    res = run("dlas-gpu", fig10_jobs(), N16G8)
    assert res.summary["deadline_satisfactory_ratio"] == pytest.approx(1.00)
    assert res.summary["unfinished"] == 0


def test_fig10_mean_jct_matches_artifact():
    res = run("dlas-gpu", fig10_jobs(), N16G8)
    assert res.summary["jct_mean_s"] == pytest.approx(51045.4, abs=0.1)


def test_clean_mode_runs_fig10():
    res = run("dlas-gpu", fig10_jobs(), N16G8, artifact=False)
    assert res.summary["unfinished"] == 0
    assert (res.jobs.status == "done").all()


# ---------------------------------------------------------------- unit level
G8 = ClusterSpec(name="n1g8", num_switch=1, nodes_per_switch=1, gpus_per_node=8)


def spec(i: int, gpus: int = 1, duration: int = 10_000, submit: int = 0) -> JobSpec:
    return JobSpec(job_id=str(i), idx=i, submit_s=submit, iterations=10_000, model="resnet50",
                   batch_size=128, deadline_s=1e9, num_gpu=gpus, duration_s=duration)


def view(s: JobSpec, status: JobStatus, executed: float = 0.0,
         gpus: tuple[int, ...] = ()) -> JobView:
    return JobView(s, status, gpus, 0.0, executed, executed * s.num_gpu)


def snap(t: float, jobs: list[JobView], cluster: ClusterSpec = G8, instant: int = 1,
         slot_s: float = 240) -> Snapshot:
    return Snapshot(now_s=t, cluster=cluster, table=TABLE, jobs=tuple(jobs), instant=instant,
                    slot_s=slot_s)


def running(s: JobSpec, executed: float, first_gpu: int = 0) -> JobView:
    return view(s, JobStatus.RUNNING, executed, tuple(range(first_gpu, first_gpu + s.num_gpu)))


def test_demotion_by_gpu_seconds_one_queue_per_update():
    pol = Tiresias(artifact=True)
    a, b, c = spec(0, 1), spec(1, 2), spec(2, 1)
    pol.decide(snap(0, [view(a, JobStatus.NEW), view(b, JobStatus.NEW), view(c, JobStatus.NEW)]))
    assert pol.queues == [["0", "1", "2"], [], []]
    # a: 3000 GPU-s (stays), b: 1700 s x 2 GPUs = 3400 GPU-s (demoted), c: 9000 GPU-s is past
    # both limits but moves one queue per update
    pol.decide(snap(100, [running(a, 3000), running(b, 1700, 1), running(c, 9000, 3)]))
    assert pol.queue_of == {"0": 0, "1": 1, "2": 1}
    pol.decide(snap(200, [running(a, 3000), running(b, 1700, 1), running(c, 9000, 3)]))
    assert pol.queue_of == {"0": 0, "1": 1, "2": 2}


def test_queue_never_goes_up_without_starvation_knob():
    pol = Tiresias(artifact=True)
    a = spec(0, 1)
    pol.decide(snap(0, [view(a, JobStatus.NEW)]))
    pol.decide(snap(10, [running(a, 4000)]))
    assert pol.queue_of["0"] == 1
    # waiting for a very long time does not promote it
    pol.decide(snap(1e6, [view(a, JobStatus.PAUSED, 4000)]))
    assert pol.queue_of["0"] == 1


def test_skip_ahead_and_preemption():
    pol = Tiresias(artifact=True)
    big, small = spec(0, 8), spec(1, 2)
    pol.decide(snap(0, [view(big, JobStatus.NEW)]))
    d = pol.decide(snap(10, [running(big, 10), view(small, JobStatus.NEW)]))
    assert set(d.alloc) == {"0"}  # small waits behind the running 8-GPU job (FIFO in q0)
    # big falls to queue 1; small (queue 0) now comes first and big no longer fits
    d = pol.decide(snap(20, [running(big, 500), view(small, JobStatus.WAITING)]))
    assert set(d.alloc) == {"1"}
    assert pol.queues == [["1"], ["0"], []]
    # a job that does not fit does not block smaller ones behind it (skip-ahead)
    new4, new1 = spec(2, 8), spec(3, 1)
    d = pol.decide(snap(30, [view(big, JobStatus.PAUSED, 500), running(small, 10),
                             view(new4, JobStatus.NEW), view(new1, JobStatus.NEW)]))
    assert set(d.alloc) == {"1", "3"}


def test_running_jobs_move_before_waiting_ones():
    pol = Tiresias(artifact=True)
    a, b, c = spec(0, 4), spec(1, 8), spec(2, 4)
    d = pol.decide(snap(0, [view(a, JobStatus.NEW), view(b, JobStatus.NEW),
                            view(c, JobStatus.NEW)]))
    assert set(d.alloc) == {"0", "2"}
    assert pol.queues[0] == ["0", "2", "1"]


def test_artifact_declares_only_the_earliest_end_event():
    pol = Tiresias(artifact=True)
    a, b = spec(0, 1, duration=1000), spec(1, 1, duration=2000)
    d = pol.decide(snap(0, [view(a, JobStatus.NEW), view(b, JobStatus.NEW)], instant=0))
    assert d.end_s == {"0": 1000} and d.end_event_s == {"0": 1000}
    # both ends inside the next slot: both processed at t + S, each logging its exact end
    d = pol.decide(snap(900, [running(a, 900), running(b, 1850, 1)]))
    assert d.end_s == {"0": 1000, "1": 1050}
    assert d.end_event_s == {"0": 1140, "1": 1140}


def test_restart_round_adds_overhead_to_predicted_end():
    pol = Tiresias(artifact=True)
    a = spec(0, 2, duration=1000)
    pol.decide(snap(0, [view(a, JobStatus.NEW)], instant=0))
    d = pol.decide(snap(500, [running(a, 400)], instant=240))  # 240 % int(S) == 0
    assert restart_overhead_s(2, 8) == 2 + 27 + 2 * 2
    assert d.end_s == {"0": 500 + 600 + 33}
    d = pol.decide(snap(600, [running(a, 500)], instant=241))
    assert d.end_s == {"0": 600 + 500}


def test_jump_formula_artifact_and_clean():
    # 2-GPU job in queue 0 with 100 s attained run time (200 GPU-s) at t = 1000
    for artifact, want in ((True, 1000 + math.ceil((3250 - 100) / 2)),
                           (False, 1000 + (3250 - 200) / 2)):
        pol = Tiresias(artifact=artifact)
        a = spec(0, 2)
        pol.decide(snap(0, [view(a, JobStatus.NEW)], instant=0))
        d = pol.decide(snap(1000, [running(a, 100)]))
        assert d.wake_s == want
    # artifact: a jump closer than a slot is pushed to t + S
    pol = Tiresias(artifact=True)
    a = spec(0, 1)
    pol.decide(snap(0, [view(a, JobStatus.NEW)], instant=0))
    assert pol.decide(snap(100, [running(a, 3200)])).wake_s == 100 + 240


def test_starvation_knob_promotes_and_resets_attained_service():
    pol = Tiresias(TiresiasParams(solve_starvation=1.0), artifact=True)
    a, b = spec(0, 8), spec(1, 8)
    pol.decide(snap(0, [view(a, JobStatus.NEW)]))
    pol.decide(snap(500, [running(a, 500)]))  # 4000 GPU-s: queue 1
    assert pol.queue_of["0"] == 1
    pol.decide(snap(600, [running(a, 600), view(b, JobStatus.NEW)]))  # b (q0) preempts a
    d = pol.decide(snap(1000, [view(a, JobStatus.PAUSED, 600), running(b, 400)]))
    assert pol.queue_of["0"] == 1 and set(d.alloc) == {"1"}
    # promotion due at 600 + 1 x 600 s of waiting, pushed to a slot after now
    assert d.wake_s == 1000 + 240
    d = pol.decide(snap(1200, [view(a, JobStatus.PAUSED, 600), running(b, 600)]))
    assert pol.queue_of["0"] == 0
    assert pol._attained(view(a, JobStatus.PAUSED, 600)) == 0.0


def test_thresholds_must_increase():
    with pytest.raises(ValueError):
        Tiresias(TiresiasParams(thresholds_gpu_s=(7200.0, 3250.0)))
