"""Real mode on a small LocalCluster (2 worker processes x 2 GPUs), time-compressed."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.control import Controller
from sim.errors import InputError
from sim.model.cluster import ClusterSpec
from sim.model.decision import Decision
from sim.model.job import JobSpec, TaskSpec
from sim.model.snapshot import Snapshot
from sim.model.throughput import bundled_table
from sim.policies.base import Policy
from sim.real import trainer
from sim.real.cluster import connect
from sim.real.executor import RealConfig, RealExecutor

pytestmark = [pytest.mark.real, pytest.mark.slow]

CLUSTER = ClusterSpec("n2g2", num_switch=1, nodes_per_switch=2, gpus_per_node=2)
TABLE = bundled_table("A100")


@pytest.fixture(scope="module")
def workers():
    w = connect(CLUSTER, cpu_slots=1)
    yield w
    w.close()


def job(jid: str, iterations: int, submit_s: int = 0) -> JobSpec:
    return JobSpec(job_id=jid, idx=int(jid), submit_s=submit_s, iterations=iterations,
                   model="resnet50", batch_size=64, deadline_s=10**7, num_gpu=1,
                   duration_s=1000)


class Scripted(Policy):
    """Test policy: ``plan`` is [(from time_s, {job: gpus})]; wakes at the next step."""

    NAME = "scripted-test"

    def __init__(self, plan, dispatch=(), priorities=None):
        super().__init__()
        self.plan, self.dispatch, self.priorities = plan, dispatch, priorities or {}
        self.sent = False

    def decide(self, snap: Snapshot) -> Decision:
        alloc: dict = {}
        for t, a in self.plan:
            if t <= snap.now_s + 1e-9:
                alloc = a
        runnable = snap.index()
        nxt = [t for t, _ in self.plan if t > snap.now_s + 1e-9]
        extra: dict = {}
        if not self.sent and snap.tasks:
            self.sent = True
            extra = {"dispatch": self.dispatch, "priorities": self.priorities}
        return Decision(alloc={j: g for j, g in alloc.items() if j in runnable},
                        wake_s=min(nxt) if nxt else None, **extra)


def reference_weights(jid: str, iterations: int, dim: int) -> np.ndarray:
    a, b = trainer.problem(jid, dim)
    w = np.zeros(dim)
    for i in range(iterations):
        row = a[i % trainer.ROWS]
        w -= trainer.LEARNING_RATE * (row @ w - b[i % trainer.ROWS]) * row
    return w


def worker_pids(workers) -> dict[str, int]:
    info = workers.client.scheduler_info(n_workers=-1)["workers"]
    return {str(info[a]["name"]): pid for a, pid in workers.client.run(os.getpid).items()}


def run(workers, jobs, policy, tmp_path, **cfg) -> RealExecutor:
    tasks = cfg.pop("tasks", None)
    ex = RealExecutor(jobs, CLUSTER, TABLE, Controller(policy), workers, tmp_path / "ckpt",
                      config=RealConfig(**cfg), tasks=tasks)
    ex.run()
    return ex


def test_decision_reaches_the_worker_of_the_chosen_gpus(workers, tmp_path):
    # GPUs 2 and 3 are node 1: the segment must run in node 1's worker process
    ex = run(workers, [job("0", 2000)], Scripted([(0, {"0": (2, 3)})]), tmp_path,
             compression=1000)
    (seg,) = ex.segment_log
    assert seg["pid"] == worker_pids(workers)["node1"] != os.getpid()
    assert seg["done"] and seg["iteration"] == 2000
    assert ex.runs["0"].status == "done"
    # compressed time: 2000 iterations at 11.8 it/s x 1000 take ~0.17 s of wall clock
    assert 0.1 < seg["t_stop"] - seg["t_begin"] < 1.0


def test_rescale_resumes_from_the_checkpoint(workers, tmp_path):
    n = 8000
    ex = run(workers, [job("0", n)], Scripted([(0, {"0": (0,)}), (600, {"0": (0, 1)})]),
             tmp_path, compression=1000, dim=32)
    first, second = ex.segment_log
    assert not first["done"] and 0 < first["iteration"] < n
    assert second["start_iteration"] == first["iteration"]  # resumed, not restarted
    assert second["done"] and second["iteration"] == n
    r = ex.runs["0"]
    assert r.rescales == 1 and r.status == "done"
    # the state continued bit for bit: same weights as one uninterrupted run
    _it, w = trainer.load_checkpoint(trainer.checkpoint_path(tmp_path / "ckpt", "0"))
    np.testing.assert_array_equal(w, reference_weights("0", n, 32))
    kinds = [e[4].split()[0] for e in ex.events if e[1] == "overhead"]
    assert kinds == ["kind=start", "kind=resize"]


def test_cpu_tasks_wait_in_the_executor_queue_in_priority_order(workers, tmp_path):
    tasks = [TaskSpec(f"t{i}", priority=float(i), params={"fn": "sleep",
                                                          "args": {"duration_s": 0.05}})
             for i in range(4)]
    # one slot on node0: t0 is raised above all others before anything is submitted
    pol = Scripted([], dispatch=tuple((t.task_id, "node0") for t in tasks),
                   priorities={"t0": 10.0})
    ex = run(workers, [], pol, tmp_path, compression=100, tasks=tasks)
    started = [e[2] for e in ex.events if e[1] == "task_started"]
    assert started == ["t0", "t3", "t2", "t1"]
    assert sum(e[1] == "task_finished" for e in ex.events) == 4


def test_killed_worker_job_restarts_from_checkpoint_and_finishes(workers, tmp_path):
    n = 4000  # ~3.4 s of wall clock at 2 GPUs and compression 100
    ckpt = tmp_path / "ckpt"
    victim = worker_pids(workers)["node0"]

    def kill_when_running() -> None:
        marker = trainer.begin_marker(ckpt, "0", 1)
        deadline = time.time() + 30
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(1.0)  # past a few periodic checkpoints
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    ex = run(workers, [job("0", n)], Scripted([(0, {"0": (0, 1)})]), tmp_path,
             compression=100, checkpoint_every_s=0.2, dim=32)
    killer.join()
    r = ex.runs["0"]
    assert r.status == "done" and r.failures == 1 and ex.failures == 1
    failed = [e for e in ex.events if e[1] == "failed"]
    assert len(failed) == 1 and "resumes from checkpoint at iteration" in failed[0][4]
    last = ex.segment_log[-1]
    assert last["pid"] != victim and last["start_iteration"] > 0 and last["iteration"] == n
    # nothing lost: the result equals an uninterrupted run
    _it, w = trainer.load_checkpoint(trainer.checkpoint_path(ckpt, "0"))
    np.testing.assert_array_equal(w, reference_weights("0", n, 32))
    workers.client.wait_for_workers(2, timeout=30)


def test_bad_scheduler_address_is_a_clear_quick_error(tmp_path, capsys):
    t = time.time()
    with pytest.raises(InputError, match="cannot reach Dask scheduler") as e:
        connect(CLUSTER, scheduler="tcp://127.0.0.1:9", timeout_s=2)
    assert e.value.field == "--scheduler" and time.time() - t < 10
    scn = Path(__file__).parent.parent / "scenarios" / "fidelity-edf.yaml"
    out = tmp_path / "out"
    rc = main(["run", str(scn), "--real", "--scheduler", "not-an-address", "--out", str(out),
               "--quiet"])
    assert rc == 2 and not out.exists()
    assert "--scheduler" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no checkpoint folder left behind either
