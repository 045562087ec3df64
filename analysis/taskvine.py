"""TaskVine figures: task and worker timelines, completion curves (WORKS'23 Fig. 13c).

Sly-Delgado et al., "TaskVine: Managing In-Cluster Storage for High-Throughput Data
Intensive Workflows", WORKS'23. Every figure is drawn from transaction logs only
(the real one, and the ones the simulator writes), never from the engine, so the
same code draws a real run and a simulated run.

* ``tasks``: one bar per task attempt (y: attempts by dispatch time; x: seconds from
  the log's origin), coloured by phase: transfer in (commit), waiting at the worker,
  executing, waiting for retrieval, transfer out / retrieval, and failed or lost.
* ``workers``: one block per worker (by connection time): a lifetime bar, a cache row
  (package unpacks), a transfer row (inputs from the manager), then one row per slot
  with the executions.
* ``completion``: the completion curves of the real run and of every simulated run.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pandas as pd

from analysis.base import GRIDS_DIR, Figure, done, save
from sim.errors import InputError
from sim.plots import plt
from sim.store import Store
from sim.traces.taskvine import TxnLog, read_log

#: the runs `clustersim figures taskvine` needs: (label, scenario file in scenarios/, --set)
RUNS = (("taskvine-bgd-reuse", "taskvine-bgd.yaml", ()),
        ("taskvine-bgd-noreuse", "taskvine-bgd-noreuse.yaml", ()))
PHASES = {  # phase -> colour
    "transfer in": "#1f77b4",
    "waiting at worker": "#c7c7c7",
    "executing": "#2ca02c",
    "waiting for retrieval": "#ff7f0e",
    "transfer out": "#9467bd",
    "failed": "#d62728",
}


def draw(runs: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    """Draw every figure for the real log the runs replayed and every finished run (its
    simulated transaction log, from the store)."""
    paths: list[Path] = []
    d = done(runs)
    logs = {"real": real_log(d["scenario"].iloc[0]["workload"])} if len(d) else {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, key in zip(d["label"], d["key"]):
            p = Path(tmp) / label
            p.write_bytes(store.files(key)["transactions"])
            logs[label] = read_log(p)
    for name, log in logs.items():
        paths += draw_tasks(log, out, f"tasks-{name}", title=f"tasks: {name}")
        paths += draw_workers(log, out, f"workers-{name}", title=f"workers: {name}")
    paths += draw_completion(logs, out, "completion")
    return paths


def real_log(workload: dict) -> TxnLog:
    """The real log a stored run replayed (``workload`` of its resolved scenario): the
    scenario files' log, checked against the stored hash."""
    from sim.taskrun import load_task_scenario

    path = Path(load_task_scenario(GRIDS_DIR / RUNS[0][1]).log)
    want = workload["taskvine_log"]
    if hashlib.sha256(path.read_bytes()).hexdigest() != want["sha256"]:
        raise InputError(f"the runs replayed another log ({want['file']}) than this "
                         "figure set's", file=path)
    return read_log(path, variant=workload.get("variant"))


def task_phases(log: TxnLog) -> pd.DataFrame:
    """One row per (attempt, phase) with start and end seconds, attempts by dispatch time."""
    rows = []
    atts = sorted((a for a in log.task_attempts() if a.running_s is not None),
                  key=lambda a: (a.running_s, a.task_id))
    for y, a in enumerate(atts):
        cs = a.commit_start_s if a.commit_start_s is not None else a.running_s
        ce = a.commit_end_s if a.commit_end_s is not None else a.running_s
        segs = [("transfer in", cs, ce)]
        if a.worker_start_s is not None:
            segs.append(("waiting at worker", ce, a.worker_start_s))
            if a.worker_end_s is not None:
                segs.append(("executing", a.worker_start_s, a.worker_end_s))
                if a.retrieved_s is not None:
                    segs.append(("waiting for retrieval", a.worker_end_s,
                                 a.waiting_retrieval_s or a.retrieved_s))
                    segs.append(("transfer out", a.waiting_retrieval_s or a.retrieved_s,
                                 a.done_s if a.done_s is not None else a.retrieved_s))
        if a.result not in (None, "SUCCESS") or a.lost_s is not None:
            end = a.lost_s if a.lost_s is not None else a.done_s
            segs.append(("failed", ce, end if end is not None else ce))
        for phase, s, e in segs:
            if s is not None and e is not None:
                rows.append({"row": y, "task_id": a.task_id, "attempt": a.attempt,
                             "worker": a.worker, "phase": phase, "start_s": s,
                             "end_s": max(s, e)})
    return pd.DataFrame(rows, columns=["row", "task_id", "attempt", "worker", "phase",
                                       "start_s", "end_s"])


