"""Synthetic job traces in the style of the ElasticFlow artifact's generator (POLICIES.md 10.6).

The artifact's command line (``trace_generator/generate_trace.py``) maps onto
:func:`generate_trace` as follows:

==============================  ===============================================
artifact CLI flag               this module
==============================  ===============================================
``--num_jobs`` (required)       ``num_jobs``
``--lam`` (default 0)           ``lam`` (mean inter-arrival gap in seconds)
``--seed`` (default 0)          ``seed``
``--throughputs_dir``           ``table`` (default: bundled A100 table)
``--max_scale_factor`` (16)     ``max_scale_factor``
``--best_effort_percentage``    ``best_effort_percentage`` (a fraction in [0, 1])
``--min_ddl`` (0.5)             ``min_ddl``
``--max_ddl`` (1.5)             ``max_ddl``
``--output_file``               ``write_trace(jobs, output_file)``
==============================  ===============================================

The artifact's duration-range flags are parsed but unused there, so they are not
offered here.

Random streams: five independent :class:`random.Random` generators, one per
concern: job template ``seed``, inter-arrival gap ``seed + 1``, duration
``seed + 2``, GPU count ``seed + 3`` (all as in the artifact) and deadline factor
plus best-effort flag ``seed + 4``. The artifact draws the last two from Python's
*unseeded* global ``random`` module, so its deadlines (unless
``min_ddl == max_ddl``) and best-effort flags change from run to run; here they are
reproducible, and therefore cannot match any particular artifact run (POLICIES.md
10.6 [DECIDE]). With ``min_ddl == max_ddl`` and ``best_effort_percentage == 0`` the
fifth stream has no effect and the output equals the artifact's byte for byte; e.g.
``write_trace(generate_trace(100, 1500, seed=1, min_ddl=1.5, max_ddl=1.5), p)``
reproduces ``fig10_100jobs_1500lam.csv`` (md5 ``989c168b3dffcb5038beec233de96431``).
"""

from __future__ import annotations

import math
import random

from sim.errors import InputError
from sim.model.job import BEST_EFFORT_DEADLINE, JobSpec
from sim.model.throughput import ThroughputTable, bundled_table

__all__ = ["GPU_COUNT_SHARES", "TEMPLATES", "generate_trace"]

#: (model, global batch) templates, in the artifact's order; one is drawn uniformly per job.
TEMPLATES: tuple[tuple[str, int], ...] = (
    ("resnet50", 64), ("resnet50", 128), ("resnet50", 256),
    ("vgg16", 64), ("vgg16", 128), ("vgg16", 256),
    ("inception3", 64), ("inception3", 128),
    ("gpt2", 128), ("gpt2", 256),
    ("bert", 128), ("bert", 64),
    ("deepspeech2", 64), ("deepspeech2", 32),
)

#: Requested-GPU distribution of the ITP traces used by the generator (before capping).
GPU_COUNT_SHARES: dict[int, float] = {1: 0.83, 2: 0.03, 4: 0.03, 8: 0.10, 16: 0.01}


def _gpu_count(u: float) -> int:
    """Map ``u ~ U(0,1)`` to a GPU count with the artifact's thresholds."""
    if u < 0.83:
        return 1
    if u <= 0.86:
        return 2
    if u <= 0.89:
        return 4
    if u <= 0.99:
        return 8
    return 16


def _duration(rng: random.Random) -> float:
    """Seconds at the chosen GPU count: ``60 * 10**U(2.5, 4)`` w.p. 0.2, else ``60 * 10**U(1, 2.5)``."""
    if rng.random() >= 0.8:
        return 60.0 * 10 ** rng.uniform(2.5, 4)
    return 60.0 * 10 ** rng.uniform(1, 2.5)


