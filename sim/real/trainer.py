"""The elastic trainer: what runs on a Dask worker for one segment of a DL job.

A *segment* is one uninterrupted stretch of a job on one GPU allocation. The
RealExecutor submits :func:`run_segment` when the policy starts, resumes, resizes
or migrates a job; the function restores the job's state from its checkpoint (if
there is one), trains until the job's iterations are done or the executor raises
the job's stop flag, writes a checkpoint and returns what happened.

The training is real numerical work: stochastic gradient descent on a fixed,
seeded least-squares problem (a ``rows x dim`` matrix), one row per iteration, so
the state after ``n`` iterations does not depend on how the run was cut into
segments, and a resumed job continues bit for bit where it stopped. The *pace*
follows the throughput table: iteration ``i`` of a segment is due
``i / (rate * compression)`` wall seconds after the segment began iterating, so a
job that the table says runs 10 it/s runs 10 x compression it/s here. The
trainer sleeps between steps; it needs no GPU and little CPU.

Everything here runs in a worker process: it imports numpy and the standard
library only, and talks to the executor through files under the run's checkpoint
folder (the checkpoint, a ``begin`` marker and the stop flag), so the folder must
be visible to both sides (always true for a LocalCluster; a shared file system for
a remote cluster).
"""

from __future__ import annotations

import json
import math
import os
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

#: Rows of the least-squares problem (iteration i uses row i % ROWS).
ROWS = 64
LEARNING_RATE = 0.05


def checkpoint_path(ckpt_dir: str | Path, job_id: str) -> Path:
    return Path(ckpt_dir) / f"job-{job_id}.npz"


def stop_flag(ckpt_dir: str | Path, job_id: str, segment: int) -> Path:
    return Path(ckpt_dir) / f"job-{job_id}.stop-{segment}"


def begin_marker(ckpt_dir: str | Path, job_id: str, segment: int) -> Path:
    return Path(ckpt_dir) / f"job-{job_id}.begin-{segment}.json"