def _bars(df: pd.DataFrame, by: str, colours: dict[str, str], ylabel: str, title: str):
    """One horizontal bar per row of ``df`` (``row``, ``start_s``, ``end_s``), coloured by
    its ``by`` column in the order of ``colours``; (figure, axes)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for value, colour in colours.items():
        d = df[df[by] == value]
        if len(d):
            ax.barh(d["row"], d["end_s"] - d["start_s"], left=d["start_s"], height=1.0,
                    color=colour, label=value, linewidth=0)
    ax.set_xlabel("time from manager start (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig, ax


def draw_tasks(log: TxnLog, out: Path, stem: str, title: str = "") -> list[Path]:
    df = task_phases(log)
    fig, ax = _bars(df, "phase", PHASES, "task attempts (by dispatch time)", title)
    fig.tight_layout()
    return save(fig, out, stem, df)


def worker_rows(log: TxnLog) -> pd.DataFrame:
    """Rows of the workers plot: kind (lifetime/cache/transfer/slot), row y, start, end."""
    rows = []
    end_run = log.end_s or max((a.done_s or 0.0) for a in log.attempts) if log.attempts else 0.0
    execs: dict[str, list[tuple[float, float]]] = {}
    for a in log.task_attempts():
        if a.worker and a.worker_start_s is not None:
            execs.setdefault(a.worker, []).append(
                (a.worker_start_s, a.worker_end_s if a.worker_end_s is not None
                 else (a.lost_s or end_run)))
    y = 0
    for w in sorted(log.workers.values(), key=lambda w: (w.connect_s, w.worker_id)):
        slots = max(1, int(w.resources.get("cores", 1) or 1))
        base = y
        rows.append(("lifetime", w.worker_id, base, w.connect_s,
                     w.disconnect_s if w.disconnect_s is not None else end_run))
        for _, _, s, wall in w.cache_updates:
            if wall > 0:
                rows.append(("cache", w.worker_id, base + 1, s, s + wall))
        for _, _, s, wall in w.inputs + w.outputs:
            rows.append(("transfer", w.worker_id, base + 2, s, s + wall))
        free_at = [float("-inf")] * slots  # greedy slot assignment of executions
        for s, e in sorted(execs.get(w.worker_id, [])):
            k = min(range(slots), key=lambda i: (free_at[i] > s + 1e-9, free_at[i]))
            free_at[k] = e
            rows.append(("executing", w.worker_id, base + 3 + k, s, e))
        y += slots + 4
    return pd.DataFrame(rows, columns=["kind", "worker", "row", "start_s", "end_s"])


def draw_workers(log: TxnLog, out: Path, stem: str, title: str = "") -> list[Path]:
    df = worker_rows(log)
    colours = {"lifetime": "#dddddd", "cache": "#8c564b", "transfer": "#1f77b4",
               "executing": "#2ca02c"}
    fig, ax = _bars(df, "kind", colours, "workers (by connection)", title)
    ax.set_yticks([])
    fig.tight_layout()
    return save(fig, out, stem, df)


def draw_completion(logs: dict[str, TxnLog], out: Path, stem: str) -> list[Path]:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    rows = []
    for name, log in logs.items():
        c = log.completions()
        ax.step(c, range(1, len(c) + 1), where="post", label=name,
                linestyle="-" if name == "real" else "--")
        rows += [{"run": name, "done": i, "time_s": t} for i, t in enumerate(c, start=1)]
    ax.set_xlabel("time from manager start (s)")
    ax.set_ylabel("tasks completed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out, stem, pd.DataFrame(rows, columns=["run", "done", "time_s"]))


FIGURES = {"taskvine": Figure("taskvine", "", "task and worker timelines of the real and "
                              "simulated BGD runs, completion curves", draw, runs=RUNS)}
