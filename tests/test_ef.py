"""ElasticFlow (ef, ef-accessctrl): golden numbers from the artifact (POLICIES.md 11) and
the behaviour of the policy in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.model.job import JobSpec
from sim.model.throughput import bundled_table
from sim.policies.ef import ef_max_gpu
from tests.toy import N1G8, TOY_JOBS, rows, run, run_fig8a

ROOT = Path(__file__).resolve().parents[1]
T4 = bundled_table("T4")


@pytest.mark.parametrize("policy, expected", [
    ("ef-accessctrl", [(4, 0, 2176), (8, 240, 2658), (4, 240, 968)]),
    ("ef", [(4, 0, 2170), (8, 240, 2652), (4, 240, 968)]),
])
def test_toy_rows_exact(policy, expected):
    res = run(policy, TOY_JOBS, N1G8)
    assert rows(res) == expected
    assert res.summary["deadline_satisfactory_ratio"] == 1.0


def test_toy_gpu_counts_per_instant():
    """POLICIES.md 11.1: t=0 job 0 takes all 8; t=240 0 and 1 at their minimum share 2,
    best-effort job 2 takes the 4 leftovers; t=968 jobs 0 and 1 at 4; then job 1 at 8."""
    res = run("ef-accessctrl", TOY_JOBS, N1G8)
    ev = res.events
    sized = ev[ev.event.isin(["started", "resized"])]
    got = [(int(r.time_s), r.job_id, int(r.gpus)) for r in sized.itertuples()]
    assert got == [(0, "0", 8), (240, "0", 2), (240, "1", 2), (240, "2", 4),
                   (968, "0", 4), (968, "1", 4), (2176, "1", 8)]


@pytest.mark.parametrize("policy, ratio", [
    ("ef-accessctrl", 1.00),
    pytest.param("ef", 0.97, marks=pytest.mark.xfail(
        strict=True, reason="preset gives 1.00, as does a local re-run of the artifact's "
                            "code: 11.2's 0.97 is not reproducible from the code we can "
                            "read (docs/semantics.md, EF parity)")),
])
def test_figure10_ratio(policy, ratio):
    from tests.toy import N16G8, fig10_jobs

    res = run(policy, fig10_jobs(), N16G8)
    assert res.summary["deadline_satisfactory_ratio"] == pytest.approx(ratio, abs=0.02)


@pytest.mark.parametrize("policy, ratio", [("ef-accessctrl", 0.7282), ("ef", 0.6667)])
def test_figure8a_ratio(policy, ratio):
    res = run_fig8a(policy)
    assert res.summary["deadline_satisfactory_ratio"] == pytest.approx(ratio, abs=0.02)


def test_figure8a_ef_accessctrl_is_the_artifacts_number_exactly():
    """142 of 195 deadlines met, as the artifact: needs the restart-round cache order and
    the stale m_j of a job a grant takes to its top level (docs/semantics.md)."""
    res = run_fig8a("ef-accessctrl")
    assert res.summary["deadline_satisfactory_ratio"] == 142 / 195


def test_max_gpu_rule_table():
    assert ef_max_gpu("A100", "deepspeech2", 32) == 32
    assert ef_max_gpu("A100", "gpt2", 128) == 16 and ef_max_gpu("A100", "gpt2", 256) == 32
    assert ef_max_gpu("A100", "bert", 64) == 8 and ef_max_gpu("A100", "bert", 128) == 16
    assert ef_max_gpu("A100", "resnet50", 64) == 32
    assert ef_max_gpu("A100", "resnet50", 256) == 64
    assert ef_max_gpu("T4", "yolov3", 64) == 4 and ef_max_gpu("T4", "ncf", 32768) == 1
    assert ef_max_gpu("T4", "deepspeech2", 320) == 32
    assert ef_max_gpu("T4", "imagenet", 3200) == 64


def _job(i, submit, iters, ddl, model="resnet50", batch=128):
    return JobSpec(job_id=str(i), idx=i, submit_s=submit, iterations=iters, model=model,
                   batch_size=batch, deadline_s=ddl, num_gpu=1, duration_s=1000,
                   trace_deadline_s=ddl)


def test_admission_declines_the_arrival_that_cannot_fit():
    # job 0 needs the whole node to meet its deadline; job 1 arrives and cannot fit
    big = _job(0, 0, 40000, 3000)
    late = _job(1, 100, 40000, 3100)
    for artifact in (True, False):
        res = run("ef-accessctrl", [big, late], N1G8, artifact=artifact)
        dec = res.events[res.events.event == "declined"].job_id.tolist()
        assert dec == ["1"], artifact
        assert res.summary["deadline_satisfactory_ratio"] == 0.5


def test_ef_runs_everything_and_judges_late_jobs_at_completion():
    big = _job(0, 0, 40000, 3000)
    late = _job(1, 100, 40000, 3100)
    res = run("ef", [big, late], N1G8)
    assert res.events[res.events.event == "declined"].empty
    assert set(res.jobs.job_id) == {"0", "1"}
    assert res.summary["deadline_satisfactory_ratio"] == 0.5


def test_clean_mode_per_job_admission_keeps_a_fitting_arrival_of_a_batch():
    """Two arrivals in one slot: the artifact declines both if either breaks a deadline;
    clean mode admits the one that fits."""
    first = _job(0, 0, 30000, 3000)
    fits = _job(1, 10, 1000, 6000)
    breaks = _job(2, 20, 60000, 2900)
    art = run("ef-accessctrl", [first, fits, breaks], N1G8, artifact=True)
    clean = run("ef-accessctrl", [first, fits, breaks], N1G8, artifact=False)
    declined = lambda r: sorted(r.events[r.events.event == "declined"].job_id)  # noqa: E731
    assert declined(art) == ["1", "2"]
    assert declined(clean) == ["2"]


def test_clean_mode_keeps_unchanged_jobs_on_their_gpus():
    res = run("ef-accessctrl", TOY_JOBS, N1G8, artifact=False)
    ev = res.events
    # job 0 shrinks at 240 and grows back later; it is never moved while its size holds
    moves = ev[(ev.job_id == "0") & ev.event.isin(["resized"])]
    assert len(moves) == len(set(moves.time_s))
    assert res.summary["deadline_satisfactory_ratio"] == 1.0


