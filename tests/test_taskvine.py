"""TaskVine: transaction-log reader/writer, task executor, reuse policies, validation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim import registry
from sim.cli import main
from sim.control import Controller
from sim.engine.tasks import TaskExecutor
from sim.errors import InputError
from sim.model.job import TaskSpec
from sim.model.tasks import LibrarySpec, ManagerSpec, TaskWorkload, WorkerSpec
from sim.taskrun import quantile_time
from sim.traces.taskvine import read_log, workload_from_log, write_log

ROOT = Path(__file__).resolve().parents[1]
BGD = ROOT / "traces" / "taskvine" / "bgd.transactions"


def tiny(lost_at: float | None = None, n: int = 4) -> TaskWorkload:
    """2 two-core workers, n 10-s calls; package 10 MB at 10 MB/s, unpack 1 s, start 1 s."""
    lib = LibrarySpec("lib", package="env.tar.gz", package_MB=10.0, unpack_s=1.0,
                      startup_s=(1.0,), slots=1, cores=1, reserves_resources=False)
    tasks = tuple(TaskSpec(str(i), cores=1, duration_s=10.0, library="lib")
                  for i in range(1, n + 1))
    workers = (WorkerSpec("A", 0.0, lost_at, lost=lost_at is not None, cores=2),
               WorkerSpec("B", 0.0, cores=2))
    return TaskWorkload(tasks, workers, {"lib": lib}, ManagerSpec(bandwidth_MBps=10.0))


def run(wl: TaskWorkload, policy: str, **params) -> TaskExecutor:
    ex = TaskExecutor(wl, Controller(registry.create(policy, params)), seed=0)
    ex.run()
    return ex


def done_times(ex: TaskExecutor) -> list[float]:
    return sorted(r[0] for r in ex.records if r[1] == "TASK" and r[3] == "DONE"
                  and r[4][0] == "SUCCESS")


# --- reader ---------------------------------------------------------------------------
def test_bgd_log_reads_as_2023_variant_with_measured_costs():
    log = read_log(BGD)
    assert log.variant == "2023"
    c = log.completions()
    assert len(c) == 1998
    got = [quantile_time(c, q, len(c)) for q in (0.1, 0.5, 0.9, 1.0)]
    assert got == pytest.approx([180.35, 355.54, 471.10, 560.30], abs=0.01)
    wl, ex = workload_from_log(log)
    assert ex.dropped == ("98", "111")  # hung on their worker, never retrieved
    assert len(wl.tasks) == 1998 and len(wl.libraries) == 1
    lib = wl.libraries["library"]
    assert lib.package == "package.tar.gz"
    assert lib.package_MB == pytest.approx(92.496059)  # bytes in the 2023 log -> MB
    assert lib.slots == 1 and not lib.reserves_resources  # two calls per one-slot library
    assert wl.manager.bandwidth_MBps == pytest.approx(102, rel=0.02)
    # tasks 162 and 182 were lost with their worker and ran a second attempt
    attempts = {a.task_id: a.attempt for a in log.task_attempts()}
    assert attempts["162"] == 2 and attempts["182"] == 2
    durations = sorted(t.duration_s for t in wl.tasks)
    assert durations[len(durations) // 2] == pytest.approx(27.6, abs=0.1)


def test_current_variant_ready_and_megabytes(tmp_path):
    lines = [
        "100000000 7 MANAGER 7 START 0",
        "100000010 7 TASK 1 READY default FIRST_RESOURCES 1 "
        '{"cores":[1,"cores"],"memory":[10,"MB"],"disk":[5,"MB"]}',
        "101000000 7 WORKER w1 CONNECTION 1.2.3.4:5",
        '101000001 7 WORKER w1 RESOURCES {"cores":[4,"cores"],"memory":[100,"MB"],'
        '"disk":[100,"MB"]}',
        "102000000 7 WORKER w1 TRANSFER INPUT env.tar.gz 50.5 1000000 101000000",
        "102000001 7 LIBRARY 9 SENT w1",
        "102500000 7 WORKER w1 CACHE_UPDATE env.tar.gz 50.5 400000 102000100",
        "103000000 7 TASK 1 RUNNING w1 FIRST_RESOURCES "
        '{"time_commit_start":[103.0,"s"],"time_commit_end":[103.0001,"s"]}',
        "106000000 7 TASK 1 WAITING_RETRIEVAL w1",
        '106000100 7 TASK 1 RETRIEVED SUCCESS 0 {} {"time_worker_start":[103.1,"s"],'
        '"time_worker_end":[105.6,"s"]}',
        "106000200 7 TASK 1 DONE SUCCESS 0",
        "107000000 7 MANAGER 7 END 7000000",
    ]
    p = tmp_path / "cur.transactions"
    p.write_text("\n".join(lines) + "\n")
    log = read_log(p)
    assert log.variant == "current"
    wl, _ = workload_from_log(log)
    assert wl.libraries["library"].package_MB == pytest.approx(50.5)  # MB, not scaled
    assert wl.manager.bandwidth_MBps == pytest.approx(50.5)
    (t,) = wl.tasks
    assert t.duration_s == pytest.approx(2.5) and t.memory_MB == 10 and t.cores == 1
    assert wl.workers[0].cores == 4
    # forcing the 2023 variant reads the same sizes as bytes
    assert workload_from_log(read_log(p, variant="2023"))[0].libraries[
        "library"].package_MB == pytest.approx(50.5e-6)


@pytest.mark.parametrize("line, field", [
    ("abc 7 TASK 1 READY default FIRST_RESOURCES 1 {}", "time"),
    ("100 7 BOGUS 1 X", "subject"),
    ("100 7 TASK 1 READY default FIRST_RESOURCES x {}", "attempt"),
    ("100 7 TASK 2 RUNNING w1 FIRST_RESOURCES {}", "task_id"),
    ('100 7 TASK 1 READY default FIRST_RESOURCES 1 {"cores": [1,', "resources_requested"),
])
def test_malformed_line_names_file_line_and_field(tmp_path, line, field):
    p = tmp_path / "bad.transactions"
    p.write_text("# header\n100 7 MANAGER 7 START 0\n" + line + "\n")
    with pytest.raises(InputError) as e:
        read_log(p)
    assert e.value.line == 3 and e.value.field == field and e.value.file == str(p)


def test_missing_log_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_log(tmp_path / "nope")


# --- engine and policies -----------------------------------------------------------------
def test_reuse_serialises_package_sends_and_runs_one_call_per_slot():
    ex = run(tiny(), "reuse", overcommit_slots=True)
    # A: package 0-1, unpack -2, start -3, calls 3-13, 13-23; B: package 1-2 -> 4-14, 14-24
    assert done_times(ex) == pytest.approx([13, 14, 23, 24])
    sends = [r for r in ex.records if r[1] == "WORKER" and r[3] == "TRANSFER"]
    assert len(sends) == 2  # once per worker


def test_no_reuse_pays_startup_per_task_but_uses_both_cores():
    ex = run(tiny(), "no-reuse")
    # A: package 0-1, unpack -2, each task: start 2-3, run 3-13; B one send later
    assert done_times(ex) == pytest.approx([13, 13, 14, 14])


def test_slots_bound_placement_without_overcommit():
    ex = run(tiny(), "reuse")
    running = [r for r in ex.records if r[1] == "TASK" and r[3] == "RUNNING"]
    first = sorted(r[0] for r in running)[:2]
    assert len({r[4][0] for r in running[:2]}) == 2  # one call per worker first
    assert first[1] < 3  # placed while the libraries start
    assert done_times(ex) == pytest.approx([13, 14, 23, 24])


def test_demand_installs_only_what_calls_need_eager_installs_everywhere():
    wl = tiny(n=1)
    demand = run(wl, "reuse", install="demand")
    eager = run(wl, "reuse", install="eager")
    sent = lambda ex: [r for r in ex.records if r[1] == "LIBRARY" and r[3] == "SENT"]  # noqa: E731
    assert len(sent(demand)) == 1 and len(sent(eager)) == 2


def test_lost_worker_tasks_are_retried_elsewhere():
    ex = run(tiny(lost_at=5.0), "reuse", overcommit_slots=True)
    assert ex.done == 4 and ex.failed == 0
    ready = [r for r in ex.records if r[1] == "TASK" and r[3] == "READY" and r[4][1] == 2]
    assert {r[2] for r in ready} == {"1", "2"}  # both calls placed on A went back
    assert all(r[0] == 5.0 for r in ready)
    assert max(done_times(ex)) > 24  # B ran all four


def test_max_retries_gives_up():
    wl = tiny(lost_at=5.0)
    wl = TaskWorkload(wl.tasks, wl.workers, wl.libraries, ManagerSpec(bandwidth_MBps=10.0,
                                                                      max_retries=1))
    ex = run(wl, "reuse", overcommit_slots=True)
    assert ex.failed == 2 and ex.done == 2


def test_simulated_log_round_trips(tmp_path):
    ex = run(tiny(), "reuse", overcommit_slots=True)
    for variant in ("current", "2023"):
        p = write_log(ex.records, tmp_path / f"sim-{variant}", variant=variant)
        log = read_log(p)
        assert log.variant == variant
        assert log.completions() == pytest.approx(done_times(ex))
        wl, _ = workload_from_log(log)
        assert wl.libraries["library"].package_MB == pytest.approx(10.0)
        assert sorted(t.duration_s for t in wl.tasks) == pytest.approx([10.0] * 4)


def test_same_seed_same_run():
    a, b = (run(tiny(), "reuse", overcommit_slots=True).records for _ in range(2))
    assert a == b


# --- CLI ------------------------------------------------------------------------------
def test_task_scenario_typo_names_file_and_key(tmp_path, capsys):
    p = tmp_path / "s.yaml"
    p.write_text(f"name: x\nworkload: {{taskvine_log: {BGD}}}\npolicy: reuse\n"
                 "params: {instal: eager}\n")
    assert main(["run", str(p), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(p) in err and "instal" in err and "line 4" in err
    assert not (tmp_path / "out").exists()


def test_validate_bad_log_line(tmp_path, capsys):
    p = tmp_path / "bad.transactions"
    p.write_text("100 7 MANAGER 7 START 0\n100 7 TASK 1 FROB\n")
    assert main(["validate", "taskvine", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "'event'" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_validate_bgd_within_ten_percent(tmp_path, capsys):
    assert main(["validate", "taskvine", str(BGD), "--out", str(tmp_path / "v"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    real = read_log(BGD).completions()
    sim = read_log(tmp_path / "v" / "transactions").completions()
    assert len(sim) == len(real) == 1998
    for q in (0.1, 0.5, 0.9, 1.0):
        r, s = quantile_time(real, q, 1998), quantile_time(sim, q, 1998)
        assert math.isclose(s, r, rel_tol=0.10), (q, r, s)
    assert "100%" in out
