"""Tests for sim.traces.generate: the ElasticFlow artifact's synthetic generator."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sim.errors import InputError
from sim.model.job import BEST_EFFORT_DEADLINE, JobSpec
from sim.model.throughput import bundled_table
from sim.traces import TEMPLATES, generate_trace, read_trace, write_trace

TRACES = Path(__file__).resolve().parents[1] / "traces"
FIG10_MD5 = "989c168b3dffcb5038beec233de96431"


@pytest.fixture(scope="module")
def many() -> list[JobSpec]:
    return generate_trace(30_000, 100.0, seed=7, best_effort_percentage=0.25)


def test_fig10_trace_is_reproduced_byte_for_byte(tmp_path: Path) -> None:
    jobs = generate_trace(100, 1500, seed=1, min_ddl=1.5, max_ddl=1.5)
    out = tmp_path / "fig10.csv"
    write_trace(jobs, out)
    data = out.read_bytes()
    assert hashlib.md5(data).hexdigest() == FIG10_MD5
    assert data == (TRACES / "fig10_100jobs_1500lam.csv").read_bytes()
    lines = data.decode().splitlines()
    assert lines[1] == "0,0,7246,resnet50,5896,256,1,3930,0"
    assert lines[2] == "1,4686,19793,gpt2,11932,256,1,4830,0"


def test_same_seed_same_output() -> None:
    a = generate_trace(500, 900, seed=3, best_effort_percentage=0.3)
    b = generate_trace(500, 900, seed=3, best_effort_percentage=0.3)
    assert a == b


def test_different_seeds_differ() -> None:
    a = generate_trace(200, 900, seed=3)
    b = generate_trace(200, 900, seed=4)
    assert a != b
    assert [j.model for j in a] != [j.model for j in b]
    assert [j.submit_s for j in a] != [j.submit_s for j in b]


def test_fifth_stream_only_moves_deadlines_and_flags() -> None:
    """Deadline factor and best-effort flag come from their own stream (seed + 4)."""
    base = generate_trace(300, 1000, seed=11, min_ddl=1.5, max_ddl=1.5)
    other = generate_trace(300, 1000, seed=11, min_ddl=0.5, max_ddl=3.0,
                           best_effort_percentage=0.5)

    def key(js: list[JobSpec]) -> list[tuple[object, ...]]:
        return [(j.job_id, j.submit_s, j.iterations, j.model, j.batch_size, j.num_gpu,
                 j.duration_s) for j in js]

    assert key(base) == key(other)
    assert [j.trace_deadline_s for j in base] != [j.trace_deadline_s for j in other]
    assert any(j.best_effort for j in other) and not any(j.best_effort for j in base)


def test_first_job_at_zero_and_arrivals_nondecreasing(many: list[JobSpec]) -> None:
    assert many[0].submit_s == 0
    assert all(a.submit_s <= b.submit_s for a, b in zip(many, many[1:]))
    assert [j.idx for j in many] == list(range(len(many)))
    assert [j.job_id for j in many] == [str(i) for i in range(len(many))]


def test_gpu_count_shares(many: list[JobSpec]) -> None:
    n = len(many)
    counts = Counter(j.num_gpu for j in many)
    assert set(counts) == {1, 2, 4, 8, 16}
    for g, share in {1: 0.83, 2: 0.03, 4: 0.03, 8: 0.10, 16: 0.01}.items():
        assert counts[g] / n == pytest.approx(share, abs=0.012), g


def test_template_choice_is_uniform(many: list[JobSpec]) -> None:
    n = len(many)
    counts = Counter((j.model, j.batch_size) for j in many)
    assert set(counts) == set(TEMPLATES)
    for tmpl in TEMPLATES:
        assert counts[tmpl] / n == pytest.approx(1 / 14, abs=0.01), tmpl


def test_duration_mixture(many: list[JobSpec]) -> None:
    n = len(many)
    durations = [j.duration_s for j in many]
    assert min(durations) >= 600 - 1
    assert max(durations) <= 600_000
    long_cut = 60 * 10**2.5
    long_share = sum(d >= long_cut for d in durations) / n
    assert long_share == pytest.approx(0.2, abs=0.015)
    # log10(d/60) is uniform on [1, 2.5) for short jobs: median near 1.75
    short = sorted(math.log10((d + 0.5) / 60) for d in durations if d < long_cut)
    assert short[len(short) // 2] == pytest.approx(1.75, abs=0.03)


def test_iterations_follow_throughput(many: list[JobSpec]) -> None:
    table = bundled_table("A100")
    for j in many[:2000]:
        rate = table.rate(j.model, j.batch_size, j.num_gpu)
        # iterations = trunc(d * rate) with d in [duration_s, duration_s + 1)
        assert j.duration_s * rate - 1 <= j.iterations <= (j.duration_s + 1) * rate


def test_mean_interarrival_is_lam(many: list[JobSpec]) -> None:
    gaps = (many[-1].submit_s - many[0].submit_s) / (len(many) - 1)
    assert gaps == pytest.approx(100.0, rel=0.03)


def test_deadline_factor_range(many: list[JobSpec]) -> None:
    for j in many:
        assert j.trace_deadline_s is not None
        slack = j.trace_deadline_s - j.submit_s
        assert 0.5 * j.duration_s - 2 <= slack <= 1.5 * (j.duration_s + 1) + 1


def test_best_effort_share(many: list[JobSpec]) -> None:
    be = [j for j in many if j.best_effort]
    assert len(be) / len(many) == pytest.approx(0.25, abs=0.015)
    assert all(j.deadline_s == BEST_EFFORT_DEADLINE and j.trace_deadline_s is not None
               for j in be)
    assert all(j.deadline_s == j.trace_deadline_s for j in many if not j.best_effort)


def test_max_scale_factor_caps_gpu_count() -> None:
    jobs = generate_trace(5000, 10, seed=2, max_scale_factor=4)
    counts = Counter(j.num_gpu for j in jobs)
    assert set(counts) == {1, 2, 4}
    assert counts[4] / len(jobs) == pytest.approx(0.03 + 0.10 + 0.01, abs=0.015)


def test_lam_zero_and_empty() -> None:
    assert {j.submit_s for j in generate_trace(50, 0)} == {0}
    assert generate_trace(0, 100) == []


def test_generated_trace_round_trips(tmp_path: Path) -> None:
    jobs = generate_trace(300, 500, seed=5, best_effort_percentage=0.4)
    out = tmp_path / "g.csv"
    write_trace(jobs, out)
    assert read_trace(out, table=bundled_table("A100")) == jobs


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_jobs": -1}, "num_jobs"),
        ({"num_jobs": 10.0}, "num_jobs"),
        ({"lam": "1e3"}, "lam"),
        ({"seed": "1"}, "seed"),
        ({"min_ddl": None}, "min_ddl"),
        ({"lam": -5.0}, "lam"),
        ({"lam": math.inf}, "lam"),
        ({"max_scale_factor": 0}, "max_scale_factor"),
        ({"best_effort_percentage": 25.0}, "best_effort_percentage"),
        ({"min_ddl": -0.1}, "min_ddl"),
        ({"min_ddl": 2.0, "max_ddl": 1.0}, "max_ddl"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], field: str) -> None:
    args = {"num_jobs": 10, "lam": 100.0} | kwargs
    with pytest.raises(InputError) as ei:
        generate_trace(**args)
    assert ei.value.field == field


def test_table_without_templates_is_rejected() -> None:
    with pytest.raises(InputError) as ei:
        generate_trace(10, 100, table=bundled_table("T4"))
    assert ei.value.field == "table" and "resnet50" in ei.value.message