def problem(job_id: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The job's fixed least-squares data ``(A, b)``, seeded by the job id."""
    rng = np.random.default_rng(zlib.crc32(job_id.encode()))
    a = rng.standard_normal((ROWS, dim)) / np.sqrt(dim)
    b = a @ rng.standard_normal(dim)
    return a, b


def load_checkpoint(path: str | Path) -> tuple[int, np.ndarray] | None:
    """``(iterations done, weights)`` from a checkpoint, or ``None`` if there is none."""
    p = Path(path)
    if not p.exists():
        return None
    with np.load(p) as z:
        return int(z["iteration"]), z["w"].copy()


def save_checkpoint(path: str | Path, iteration: int, w: np.ndarray) -> None:
    """Write atomically: a reader (or a restarted worker) sees the old or the new file."""
    p = Path(path)
    tmp = p.with_name(p.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, iteration=np.int64(iteration), w=w)
    os.replace(tmp, p)


def loss(job_id: str, w: np.ndarray) -> float:
    a, b = problem(job_id, len(w))
    r = a @ w - b
    return float(r @ r / len(r))


def run_segment(
    job_id: str,
    segment: int,
    total_iterations: int,
    rate_its: float,
    compression: float,
    ckpt_dir: str,
    *,
    dim: int = 256,
    step_s: float = 0.02,
    checkpoint_every_s: float = 2.0,
) -> dict[str, Any]:
    """Train job ``job_id`` from its checkpoint until done or told to stop.

    Args:
        job_id, segment: which job, and the executor's segment number (names the
            stop flag and the begin marker).
        total_iterations: the job's whole work.
        rate_its: iterations/s of the job on its current GPU count (throughput table).
        compression: time-compression factor (wall pace = rate x compression).
        ckpt_dir: folder of the job's checkpoint and flags.
        dim: size of the model (weights vector).
        step_s: wall seconds between stop-flag checks.
        checkpoint_every_s: wall seconds between periodic checkpoints (what a
            killed worker can lose).

    Returns:
        A dict of wall-clock epoch times and counts: ``t_start`` (function entered),
        ``t_begin`` (state restored, iterating), ``t_stop`` (last iteration done),
        ``t_end`` (checkpoint written), ``start_iteration``, ``iteration`` (at the
        end), ``done`` (all iterations done), ``restore_s``, ``save_s``,
        ``checkpoints`` (periodic ones written), ``loss`` (at the end).
    """
    t_start = time.time()
    path = checkpoint_path(ckpt_dir, job_id)
    flag = stop_flag(ckpt_dir, job_id, segment)
    a, b = problem(job_id, dim)
    state = load_checkpoint(path)
    it, w = state if state is not None else (0, np.zeros(dim))
    start_it = it
    t_begin = time.time()
    restore_s = t_begin - t_start
    marker = begin_marker(ckpt_dir, job_id, segment)
    marker.with_suffix(".tmp").write_text(json.dumps({"t_begin": t_begin, "iteration": it}))
    os.replace(marker.with_suffix(".tmp"), marker)
    pace = rate_its * compression  # iterations per wall second
    per_step = max(1, int(pace * step_s))
    base_t, base_it = t_begin, it  # iteration i is due at base_t + (i - base_it) / pace
    last_ckpt = t_begin
    checkpoints = 0
    while it < total_iterations and not flag.exists():
        target = min(it + per_step, total_iterations)
        wait = base_t + (target - base_it) / pace - time.time()
        if wait > 0:
            time.sleep(wait)
        for i in range(it, target):  # one SGD step per iteration, on row i % ROWS
            row = a[i % ROWS]
            w -= LEARNING_RATE * (row @ w - b[i % ROWS]) * row
        it = target
        now = time.time()
        if now - last_ckpt >= checkpoint_every_s and it < total_iterations:
            save_checkpoint(path, it, w)
            checkpoints += 1
            after = time.time()
            base_t += after - now  # writing a checkpoint costs training time
            last_ckpt = after
    t_stop = time.time()
    save_checkpoint(path, it, w)
    t_end = time.time()
    return {
        "job_id": job_id, "segment": segment, "t_start": t_start, "t_begin": t_begin,
        "t_stop": t_stop, "t_end": t_end, "start_iteration": start_it, "iteration": it,
        "done": it >= total_iterations, "restore_s": restore_s, "save_s": t_end - t_stop,
        "checkpoints": checkpoints, "loss": loss(job_id, w), "pid": os.getpid(),
    }


def run_task(fn_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one CPU task: a plain Python function named in :data:`TASK_FUNCTIONS`.

    The task-workload model (Ackley evaluations, gradient-descent calls, SVD map
    tasks) is another issue's; this registry holds only what real mode's own tests
    and demos need.
    """
    t0 = time.time()
    value = TASK_FUNCTIONS[fn_name](**params)
    return {"t_start": t0, "t_end": time.time(), "value": value, "pid": os.getpid()}


def _sleep(duration_s: float = 0.0) -> float:
    time.sleep(duration_s)
    return duration_s


def _svd(n: int = 64, seed: int = 0) -> float:
    m = np.random.default_rng(seed).standard_normal((n, n))
    return float(np.linalg.svd(m, compute_uv=False)[0])


def _ackley(x: list[float], sleep_s: float = 0.0, a: float = 20.0, b: float = 0.2,
            c: float = 2 * math.pi) -> float:
    """An EMEWS Ackley task: the real function at ``x``, then its modelled runtime asleep."""
    from sim.traces.ackley import ackley

    value = float(ackley(np.asarray(x, dtype=float), a, b, c)[0])
    time.sleep(sleep_s)
    return value


def _svd_map(nrow: int, ncol: int, seed: int) -> dict[str, float]:
    """The Stats285 map instance: a seeded noisy rank-1 ``nrow x ncol`` matrix, its full
    SVD, and the result row (parameters, alignment of the top right singular vector
    with the planted one, the vector's first 16 entries)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(nrow)
    v = rng.standard_normal(ncol)
    v /= np.linalg.norm(v)
    x = np.outer(u, v) + rng.standard_normal((nrow, ncol)) / math.sqrt(ncol)
    _, _, vt = np.linalg.svd(x, full_matrices=True)
    row = {"nrow": nrow, "ncol": ncol, "seed": seed, "v_alignment": float(abs(vt[0] @ v))}
    row.update({f"v{i}": float(e) for i, e in enumerate(vt[0][:16])})
    return row


def _start_library() -> int:
    """A library start-up on an already running worker: import what the calls use."""
    import sim.traces.ackley  # noqa: F401

    return os.getpid()


TASK_FUNCTIONS = {"sleep": _sleep, "svd": _svd, "ackley": _ackley, "svd_map": _svd_map,
                  "start_library": _start_library}
