"""TaskVine transaction logs: read them into a workload, write ours in the same format.

The format (TaskVine manual, "log file formats"; re-implemented here, no code
copied) is one record per line, ``#`` lines are comments::

    <time_us> <manager_pid> MANAGER <pid> START|END <time_from_origin>
    <time_us> <manager_pid> WORKER <id> CONNECTION <host:port>
    <time_us> <manager_pid> WORKER <id> DISCONNECTION <reason>
    <time_us> <manager_pid> WORKER <id> RESOURCES {json}
    <time_us> <manager_pid> WORKER <id> CACHE_UPDATE <file> <size> <wall_us> <start_us>
    <time_us> <manager_pid> WORKER <id> TRANSFER INPUT|OUTPUT <file> <size> <wall_us> <start_us>
    <time_us> <manager_pid> CATEGORY <name> MAX|MIN|FIRST ...
    <time_us> <manager_pid> TASK <id> READY|WAITING <category> <alloc> <attempt> {requested}
    <time_us> <manager_pid> TASK <id> RUNNING <worker> <alloc> {allocated + commit times}
    <time_us> <manager_pid> TASK <id> WAITING_RETRIEVAL <worker>
    <time_us> <manager_pid> TASK <id> RETRIEVED <result> <exit> {limits} {measured}
    <time_us> <manager_pid> TASK <id> DONE <result> <exit>
    <time_us> <manager_pid> LIBRARY <id> WAITING|SENT|STARTED|FAILURE <worker>
    <time_us> <manager_pid> APPLICATION <message...>

Two variants exist. The 2023 manager (the WORKS'23 logs) writes ``WAITING`` for a
task entering the ready queue and puts **bytes** in the ``size`` of TRANSFER and
CACHE_UPDATE records (although its header says ``size_in_mb``); the current
manager writes ``READY`` and megabytes. :func:`read_log` detects the variant from
the task records (or the header) and always returns MB.

JSON values are ``[value, "unit"]`` pairs; times in them are Unix seconds.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.model.job import TaskSpec
from sim.model.tasks import LibrarySpec, ManagerSpec, TaskWorkload, WorkerSpec

VARIANTS = ("2023", "current")
#: disconnection reasons TaskVine writes; FAILURE means the worker was lost
DISCONNECT_REASONS = ("UNKNOWN", "IDLE_OUT", "FAST_ABORT", "FAILURE", "STATUS_WORKER",
                      "EXPLICIT", "XFER_ERRORS")
_DECODER = json.JSONDecoder()
_TASK_EVENTS = ("RUNNING", "WAITING_RETRIEVAL", "RETRIEVED", "DONE")


@dataclass
class Attempt:
    """One attempt of one task, times in seconds from the log's origin."""

    task_id: str
    attempt: int
    ready_s: float
    category: str = "default"
    requested: dict[str, float] = field(default_factory=dict)
    worker: str | None = None
    running_s: float | None = None  # manager logged RUNNING
    commit_start_s: float | None = None
    commit_end_s: float | None = None
    input_mgr_s: float = 0.0
    input_MB: float = 0.0
    worker_start_s: float | None = None
    worker_end_s: float | None = None
    waiting_retrieval_s: float | None = None
    retrieved_s: float | None = None
    output_mgr_s: float = 0.0
    output_MB: float = 0.0
    done_s: float | None = None
    result: str | None = None
    lost_s: float | None = None  # requeued (worker lost) at this time
    library: bool = False


@dataclass
class WorkerRecord:
    worker_id: str
    connect_s: float
    disconnect_s: float | None = None
    reason: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    #: (file, MB, start_s, wall_s) of TRANSFER INPUT / OUTPUT and CACHE_UPDATE records
    inputs: list[tuple[str, float, float, float]] = field(default_factory=list)
    outputs: list[tuple[str, float, float, float]] = field(default_factory=list)
    cache_updates: list[tuple[str, float, float, float]] = field(default_factory=list)


@dataclass
class LibraryRecord:
    library_id: str
    worker: str | None = None
    sent_s: float | None = None
    started_s: float | None = None
    failed_s: float | None = None


