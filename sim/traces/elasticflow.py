"""Read and write ElasticFlow-style job traces (POLICIES.md 1.1, 10.1, 10.2).

Two column sets are accepted, matched by name (column order is free and extra
columns such as ``real_iteration``/``real_duration`` are ignored):

* the ElasticFlow artifact form
  ``job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration[,best_effort]``;
* the ITP form (``microsoft/elasticflow-traces``)
  ``job_id,submission_time,num_iteration,model_name,deadline,batch_size,num_gpu,duration``.

Files ending in ``.gz`` or starting with the gzip magic bytes are decompressed
transparently. Every problem with the input raises exactly one
:class:`sim.errors.InputError` naming the file, the 1-based line (the header is
line 1) and the column as it is spelled in the file.

Decisions (POLICIES.md 1.1 [DECIDE]): times, iterations, batch sizes, GPU counts
and durations must be written as non-negative integers; fractional values such as
``12.5`` or ``12.0`` are rejected rather than truncated.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from sim.errors import InputError
from sim.model.cluster import ClusterSpec
from sim.model.job import BEST_EFFORT_DEADLINE, JobSpec
from sim.model.throughput import ThroughputTable

__all__ = ["ARTIFACT_COLUMNS", "ITP_COLUMNS", "read_trace", "write_trace"]

#: Column set written by :func:`write_trace` (the artifact's generator output).
ARTIFACT_COLUMNS: tuple[str, ...] = (
    "job_id", "submit_time", "iteration", "model_name", "ddl",
    "batch_size", "num_gpu", "duration", "best_effort",
)
#: Column set of the released ITP traces.
ITP_COLUMNS: tuple[str, ...] = (
    "job_id", "submission_time", "num_iteration", "model_name", "deadline",
    "batch_size", "num_gpu", "duration",
)

# canonical (artifact) name -> ITP alias, for the required columns
_ALIASES: dict[str, str | None] = {
    "job_id": None,
    "submit_time": "submission_time",
    "iteration": "num_iteration",
    "model_name": None,
    "ddl": "deadline",
    "batch_size": None,
    "num_gpu": None,
    "duration": None,
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_text(path: Path) -> str:
    """Return the decoded text of ``path``, gunzipping when needed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("trace file not found", file=path) from None
    except IsADirectoryError:
        raise InputError("trace path is a directory, expected a CSV file", file=path) from None
    except OSError as e:
        raise InputError(f"cannot read trace file ({e.strerror or e})", file=path) from None
    if path.suffix == ".gz" or raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"not a valid gzip file ({e})", file=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte {e.start})", file=path, line=line) from None


