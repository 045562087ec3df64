"""Sweeps: grid expansion, resuming, failures, interruption, Dask = serial, bad input."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim.sweep as sweep
from sim.cli import main
from sim.errors import InputError
from sim.model.throughput import bundled_table
from sim.store import Store
from sim.sweep import load_grid, run_sweep
from tests.toy import TOY_CSV

POLICIES = ["fifo", "edf", "gandiva", "dlas-gpu", "ef-accessctrl"]


def write_grid(tmp_path: Path, policies=POLICIES, extra: str = "") -> Path:
    (tmp_path / "toy.csv").write_text(TOY_CSV)
    p = tmp_path / "grid.yaml"
    p.write_text(
        "name: toy\n"
        "base:\n"
        "  trace: toy.csv\n"
        "  cluster: n1g8\n"
        "  slot_s: 240\n"
        "  preset: elasticflow-artifact\n"
        "vary:\n"
        f"  policy: [{', '.join(policies)}]\n" + extra)
    return p


@pytest.fixture()
def counted(monkeypatch):
    """Count the runs the serial path executes."""
    calls: list[str] = []
    real = sweep.execute_run

    def wrapper(spec):
        calls.append(spec.scenario.policy)
        return real(spec)

    monkeypatch.setattr(sweep, "execute_run", wrapper)
    return calls


def table(store_path: Path, sql: str) -> list:
    con = sqlite3.connect(store_path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_cross_product_dotted_and_joined_keys(tmp_path):
    (tmp_path / "other.csv").write_text(TOY_CSV.replace("4000,128", "4100,128"))
    g = load_grid(write_grid(tmp_path, ["fifo"], extra=(
        "  params.backfill: [false, true]\n"
        "  trace,cluster: [[toy.csv, n1g8], [other.csv, n4g8]]\n")))
    assert len(g.runs) == 4 and g.axes == ["policy", "params.backfill", "trace", "cluster"]
    assert [(r.scenario.params["backfill"], Path(r.scenario.trace).name, r.resolved["cluster"]
             ["name"]) for r in g.runs] == [
        (False, "toy.csv", "n1g8"), (False, "other.csv", "n4g8"),
        (True, "toy.csv", "n1g8"), (True, "other.csv", "n4g8")]
    assert len({r.key for r in g.runs}) == 4
    assert all(Path(r.scenario.trace).is_absolute() for r in g.runs)


def test_resume_skips_done_runs(tmp_path, counted):
    store = Store(tmp_path / "s.sqlite")
    first = load_grid(write_grid(tmp_path, POLICIES[:2]))
    rep = run_sweep(first.runs, store, workers=1)
    assert counted == POLICIES[:2] and rep.skipped == 0 and len(rep.done) == 2
    counted.clear()
    grown = load_grid(write_grid(tmp_path, POLICIES))
    rep = run_sweep(grown.runs, store, workers=1)
    assert counted == POLICIES[2:] and rep.skipped == 2 and len(rep.done) == 3
    counted.clear()
    rep = run_sweep(grown.runs, store, workers=1)
    assert counted == [] and rep.skipped == 5


@pytest.fixture
def gandiva_crashes(monkeypatch):
    """Every gandiva run raises ValueError("simulated crash in gandiva") until the
    returned function is called."""
    import sim.runner

    real = sim.runner.run_prepared

    def flaky(p, **kw):
        if p.scenario.policy == "gandiva":
            raise ValueError("simulated crash in gandiva")
        return real(p, **kw)

    monkeypatch.setattr(sim.runner, "run_prepared", flaky)
    return lambda: monkeypatch.setattr(sim.runner, "run_prepared", real)


def test_failing_run_is_recorded_and_others_proceed(tmp_path, gandiva_crashes, counted):
    g = load_grid(write_grid(tmp_path))
    path = tmp_path / "s.sqlite"
    rep = run_sweep(g.runs, Store(path), workers=1)
    assert len(rep.done) == 4 and len(rep.failed) == 1
    assert "simulated crash in gandiva" in rep.failed[0][1]
    rows = dict(table(path, "SELECT policy, status FROM runs"))
    assert rows == {p: ("failed" if p == "gandiva" else "done") for p in POLICIES}
    (err,) = table(path, "SELECT error FROM runs WHERE status='failed'")[0]
    assert "ValueError: simulated crash in gandiva" in err and "Traceback" in err
    assert table(path, "SELECT COUNT(*) FROM jobs")[0][0] == 4 * 3
    # the failed run is retried next time, and only it
    gandiva_crashes()  # heal
    counted.clear()
    rep = run_sweep(g.runs, Store(path), workers=1)
    assert counted == ["gandiva"] and rep.skipped == 4 and len(rep.done) == 1


def test_interrupt_keeps_only_complete_runs(tmp_path, monkeypatch):
    real = sweep.execute_run
    calls = []

    def interrupted(spec):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(spec.key)
        return real(spec)

    monkeypatch.setattr(sweep, "execute_run", interrupted)
    grid = write_grid(tmp_path)
    path = tmp_path / "s.sqlite"
    rc = main(["sweep", str(grid), "--store", str(path), "--workers", "1", "--quiet"])
    assert rc == 130
    runs = table(path, "SELECT key, status FROM runs")
    assert sorted(runs) == sorted((k, "done") for k in calls)
    assert table(path, "SELECT DISTINCT run_key FROM jobs ORDER BY run_key") == \
        sorted((k,) for k in calls)
    assert table(path, "SELECT COUNT(*) FROM jobs")[0][0] == 2 * 3
    # resuming runs the other three
    monkeypatch.setattr(sweep, "execute_run", real)
    rep = run_sweep(load_grid(grid).runs, Store(path), workers=1)
    assert rep.skipped == 2 and len(rep.done) == 3


@pytest.mark.real
def test_dask_sweep_equals_serial(tmp_path):
    g = load_grid(write_grid(tmp_path, [*POLICIES, "themis"]))
    serial, parallel = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    assert len(run_sweep(g.runs, serial, workers=1).done) == 6
    assert len(run_sweep(g.runs, parallel, workers=2).done) == 6
    keys = [r.key for r in g.runs]
    a, b = serial.runs(keys), parallel.runs(keys)
    strip = [{k: v for k, v in s.items() if k != "wall_s"} for s in a.summary]
    assert strip == [{k: v for k, v in s.items() if k != "wall_s"} for s in b.summary]
    pd.testing.assert_frame_equal(serial.jobs(keys), parallel.jobs(keys))
    for k in keys:
        pd.testing.assert_frame_equal(serial.timeline(k), parallel.timeline(k))


def test_cluster_efficiency_column(tmp_path):
    """POLICIES.md 11.1: ef-accessctrl gives job 0 (resnet50/128) all 8 GPUs at t=0; at
    t=968 jobs 0 and 1 (vgg16/128) hold 4 GPUs each; at 2176 job 1 holds 8."""
    g = load_grid(write_grid(tmp_path, ["ef-accessctrl"]))
    store = Store(tmp_path / "s.sqlite")
    run_sweep(g.runs, store, workers=1)
    tl = store.timeline(g.runs[0].key).set_index("time_s")
    a100 = bundled_table("A100")

    def eff(model, g):
        return a100.rate(model, 128, g) / a100.rate(model, 128, 1)

    assert tl.loc[0, "ce"] == pytest.approx(eff("resnet50", 8) / 8)
    assert tl.loc[968, "ce"] == pytest.approx((eff("resnet50", 4) + eff("vgg16", 4)) / 8)
    assert tl.loc[2176, "ce"] == pytest.approx(eff("vgg16", 8) / 8)
    assert tl.ce.iloc[-1] == 0 and np.all(tl.ce <= tl.allocated_gpus / 8 + 1e-12)


@pytest.mark.parametrize("text, line, field, words", [
    ("base: {trace: toy.csv, cluster: n1g8}\nvary:\n  polcy: [edf]\n", 3, "vary.polcy",
     "unknown scenario key 'polcy'"),
    ("bsae: {trace: toy.csv}\n", 1, "bsae", "unknown grid key"),
    ("base: {trace: missing.csv, cluster: n1g8}\nvary:\n  policy: [edf]\n", 1, "trace",
     "trace file not found"),
    ("base:\n  trace: toy.csv\n  cluster: n1g8\nvary:\n  policy: [edf, edff]\n", 5, "policy",
     "unknown policy 'edff'"),
    ("base:\n  trace: toy.csv\nvary:\n  slot_s: 60\n", 4, "vary.slot_s", "non-empty list"),
    ("base:\n  trace: toy.csv\nvary:\n  cluster: [n1g8, n3g8]\n", 4, "cluster",
     "cluster spec not found"),
    ("base:\n  trace: toy.csv\n  policy: fifo\n  params: {backfil: true}\n", 4,
     "params.backfil", "unknown parameter"),
])
def test_bad_grid_exit_2_nothing_written(tmp_path, capsys, text, line, field, words):
    (tmp_path / "toy.csv").write_text(TOY_CSV)
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    with pytest.raises(InputError) as e:
        load_grid(grid)
    assert (e.value.file, e.value.line, e.value.field) == (str(grid), line, field)
    store = tmp_path / "s.sqlite"
    assert main(["sweep", str(grid), "--store", str(store), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(grid) in err and f"line {line}" in err and words in err
    assert not store.exists()


def test_missing_grid_and_bad_set(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.yaml"), "--store", str(tmp_path / "s")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    grid = write_grid(tmp_path)
    assert main(["sweep", str(grid), "--store", str(tmp_path / "s"), "--set",
                 "slot_s=-1"]) == 2
    assert "--set slot_s" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_cli_sweep_and_export(tmp_path, capsys):
    grid = write_grid(tmp_path, POLICIES[:3])
    store = tmp_path / "s.sqlite"
    assert main(["sweep", str(grid), "--store", str(store), "--workers", "1", "--quiet"]) == 0
    assert "3 runs: 0 already done, 3 done now, 0 failed" in capsys.readouterr().out
    out = tmp_path / "export"
    assert main(["results", "--store", str(store), "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv")
    jobs = pd.read_csv(out / "jobs.csv")
    assert sorted(runs.policy) == sorted(POLICIES[:3]) and set(runs.status) == {"done"}
    assert len(jobs) == 9 and set(jobs.run_key) == set(runs.key)
    assert (out / "timeline.csv").exists()
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert main(["results", "--store", str(store), "--format", "parquet",
                     "--out", str(tmp_path / "pq")]) == 2
        assert "pyarrow" in capsys.readouterr().err
        assert not (tmp_path / "pq").exists()
    else:
        assert main(["results", "--store", str(store), "--format", "parquet",
                     "--out", str(tmp_path / "pq")]) == 0
        assert len(pd.read_parquet(tmp_path / "pq" / "jobs.parquet")) == 9
    assert main(["results", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert not (tmp_path / "none.sqlite").exists()


@pytest.mark.parametrize("address, words", [
    ("tcp://127.0.0.1:1", "cannot reach Dask scheduler tcp://127.0.0.1:1"),
    ("localhost", "bad Dask scheduler address 'localhost'"),
    ("foo://host:8786", "bad Dask scheduler address 'foo://host:8786'"),
])
def test_bad_scheduler_exit_2_nothing_written(tmp_path, capsys, monkeypatch, address, words):
    monkeypatch.setattr(sweep, "SCHEDULER_TIMEOUT_S", 1)
    grid = write_grid(tmp_path, POLICIES[:2])
    store = tmp_path / "s.sqlite"
    assert main(["sweep", str(grid), "--store", str(store), "--scheduler", address,
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "field '--scheduler'" in err and words in err
    assert not store.exists()


def test_nothing_to_run_needs_no_scheduler(tmp_path, capsys, monkeypatch):
    grid = write_grid(tmp_path, POLICIES[:2])
    store = tmp_path / "s.sqlite"
    assert main(["sweep", str(grid), "--store", str(store), "--workers", "1", "--quiet"]) == 0

    def no_client(*a, **kw):
        raise AssertionError("no scheduler should be contacted")

    monkeypatch.setattr(sweep, "dask_client", no_client)
    capsys.readouterr()
    assert main(["sweep", str(grid), "--store", str(store), "--scheduler",
                 "tcp://127.0.0.1:1", "--quiet"]) == 0
    assert "2 runs: 2 already done, 0 done now" in capsys.readouterr().out


def test_sweep_progress_bar_counts_and_eta(tmp_path, gandiva_crashes, capsys):
    store = Store(tmp_path / "s.sqlite")
    run_sweep(load_grid(write_grid(tmp_path, POLICIES[:1])).runs, store, workers=1)
    run_sweep(load_grid(write_grid(tmp_path)).runs, store, workers=1, progress=True,
              label="toy")
    frames = [f.strip() for f in capsys.readouterr().err.split("\r") if f.strip()]
    assert frames[0].startswith("toy:   0%") and \
        "done 0, failed 0, remaining 4, 1 already done" in frames[0]
    # one frame per finished run, the last with the failure counted; tqdm's
    # [elapsed<remaining] is the ETA
    assert "done 3, failed 1, remaining 0, 1 already done" in frames[-1]
    assert frames[-1].startswith("toy: 100%") and "4/4 [" in frames[-1]
    assert all("<" in f.split("[", 1)[1] for f in frames)


def test_sweep_progress_lines_for_logs(tmp_path, capsys):
    """Not on a terminal: one plain line per finished run, with counts and an ETA."""
    store = Store(tmp_path / "s.sqlite")
    run_sweep(load_grid(write_grid(tmp_path)).runs, store, workers=1, progress="lines",
              label="toy")
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("toy: 1/5 (done 1, failed 0, remaining 4); done policy=")
    assert lines[-1].startswith("toy: 5/5 (done 5, failed 0, remaining 0); done policy=")
    assert all("elapsed 0:" in ln and "ETA 0:" in ln for ln in lines)
    assert lines[-1].endswith("ETA 0:00:00")


def test_run_progress_lines_for_logs(monkeypatch, capsys):
    import sim.cli
    from sim.cli import _progress_bar

    monkeypatch.setattr(sim.cli, "LINE_EVERY_S", 0.0)
    update, close = _progress_bar("lines", "edf")
    update(9000.0, 2, 3)
    close()
    assert capsys.readouterr().err == "edf: 2/3 jobs done, simulated time 2.5 h\n"
    monkeypatch.setattr(sim.cli, "LINE_EVERY_S", 3600.0)
    update, close = _progress_bar("lines", "edf")
    update(9000.0, 2, 3)  # throttled: nothing within the hour
    assert capsys.readouterr().err == ""


def test_run_progress_reports_simulated_time(tmp_path, capsys):
    from sim.cli import _progress_bar
    from sim.runner import run_scenario
    from sim.scenario import scenario_from_dict

    (tmp_path / "toy.csv").write_text(TOY_CSV)
    scn = scenario_from_dict({"trace": "toy.csv", "cluster": "n1g8", "policy": "edf",
                              "slot_s": 240, "preset": "elasticflow-artifact"},
                             base_dir=str(tmp_path))
    calls: list[tuple[float, int, int]] = []
    res = run_scenario(scn, progress=lambda *a: calls.append(a))
    assert len(calls) == res.summary["instants"] > 1
    times = [t for t, _, _ in calls]
    assert times == sorted(times) and times[-1] == res.timeline.time_s.iloc[-1]
    assert calls[-1][1:] == (3, 3) and [d for _, d, _ in calls] == sorted(d for _, d, _ in calls)
    update, close = _progress_bar(True, "edf")
    update(0.0, 0, 3)
    import time

    time.sleep(0.15)  # tqdm redraws at most every 0.1 s
    update(9000.0, 2, 3)
    close()
    err = capsys.readouterr().err
    assert "edf: 2/3 jobs done, simulated time 2.5 h [00:00]" in err