@dataclass
class TxnLog:
    """A parsed transaction log; every time is seconds from ``origin_us``."""

    path: str
    variant: str
    origin_us: int
    manager_pid: str
    end_s: float | None
    workers: dict[str, WorkerRecord]
    attempts: list[Attempt]
    libraries: dict[str, LibraryRecord]
    applications: list[tuple[float, str]]

    def task_attempts(self, *, libraries: bool = False) -> list[Attempt]:
        """Attempts of ordinary tasks (or of library tasks), in the order they became ready."""
        return [a for a in self.attempts if a.library == libraries]

    def completions(self) -> list[float]:
        """Sorted DONE SUCCESS times of the non-library tasks."""
        return sorted(a.done_s for a in self.attempts
                      if not a.library and a.result == "SUCCESS" and a.done_s is not None)


# --- reading -----------------------------------------------------------------------
def read_log(path: str | Path, *, variant: str | None = None) -> TxnLog:
    """Parse a TaskVine transaction log.

    ``variant`` (``"2023"`` or ``"current"``) overrides the detection. Raises
    :class:`InputError` naming the file, line and field for a missing file, an empty
    log, or a malformed record (unknown subject, missing fields, bad number or JSON).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("transaction log not found", file=path)
    if variant is not None and variant not in VARIANTS:
        raise InputError(f"unknown log variant {variant!r}; valid: {', '.join(VARIANTS)}",
                         file=path, field="variant")
    with path.open(encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    return _Parser(str(path), lines, variant).parse()


class _Parser:
    def __init__(self, path: str, lines: list[str], variant: str | None) -> None:
        self.path = path
        self.lines = lines
        self.variant = variant or _detect_variant(lines)
        self.scale = 1e-6 if self.variant == "2023" else 1.0  # TRANSFER size -> MB
        self.origin: int | None = None
        self.pid = ""
        self.end_s: float | None = None
        self.workers: dict[str, WorkerRecord] = {}
        self.attempts: list[Attempt] = []
        self.open: dict[str, Attempt] = {}  # task id -> current attempt
        self.libs: dict[str, LibraryRecord] = {}
        self.apps: list[tuple[float, str]] = []
        self.lineno = 0

    def err(self, msg: str, fld: str) -> InputError:
        return InputError(msg, file=self.path, line=self.lineno, field=fld)

    def parse(self) -> TxnLog:
        for i, raw in enumerate(self.lines, start=1):
            self.lineno = i
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 4:
                raise self.err(f"expected '<time_us> <pid> <SUBJECT> ...', got {line[:60]!r}",
                               "time")
            t_us = self.int(parts[0], "time")
            if self.origin is None:
                self.origin = t_us
                self.pid = parts[1]
            t = (t_us - self.origin) / 1e6
            subject = parts[2]
            handler = getattr(self, "on_" + subject.lower(), None)
            if handler is None:
                raise self.err(f"unknown subject {subject!r}; valid: MANAGER, WORKER, TASK, "
                               "LIBRARY, CATEGORY, APPLICATION", "subject")
            handler(t, parts, line)
        if self.origin is None:
            raise InputError("transaction log has no records", file=self.path)
        for att in self.attempts:
            att.library = att.task_id in self.libs
        return TxnLog(self.path, self.variant, self.origin, self.pid, self.end_s, self.workers,
                      self.attempts, self.libs, self.apps)

    # -- field helpers --
    def int(self, s: str, fld: str) -> int:
        try:
            return int(s)
        except ValueError:
            raise self.err(f"expected an integer, got {s!r}", fld) from None

    def float(self, s: str, fld: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise self.err(f"expected a number, got {s!r}", fld) from None
        if not math.isfinite(v):
            raise self.err(f"expected a finite number, got {s!r}", fld)
        return v

    def need(self, parts: list[str], n: int, fld: str) -> None:
        if len(parts) < n:
            raise self.err(f"{parts[2]} {parts[4] if len(parts) > 4 else ''} record has "
                           f"{len(parts)} fields, needs {n}", fld)

    def jsons(self, line: str, fld: str) -> list[dict[str, Any]]:
        """Every JSON object on the line, in order."""
        out = []
        i = line.find("{")
        while i >= 0:
            try:
                obj, end = _DECODER.raw_decode(line, i)
            except json.JSONDecodeError as e:
                raise self.err(f"invalid JSON: {e.msg}", fld) from None
            if not isinstance(obj, dict):
                raise self.err("expected a JSON object", fld)
            out.append(obj)
            i = line.find("{", end)
        return out

    def rel(self, unix_s: float) -> float:
        assert self.origin is not None
        return unix_s - self.origin / 1e6

    # -- subjects --
    def on_manager(self, t: float, parts: list[str], line: str) -> None:
        self.need(parts, 5, "event")
        if parts[4] == "START":
            pass  # the origin: set from the first record, which is START in TaskVine's logs
        elif parts[4] == "END":
            self.end_s = t
        else:
            raise self.err(f"unknown MANAGER event {parts[4]!r}; valid: START, END", "event")

    def on_worker(self, t: float, parts: list[str], line: str) -> None:
        self.need(parts, 5, "event")
        wid, ev = parts[3], parts[4]
        if ev == "CONNECTION":
            self.workers.setdefault(wid, WorkerRecord(wid, t))
            return
        w = self.workers.get(wid)
        if w is None:  # a record for a worker that never connected: keep it anyway
            w = self.workers[wid] = WorkerRecord(wid, t)
        if ev == "DISCONNECTION":
            self.need(parts, 6, "reason")
            w.disconnect_s, w.reason = t, parts[5]
        elif ev == "RESOURCES":
            (res,) = self.jsons(line, "resources")[:1] or [{}]
            w.resources = {k: _value(v) for k, v in res.items()}
        elif ev in ("CACHE_UPDATE", "TRANSFER"):
            off = 1 if ev == "TRANSFER" else 0
            self.need(parts, 9 + off, "start_time_us")
            name = parts[5 + off]
            size = self.float(parts[6 + off], "size") * self.scale
            wall = self.int(parts[7 + off], "wall_time_us") / 1e6
            start_us = self.int(parts[8 + off], "start_time_us")
            start = (start_us - self.origin) / 1e6 if start_us else t - wall  # type: ignore[operator]
            row = (name, size, start, wall)
            if ev == "CACHE_UPDATE":
                w.cache_updates.append(row)
            elif parts[5] == "INPUT":
                w.inputs.append(row)
            elif parts[5] == "OUTPUT":
                w.outputs.append(row)
            else:
                raise self.err(f"unknown transfer direction {parts[5]!r}; valid: INPUT, OUTPUT",
                               "direction")
        else:
            raise self.err(f"unknown WORKER event {ev!r}", "event")

    def on_category(self, t: float, parts: list[str], line: str) -> None:
        pass  # resource categories do not affect the replayed workload

    def on_application(self, t: float, parts: list[str], line: str) -> None:
        self.apps.append((t, " ".join(parts[3:])))

    def on_library(self, t: float, parts: list[str], line: str) -> None:
        self.need(parts, 5, "event")
        lib = self.libs.setdefault(parts[3], LibraryRecord(parts[3]))
        ev = parts[4]
        if len(parts) > 5:
            lib.worker = parts[5]
        if ev == "SENT":
            lib.sent_s = t
        elif ev == "STARTED":
            lib.started_s = t
        elif ev == "FAILURE":
            lib.failed_s = t
        elif ev != "WAITING":
            raise self.err(f"unknown LIBRARY event {ev!r}; valid: WAITING, SENT, STARTED, "
                           "FAILURE", "event")

    def on_task(self, t: float, parts: list[str], line: str) -> None:
        self.need(parts, 5, "event")
        tid, ev = parts[3], parts[4]
        if ev in ("READY", "WAITING"):
            self.need(parts, 8, "attempt")
            prev = self.open.get(tid)
            if prev is not None and prev.done_s is None:
                prev.lost_s = t
            req = self.jsons(line, "resources_requested")
            a = Attempt(tid, self.int(parts[7], "attempt"), t, category=parts[5],
                        requested={k: _value(v) for k, v in (req[0] if req else {}).items()})
            self.attempts.append(a)
            self.open[tid] = a
            return
        if ev not in _TASK_EVENTS:
            raise self.err(f"unknown TASK event {ev!r}; valid: READY, WAITING, "
                           f"{', '.join(_TASK_EVENTS)}", "event")
        a = self.open.get(tid)
        if a is None:
            raise self.err(f"task {tid} has {ev} before READY/WAITING", "task_id")
        if ev == "RUNNING":
            self.need(parts, 6, "worker_id")
            a.worker, a.running_s = parts[5], t
            info = (self.jsons(line, "resources_allocated") or [{}])[0]
            self._times(a, info)
        elif ev == "WAITING_RETRIEVAL":
            a.waiting_retrieval_s = t
        elif ev == "RETRIEVED":
            self.need(parts, 6, "result")
            a.retrieved_s, a.result = t, parts[5]
            objs = self.jsons(line, "resources_measured")
            if objs:
                self._times(a, objs[-1])
        elif ev == "DONE":
            self.need(parts, 6, "result")
            a.done_s, a.result = t, parts[5]
        else:
            raise self.err(f"unknown TASK event {ev!r}; valid: READY, WAITING, RUNNING, "
                           "WAITING_RETRIEVAL, RETRIEVED, DONE", "event")

    def _times(self, a: Attempt, info: dict[str, Any]) -> None:
        def get(key: str) -> float | None:
            return _value(info[key]) if key in info else None

        for key, attr in (("time_commit_start", "commit_start_s"),
                          ("time_commit_end", "commit_end_s"),
                          ("time_worker_start", "worker_start_s"),
                          ("time_worker_end", "worker_end_s")):
            v = get(key)
            if v is not None and v > 0:
                setattr(a, attr, self.rel(v))
        for key, attr in (("time_input_mgr", "input_mgr_s"), ("size_input_mgr", "input_MB"),
                          ("time_output_mgr", "output_mgr_s"), ("size_output_mgr", "output_MB")):
            v = get(key)
            if v is not None:
                setattr(a, attr, v)


def _value(v: Any) -> float:
    """``[value, "unit"]`` -> value (a bare number passes)."""
    if isinstance(v, list) and v:
        v = v[0]
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _detect_variant(lines: Sequence[str]) -> str:
    for line in lines:
        if line.startswith("#"):
            continue
        parts = line.split(None, 5)
        if len(parts) >= 5 and parts[2] == "TASK":
            if parts[4] == "READY":
                return "current"
            if parts[4] == "WAITING":
                return "2023"
    for line in lines:
        if line.startswith("#") and " TASK " in line:
            if " READY " in line:
                return "current"
            if " WAITING " in line:
                return "2023"
    return "current"


# --- the workload --------------------------------------------------------------------
@dataclass(frozen=True)
class Extraction:
    """What :func:`workload_from_log` measured, for reporting."""

    dropped: tuple[str, ...]  # tasks without a successful attempt (no measured time)
    package_sends: int
    notes: tuple[str, ...] = ()


def workload_from_log(log: TxnLog, *, library: str = "library",
                      lookahead: int = 100) -> tuple[TaskWorkload, Extraction]:
    """Turn a parsed log into a replayable workload; every cost measured from the log.

    * Tasks: every non-library task that succeeded; ``duration_s`` = its successful
      attempt's ``time_worker_end - time_worker_start``; resources as requested;
      ``submit_s`` = first READY/WAITING; priority 0 (FIFO by task id order of
      readiness). If the log has libraries, every task is a call to ``library``
      (the log does not name the library a call uses).
    * Workers: connection/disconnection times; ``lost`` if the reason is FAILURE;
      resources from the first RESOURCES record.
    * Library: the package is the largest file sent to a worker before its library;
      ``bandwidth_MBps`` the median of size/wall over those sends; the manager's
      ``transfer_overhead_s`` the median idle time between consecutive package sends
      while another worker was already waiting for one; ``unpack_s`` the median
      CACHE_UPDATE wall of files over 1 MB; ``startup_s`` samples of (first call's
      worker start - end of the unpack) per worker; ``slots`` the most calls seen
      executing at once on one worker; ``reserves_resources`` false when the manager
      placed more calls on a worker than would fit beside the library.
    * Manager: ``dispatch_s`` median commit time, ``retrieve_s`` median output time.
    """
    ok: dict[str, Attempt] = {}
    first_ready: dict[str, float] = {}
    order: list[str] = []
    for a in log.task_attempts():
        if a.task_id not in first_ready:
            first_ready[a.task_id] = a.ready_s
            order.append(a.task_id)
        if (a.result == "SUCCESS" and a.worker_start_s is not None
                and a.worker_end_s is not None):
            ok[a.task_id] = a
    dropped = tuple(t for t in order if t not in ok)
    has_lib = bool(log.libraries)
    tasks = []
    for tid in order:
        a = ok.get(tid)
        if a is None:
            continue
        r = a.requested
        tasks.append(TaskSpec(
            task_id=tid, submit_s=max(0.0, first_ready[tid]),
            cores=_num(r.get("cores"), 1.0), memory_MB=_num(r.get("memory"), 0.0),
            disk_MB=_num(r.get("disk"), 0.0),
            duration_s=max(0.0, a.worker_end_s - a.worker_start_s),  # type: ignore[operator]
            library=library if has_lib else None, input_MB=a.input_MB, output_MB=a.output_MB))
    workers = []
    for w in sorted(log.workers.values(), key=lambda w: (w.connect_s, w.worker_id)):
        res = w.resources
        workers.append(WorkerSpec(
            worker_id=w.worker_id, connect_s=w.connect_s, disconnect_s=w.disconnect_s,
            lost=w.reason == "FAILURE", cores=_num(res.get("cores"), 1.0),
            memory_MB=_num(res.get("memory"), 0.0), disk_MB=_num(res.get("disk"), 0.0)))
    commit = [a.commit_end_s - a.commit_start_s for a in ok.values()
              if a.commit_end_s is not None and a.commit_start_s is not None]
    retrieve = [a.output_mgr_s for a in ok.values()]
    libs: dict[str, LibrarySpec] = {}
    sends: list[tuple[float, float, float, str]] = []  # (start, wall, MB, worker)
    bandwidth = 100.0
    overhead = 0.0
    if has_lib:
        libs[library], sends, bandwidth, overhead = _library(log, library, ok)
    manager = ManagerSpec(bandwidth_MBps=bandwidth, transfer_overhead_s=overhead,
                          dispatch_s=_median(commit, 0.0), retrieve_s=_median(retrieve, 0.0),
                          lookahead=lookahead)
    notes = []
    if dropped:
        notes.append(f"{len(dropped)} task(s) never succeeded in the log and are left out: "
                     + ", ".join(dropped[:10]))
    wl = TaskWorkload(tuple(tasks), tuple(workers), libs, manager,
                      origin_unix_s=log.origin_us / 1e6, source=log.path)
    return wl, Extraction(dropped, len(sends), tuple(notes))


def _library(log: TxnLog, name: str, ok: dict[str, Attempt]
             ) -> tuple[LibrarySpec, list[tuple[float, float, float, str]], float, float]:
    sends = []
    unpack = []
    startup = []
    first_start: dict[str, float] = {}
    for a in ok.values():
        if a.worker is not None and a.worker_start_s is not None:
            first_start[a.worker] = min(first_start.get(a.worker, math.inf), a.worker_start_s)
    lib_cores = []
    for lib in log.libraries.values():
        if lib.worker is None or lib.sent_s is None or lib.worker not in log.workers:
            continue
        w = log.workers[lib.worker]
        before = [x for x in w.inputs if x[2] <= lib.sent_s]
        if not before:
            continue
        pkg = max(before, key=lambda x: x[1])
        sends.append((pkg[2], pkg[3], pkg[1], w.worker_id, pkg[0]))
        big = [c for c in w.cache_updates if c[1] > 1.0 and c[3] > 0]
        if big:
            unpack.append(big[0][3])
            end = big[0][2] + big[0][3]
            fs = first_start.get(w.worker_id)
            if fs is not None and fs > end:
                startup.append(round(fs - end, 6))
    for a in log.task_attempts(libraries=True):
        c = _num(a.requested.get("cores"), math.nan)
        if not math.isnan(c):
            lib_cores.append(c)
    sends.sort()
    package = _mode([s[4] for s in sends]) or "package.tar.gz"
    sizes = [s[2] for s in sends]
    rates = [s[2] / s[1] for s in sends if s[1] > 0]
    bandwidth = _median(rates, 100.0)
    connect = {w.worker_id: w.connect_s for w in log.workers.values()}
    gaps = []
    for prev, nxt in zip(sends, sends[1:]):
        end = prev[0] + prev[1]
        if connect.get(nxt[3], math.inf) <= end:  # the next worker was already waiting
            gaps.append(max(0.0, nxt[0] - end))
    slots, per_worker = _concurrency(ok.values())
    cores = _median(lib_cores, 1.0)
    call_cores = _median([_num(a.requested.get("cores"), 1.0) for a in ok.values()], 1.0)
    wcores = _median([_num(w.resources.get("cores"), 1.0) for w in log.workers.values()], 1.0)
    reserves = per_worker * call_cores + cores <= wcores
    spec = LibrarySpec(name=name, package=package, package_MB=_median(sizes, 0.0),
                       unpack_s=_median(unpack, 0.0),
                       startup_s=tuple(startup) or (0.0,), slots=max(1, slots), cores=cores,
                       reserves_resources=reserves)
    return spec, [s[:4] for s in sends], bandwidth, _median(gaps, 0.0)


def _concurrency(attempts: Iterable[Attempt]) -> tuple[int, int]:
    """(most calls executing at once on one worker, most calls placed at once on one)."""
    execs: dict[str, list[tuple[float, int]]] = {}
    placed: dict[str, list[tuple[float, int]]] = {}
    for a in attempts:
        if a.worker is None:
            continue
        if a.worker_start_s is not None and a.worker_end_s is not None:
            execs.setdefault(a.worker, []).extend([(a.worker_start_s, 1), (a.worker_end_s, -1)])
        if a.running_s is not None and a.waiting_retrieval_s is not None:
            placed.setdefault(a.worker, []).extend([(a.running_s, 1),
                                                    (a.waiting_retrieval_s, -1)])

    def peak(d: dict[str, list[tuple[float, int]]]) -> int:
        best = 0
        for ev in d.values():
            cur = 0
            for _, k in sorted(ev, key=lambda e: (e[0], e[1])):  # ends before starts
                cur += k
                best = max(best, cur)
        return best

    return peak(execs), peak(placed)


def _num(v: float | None, default: float) -> float:
    return default if v is None or math.isnan(v) else float(v)


def _median(xs: Sequence[float], default: float) -> float:
    return float(statistics.median(xs)) if xs else default


def _mode(xs: Sequence[str]) -> str | None:
    if not xs:
        return None
    return max(sorted(set(xs)), key=xs.count)


# --- writing -------------------------------------------------------------------------
#: One record the task engine produces: (time_s, subject, id, event, fields).
Record = tuple[float, str, str, str, tuple[Any, ...]]

_HEADER = {
    "2023": "WAITING",
    "current": "READY",
}


def format_records(records: Iterable[Record], *, origin_unix_s: float = 0.0,
                   pid: int = 0, variant: str = "current") -> list[str]:
    """Lines of a transaction log (header included) for the engine's records.

    Record fields by (subject, event), all times in seconds from the origin:

    * MANAGER START|END: ``()``
    * WORKER CONNECTION: ``(address,)``; DISCONNECTION: ``(reason,)``;
      RESOURCES: ``(cores, memory_MB, disk_MB)``;
      TRANSFER: ``(direction, file, size_MB, wall_s, start_s)``;
      CACHE_UPDATE: ``(file, size_MB, wall_s, start_s)``
    * TASK READY: ``(category, attempt, cores, memory_MB, disk_MB)``;
      RUNNING: ``(worker, commit_start_s, commit_end_s, input_MB, cores, memory_MB,
      disk_MB)``; WAITING_RETRIEVAL: ``(worker,)``;
      RETRIEVED: ``(result, exit, worker_start_s, worker_end_s, output_MB)``;
      DONE: ``(result, exit)``
    * LIBRARY SENT|STARTED|FAILURE: ``(worker,)``
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    ready = _HEADER[variant]
    size_scale = 1e6 if variant == "2023" else 1.0
    o_us = round(origin_unix_s * 1e6)

    def us(t: float) -> int:
        return o_us + round(t * 1e6)

    def unix(t: float) -> float:
        return round(origin_unix_s + t, 6)

    def res(c: float, m: float, d: float) -> str:
        return json.dumps({"memory": [_n(m), "MB"], "disk": [_n(d), "MB"],
                           "cores": [_n(c), "cores"]}, separators=(",", ":"))

    out = [
        "# time manager_pid MANAGER manager_pid START|END time_from_origin",
        "# time manager_pid WORKER worker_id CONNECTION host:port",
        "# time manager_pid WORKER worker_id DISCONNECTION (UNKNOWN|IDLE_OUT|FAST_ABORT|"
        "FAILURE|STATUS_WORKER|EXPLICIT)",
        "# time manager_pid WORKER worker_id RESOURCES {resources}",
        "# time manager_pid WORKER worker_id CACHE_UPDATE filename size_in_mb wall_time_us "
        "start_time_us",
        "# time manager_pid WORKER worker_id TRANSFER (INPUT|OUTPUT) filename size_in_mb "
        "wall_time_us start_time_us",
        f"# time manager_pid TASK task_id {ready} category_name (FIRST_RESOURCES|MAX_RESOURCES) "
        "attempt_number {resources_requested}",
        "# time manager_pid TASK task_id RUNNING worker_id (FIRST_RESOURCES|MAX_RESOURCES) "
        "{resources_allocated}",
        "# time manager_pid TASK task_id WAITING_RETRIEVAL worker_id",
        "# time manager_pid TASK task_id RETRIEVED (SUCCESS|UNKNOWN|...) {limits_exceeded} "
        "{resources_measured}",
        "# time manager_pid TASK task_id DONE (SUCCESS|UNKNOWN|...) exit_code",
        "# time manager_pid LIBRARY library_id (WAITING|SENT|STARTED|FAILURE) worker_id",
    ]
    for t, subj, ident, ev, f in records:
        head = f"{us(t)} {pid} {subj} {ident} {ev}"
        if subj == "MANAGER":
            out.append(f"{us(t)} {pid} MANAGER {pid} {ev} {round(t * 1e6)}")
        elif subj == "WORKER":
            if ev == "RESOURCES":
                out.append(f"{head} {res(*f)}")
            elif ev == "TRANSFER":
                d, name, mb, wall, start = f
                out.append(f"{head} {d} {name} {_n(mb * size_scale)} {round(wall * 1e6)} "
                           f"{us(start)}")
            elif ev == "CACHE_UPDATE":
                name, mb, wall, start = f
                out.append(f"{head} {name} {_n(mb * size_scale)} {round(wall * 1e6)} "
                           f"{us(start)}")
            else:
                out.append(f"{head} {' '.join(str(x) for x in f)}")
        elif subj == "TASK":
            if ev == "READY":
                cat, attempt, c, m, d = f
                out.append(f"{us(t)} {pid} TASK {ident} {ready} {cat} FIRST_RESOURCES {attempt} "
                           f"{res(c, m, d)}")
            elif ev == "RUNNING":
                w, cs, ce, mb, c, m, d = f
                alloc = {"time_commit_start": [unix(cs), "s"], "time_commit_end": [unix(ce), "s"],
                         "time_input_mgr": [round(ce - cs, 6), "s"],
                         "size_input_mgr": [mb, "MB"], "memory": [_n(m), "MB"],
                         "disk": [_n(d), "MB"], "gpus": [0, "gpus"], "cores": [_n(c), "cores"]}
                out.append(f"{head} {w} FIRST_RESOURCES "
                           f"{json.dumps(alloc, separators=(',', ':'))}")
            elif ev == "RETRIEVED":
                result, code, ws, we, mb = f
                meas = {"time_worker_start": [unix(ws), "s"], "time_worker_end": [unix(we), "s"],
                        "size_output_mgr": [mb, "MB"]}
                out.append(f"{head} {result} {code} {{}} "
                           f"{json.dumps(meas, separators=(',', ':'))}")
            else:
                out.append(f"{head} {' '.join(str(x) for x in f)}")
        else:
            out.append(f"{head} {' '.join(str(x) for x in f)}")
    return out


def write_log(records: Iterable[Record], path: str | Path, **kw: Any) -> Path:
    """Write a transaction log atomically (the file appears whole, or not at all)."""
    path = Path(path)
    lines = format_records(records, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _n(x: float) -> int | float:
    """Integers without a trailing .0 (as TaskVine prints them)."""
    return int(x) if float(x).is_integer() else round(float(x), 6)