def _resolve_columns(header: list[str], path: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Map canonical column names to indexes; also return canonical -> spelled name."""
    names = [h.strip() for h in header]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise InputError(f"column {name!r} appears twice in the header",
                             file=path, line=1, field=name)
        seen[name] = i
    itp_style = sum(a in seen for a in ("submission_time", "num_iteration", "deadline")) > sum(
        c in seen for c in ("submit_time", "iteration", "ddl"))
    index: dict[str, int] = {}
    spelled: dict[str, str] = {}
    for canon, alias in _ALIASES.items():
        if canon in seen and alias is not None and alias in seen:
            raise InputError(
                f"both {canon!r} and its alias {alias!r} are present; keep only one",
                file=path, line=1, field=alias,
            )
        if canon in seen:
            index[canon], spelled[canon] = seen[canon], canon
        elif alias is not None and alias in seen:
            index[canon], spelled[canon] = seen[alias], alias
        else:
            missing = alias if (itp_style and alias is not None) else canon
            other = f" (or {canon!r})" if missing != canon else (
                f" (or {alias!r})" if alias is not None else "")
            raise InputError(
                f"missing required column {missing!r}{other}; the header has "
                f"{', '.join(names)}; expected the artifact columns "
                f"{','.join(ARTIFACT_COLUMNS[:-1])}[,best_effort] or the ITP columns "
                f"{','.join(ITP_COLUMNS)}",
                file=path, line=1, field=missing,
            )
    if "best_effort" in seen:
        index["best_effort"], spelled["best_effort"] = seen["best_effort"], "best_effort"
    return index, spelled


def _int_field(text: str, path: Path, line: int, field: str, what: str) -> int:
    """Parse a non-negative integer cell, or raise a precise InputError."""
    s = text.strip()
    if s.isascii() and s.isdigit():
        return int(s)
    if s == "":
        raise InputError(f"{what} is empty; expected a non-negative integer",
                         file=path, line=line, field=field)
    try:
        value = float(s)
    except ValueError:
        raise InputError(f"{what} {s!r} is not a number; expected a non-negative integer",
                         file=path, line=line, field=field) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(f"{what} {s!r} is not a finite number",
                         file=path, line=line, field=field)
    if value < 0 or s.startswith("-"):
        raise InputError(f"{what} {s} is negative; it must be >= 0",
                         file=path, line=line, field=field)
    if s.lstrip("+").isdigit():
        return int(s)
    raise InputError(
        f"{what} {s!r} is not an integer; times, iterations, batch sizes, GPU counts and "
        "durations must be written as whole numbers (fractional values are rejected)",
        file=path, line=line, field=field,
    )


def _next_row(reader: Iterator[list[str]], path: Path) -> list[str] | None:
    """Next parsed row, ``None`` at the end; CSV syntax errors become InputError."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        line = getattr(reader, "line_num", 0) + 1
        raise InputError(f"malformed CSV ({e})", file=path, line=line) from None


def read_trace(
    path: str | Path,
    *,
    table: ThroughputTable | None = None,
    cluster: ClusterSpec | None = None,
) -> list[JobSpec]:
    """Load an ElasticFlow or ITP trace CSV (optionally gzipped) into validated jobs.

    Contract:
        * Returns one :class:`JobSpec` per non-blank data row, sorted by ``submit_s``
          with a stable sort (rows with equal submit times keep file order).
        * ``idx`` is the 0-based position of the row among the data rows of the file
          (before sorting); ``job_id`` is the cell text (stripped).
        * ``best_effort == 1``: ``best_effort=True``, ``deadline_s=BEST_EFFORT_DEADLINE``
          and ``trace_deadline_s`` = the file's deadline; otherwise
          ``deadline_s = trace_deadline_s = `` the file's deadline (an int).
        * With ``table``: every ``model_name`` and ``(model_name, batch_size)`` must be
          in it. Whether the requested ``num_gpu`` has a rate in the table is *not*
          checked.
        * With ``cluster``: ``num_gpu`` must not exceed ``cluster.num_gpus``.

    Raises:
        InputError: for the first problem found (missing/duplicate column, empty
            file or no rows, wrong number of cells, empty or duplicate ``job_id``,
            non-integer/negative numeric cell, deadline before submit time,
            ``best_effort`` not 0/1, ``batch_size`` or ``num_gpu`` below 1, model or
            batch not in ``table``, job larger than ``cluster``), naming file,
            line and field.
    """
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise InputError("trace file is empty; expected a header row and job rows",
                         file=path, line=1)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = _next_row(reader, path)
    assert header is not None
    index, spelled = _resolve_columns(header, path)
    ncols = len(header)
    i_id, i_sub, i_it = index["job_id"], index["submit_time"], index["iteration"]
    i_model, i_ddl, i_batch = index["model_name"], index["ddl"], index["batch_size"]
    i_gpu, i_dur = index["num_gpu"], index["duration"]
    i_be = index.get("best_effort")
    f_sub, f_it, f_ddl = spelled["submit_time"], spelled["iteration"], spelled["ddl"]

    models = set(table.models()) if table is not None else None
    max_gpus = cluster.num_gpus if cluster is not None else None
    first_line: dict[str, int] = {}
    jobs: list[JobSpec] = []
    while (row := _next_row(reader, path)) is not None:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != ncols:
            if len(row) < ncols:
                field: str | None = header[len(row)].strip()
                detail = f"column {field!r} onwards is missing"
            else:
                field = None
                detail = "there are extra cells after the last column"
            raise InputError(
                f"expected {ncols} comma-separated cells, found {len(row)} ({detail})",
                file=path, line=line, field=field,
            )
        job_id = row[i_id].strip()
        if not job_id:
            raise InputError("job_id is empty", file=path, line=line, field="job_id")
        if job_id in first_line:
            raise InputError(
                f"duplicate job_id {job_id!r} (first used on line {first_line[job_id]})",
                file=path, line=line, field="job_id",
            )
        first_line[job_id] = line
        submit = _int_field(row[i_sub], path, line, f_sub, "submit time")
        iterations = _int_field(row[i_it], path, line, f_it, "iteration count")
        model = row[i_model].strip()
        if not model:
            raise InputError("model_name is empty", file=path, line=line, field="model_name")
        ddl = _int_field(row[i_ddl], path, line, f_ddl, "deadline")
        batch = _int_field(row[i_batch], path, line, "batch_size", "batch size")
        num_gpu = _int_field(row[i_gpu], path, line, "num_gpu", "GPU count")
        duration = _int_field(row[i_dur], path, line, "duration", "duration")
        best_effort = False
        if i_be is not None:
            be = row[i_be].strip()
            if be not in ("0", "1"):
                raise InputError(f"best_effort must be 0 or 1, got {be!r}",
                                 file=path, line=line, field="best_effort")
            best_effort = be == "1"
        if ddl < submit:
            raise InputError(
                f"deadline {ddl} is before the submit time {submit}",
                file=path, line=line, field=f_ddl,
            )
        if batch < 1:
            raise InputError("batch size must be at least 1",
                             file=path, line=line, field="batch_size")
        if num_gpu < 1:
            raise InputError("num_gpu must be at least 1", file=path, line=line, field="num_gpu")
        if max_gpus is not None and num_gpu > max_gpus:
            assert cluster is not None
            raise InputError(
                f"cluster too small for job: job {job_id!r} requests {num_gpu} GPUs but "
                f"cluster {cluster.name!r} has {max_gpus}",
                file=path, line=line, field="num_gpu",
            )
        if table is not None:
            assert models is not None
            if model not in models:
                raise InputError(
                    f"model {model!r} is not in the {table.gpu_type} throughput table; "
                    f"valid models: {', '.join(sorted(models))}",
                    file=path, line=line, field="model_name",
                )
            if not table.has(model, batch):
                valid = ", ".join(str(b) for b in table.batches(model))
                raise InputError(
                    f"batch size {batch} of model {model!r} is not in the {table.gpu_type} "
                    f"throughput table; valid batch sizes for {model}: {valid}",
                    file=path, line=line, field="batch_size",
                )
        jobs.append(JobSpec(
            job_id=job_id,
            idx=len(jobs),
            submit_s=submit,
            iterations=iterations,
            model=model,
            batch_size=batch,
            deadline_s=BEST_EFFORT_DEADLINE if best_effort else ddl,
            num_gpu=num_gpu,
            duration_s=duration,
            best_effort=best_effort,
            trace_deadline_s=ddl,
        ))
    if not jobs:
        raise InputError("trace has a header but no job rows", file=path, line=2)
    jobs.sort(key=lambda j: j.submit_s)
    return jobs


def _job_row(job: JobSpec) -> list[str]:
    if job.best_effort:
        ddl = job.trace_deadline_s if job.trace_deadline_s is not None else job.submit_s
    else:
        d = job.deadline_s
        if d != d or d in (float("inf"), float("-inf")) or d != int(d):
            raise ValueError(
                f"job {job.job_id!r}: deadline {d!r} is not an integer; only best-effort "
                "jobs may have no deadline"
            )
        ddl = int(d)
    return [
        job.job_id, str(job.submit_s), str(job.iterations), job.model, str(ddl),
        str(job.batch_size), str(job.num_gpu), str(job.duration_s),
        "1" if job.best_effort else "0",
    ]


def write_trace(jobs: Iterable[JobSpec], path: str | Path) -> None:
    """Write ``jobs`` as an artifact-form CSV (with the ``best_effort`` column).

    Contract:
        * Rows are written in ``idx`` order (stable for equal ``idx``), ``\\n`` line
          endings, header ``ARTIFACT_COLUMNS``; a path ending in ``.gz`` is gzipped
          (with a zero timestamp, so output is byte-reproducible).
        * ``read_trace(p) == jobs`` after ``write_trace(jobs, p)`` whenever the jobs are
          sorted by ``submit_s`` (ties in ``idx`` order), their ``idx`` values are
          ``0..n-1`` and non-best-effort jobs have ``trace_deadline_s`` equal to their
          integer ``deadline_s`` — which holds for anything returned by
          :func:`read_trace` or :func:`sim.traces.generate.generate_trace`.
        * A best-effort job is written with its ``trace_deadline_s`` (or its submit time
          when that is ``None``) in the ``ddl`` column.

    Raises:
        ValueError: a non-best-effort job whose ``deadline_s`` is not a finite integer.
    """
    path = Path(path)
    ordered = sorted(jobs, key=lambda j: j.idx)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ARTIFACT_COLUMNS)
    writer.writerows(_job_row(j) for j in ordered)
    data = buf.getvalue().encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