def _check(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise InputError(message, field=field)


def generate_trace(
    num_jobs: int,
    lam: float,
    seed: int = 0,
    *,
    table: ThroughputTable | None = None,
    max_scale_factor: int = 16,
    best_effort_percentage: float = 0.0,
    min_ddl: float = 0.5,
    max_ddl: float = 1.5,
) -> list[JobSpec]:
    """Generate ``num_jobs`` jobs like the artifact's ``generate_trace.py``.

    Per job ``i`` (draw order matters for reproducibility):

    1. GPU count ``g``: one draw from the GPU stream, mapped with
       :data:`GPU_COUNT_SHARES` thresholds, then capped at ``max_scale_factor``.
    2. Template: ``choice`` over :data:`TEMPLATES` from the template stream.
    3. Duration ``d`` (seconds at ``g`` GPUs): two draws from the duration stream.
    4. ``iterations = trunc(d * table.rate(model, batch, g))``.
    5. Arrival: job 0 at 0 (no draw); job ``i > 0`` at the previous arrival plus
       ``-ln(1 - U) * lam`` from the arrival stream (so ``lam`` is the mean gap in
       seconds, not a rate).
    6. Deadline ``ddl = trunc(arrival + trunc(U(min_ddl, max_ddl) * d))`` and
    7. best-effort flag ``U(0, 1) < best_effort_percentage``, both from the fifth
       stream (``seed + 4``), two draws per job always.

    Returns jobs with ``job_id = str(i)``, ``idx = i``, ``submit_s = trunc(arrival)``,
    ``duration_s = trunc(d)``, ``trace_deadline_s = ddl`` and ``deadline_s = ddl``
    (``BEST_EFFORT_DEADLINE`` for best-effort jobs), in arrival order.

    Args:
        num_jobs: number of jobs (``>= 0``).
        lam: mean inter-arrival gap in seconds (``>= 0``; 0 = all jobs arrive at 0).
        seed: base seed of the five streams.
        table: throughput table (``None`` = bundled A100); it must hold every template
            with a positive rate at every GPU count the generator can pick.
        max_scale_factor: cap on the GPU count (``>= 1``).
        best_effort_percentage: probability in ``[0, 1]`` that a job is best-effort
            (despite its name, a fraction, as in the artifact).
        min_ddl, max_ddl: deadline factor range, ``0 <= min_ddl <= max_ddl``.

    Raises:
        InputError: an argument out of range (field = argument name) or a table that
            lacks a template or a rate the generator needs (field ``table``).
    """
    for name, value in (("lam", lam), ("best_effort_percentage", best_effort_percentage),
                        ("min_ddl", min_ddl), ("max_ddl", max_ddl)):
        _check(isinstance(value, int | float) and not isinstance(value, bool), name,
               f"{name} must be a number, got {type(value).__name__} {value!r}")
    _check(isinstance(num_jobs, int) and not isinstance(num_jobs, bool) and num_jobs >= 0,
           "num_jobs",
           f"num_jobs must be a non-negative integer, got {num_jobs!r}")
    _check(isinstance(seed, int) and not isinstance(seed, bool), "seed",
           f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    _check(math.isfinite(lam) and lam >= 0, "lam",
           f"lam (mean inter-arrival gap, s) must be >= 0, got {lam!r}")
    _check(isinstance(max_scale_factor, int) and not isinstance(max_scale_factor, bool)
           and max_scale_factor >= 1, "max_scale_factor",
           f"max_scale_factor must be an integer >= 1, got {max_scale_factor!r}")
    _check(0.0 <= best_effort_percentage <= 1.0, "best_effort_percentage",
           f"best_effort_percentage is a fraction in [0, 1], got {best_effort_percentage!r}")
    _check(math.isfinite(min_ddl) and min_ddl >= 0, "min_ddl",
           f"min_ddl must be >= 0, got {min_ddl!r}")
    _check(math.isfinite(max_ddl) and max_ddl >= min_ddl, "max_ddl",
           f"max_ddl must be >= min_ddl ({min_ddl!r}), got {max_ddl!r}")
    if table is None:
        table = bundled_table("A100")
    counts = sorted({min(g, max_scale_factor) for g in GPU_COUNT_SHARES})
    for model, batch in TEMPLATES:
        if not table.has(model, batch):
            raise InputError(
                f"throughput table {table.source or table.gpu_type!r} lacks generator template "
                f"({model}, {batch}); the generator needs "
                + ", ".join(f"{m}/{b}" for m, b in TEMPLATES),
                field="table",
            )
        missing = [g for g in counts if table.rate(model, batch, g) <= 0]
        if missing:
            raise InputError(
                f"throughput table {table.source or table.gpu_type!r} has no rate for "
                f"({model}, {batch}) at {missing} GPUs, which the generator can pick "
                f"(max_scale_factor={max_scale_factor})",
                field="table",
            )

    template_rng = random.Random(seed)
    arrival_rng = random.Random(seed + 1)
    duration_rng = random.Random(seed + 2)
    gpu_rng = random.Random(seed + 3)
    deadline_rng = random.Random(seed + 4)

    jobs: list[JobSpec] = []
    arrival = 0.0
    for i in range(num_jobs):
        gpus = min(_gpu_count(gpu_rng.random()), max_scale_factor)
        model, batch = template_rng.choice(TEMPLATES)
        duration = _duration(duration_rng)
        iterations = int(duration * table.rate(model, batch, gpus))
        if i > 0:
            arrival += -math.log(1.0 - arrival_rng.random()) * lam
        factor = deadline_rng.uniform(min_ddl, max_ddl)
        best_effort = deadline_rng.random() < best_effort_percentage
        ddl = int(arrival + int(factor * duration))
        jobs.append(JobSpec(
            job_id=str(i),
            idx=i,
            submit_s=int(arrival),
            iterations=iterations,
            model=model,
            batch_size=batch,
            deadline_s=BEST_EFFORT_DEADLINE if best_effort else ddl,
            num_gpu=gpus,
            duration_s=int(duration),
            best_effort=best_effort,
            trace_deadline_s=ddl,
        ))
    return jobs
