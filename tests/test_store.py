"""The results store: round trip, key stability, one transaction per run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from sim.errors import InputError
from sim.metrics.summary import JOB_COLUMNS
from sim.runner import TIMELINE_COLUMNS
from sim.scenario import scenario_from_dict
from sim.store import JOB_SQL, TIMELINE_SQL, Store, canonical_json, run_key
from sim.sweep import RunSpec, execute_run, resolve_scenario
from tests.toy import TOY_CSV

TOY = {"trace": "toy.csv", "cluster": "n1g8", "policy": "ef-accessctrl", "slot_s": 240,
       "preset": "elasticflow-artifact"}


@pytest.fixture()
def toy_dir(tmp_path: Path) -> Path:
    (tmp_path / "toy.csv").write_text(TOY_CSV)
    return tmp_path


def spec_of(d: dict, base_dir: Path) -> RunSpec:
    scn = scenario_from_dict(d, base_dir=str(base_dir))
    resolved, runnable = resolve_scenario(scn)
    return RunSpec(run_key(resolved), scn.name, runnable, resolved, {})


def key_of(d: dict, base_dir: Path) -> str:
    return spec_of(d, base_dir).key


def test_columns_follow_the_run_tables():
    assert [c for c, _ in JOB_SQL] == JOB_COLUMNS
    assert [c for c, _ in TIMELINE_SQL] == [*TIMELINE_COLUMNS, "ce"]


def test_round_trip(tmp_path, toy_dir):
    rec = execute_run(spec_of(TOY, toy_dir))
    assert rec.status == "done", rec.error
    with Store(tmp_path / "s.sqlite") as st:
        st.put(rec)
    with Store(tmp_path / "s.sqlite", create=False) as st:
        runs = st.runs()
        jobs = st.jobs([rec.key])
        tl = st.timeline(rec.key)
    row = runs.iloc[0]
    assert row.key == rec.key and row.status == "done" and row.error is None
    assert (row.policy, row.trace, row.cluster, row.num_gpus, row.preset) == (
        "ef-accessctrl", "toy", "n1g8", 8, "elasticflow-artifact")
    assert row.slot_s == 240 and row.gpu_type == "A100"
    assert row.deadline_satisfactory_ratio == rec.summary["deadline_satisfactory_ratio"] == 1.0
    assert row.jct_mean_s == pytest.approx(rec.summary["jct_mean_s"])
    assert row.summary == rec.summary and row.scenario == rec.scenario
    pd.testing.assert_frame_equal(jobs.drop(columns="run_key"), rec.jobs, check_dtype=False)
    pd.testing.assert_frame_equal(tl, rec.timeline, check_dtype=False)
    # POLICIES.md 11.1: ef-accessctrl ends job 0 at 2176, job 1 at 2658, job 2 at 968
    assert list(jobs.end_s) == [2176, 2658, 968]
    assert list(jobs.deadline_met) == [True, True, None]


def test_key_ignores_paths_order_number_form_and_name(tmp_path, toy_dir):
    k = key_of(TOY, toy_dir)
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "toy.csv").write_text(TOY_CSV)  # same bytes, another folder
    same = dict(reversed(list(TOY.items())))
    same.update(trace=str(other / "toy.csv"), slot_s=240.0, name="another-label",
                params={"use_requested_gpus": False} if TOY["policy"] == "edf" else {})
    assert key_of(same, toy_dir) == k
    assert len(k) == 64 and int(k, 16) >= 0


@pytest.mark.parametrize("change", [
    {"slot_s": 60}, {"policy": "edf"}, {"preset": "clean"}, {"cluster": "n2g2"},
    {"seed": 1}, {"comm": "none"}, {"horizon_s": 1000},
])
def test_key_changes_with_any_input(toy_dir, change):
    assert key_of({**TOY, **change}, toy_dir) != key_of(TOY, toy_dir)


def test_key_follows_trace_content_and_explicit_defaults(tmp_path, toy_dir):
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "toy.csv").write_text(TOY_CSV.replace("4000,128", "4001,128"))
    assert key_of({**TOY, "trace": str(edited / "toy.csv")}, toy_dir) != key_of(TOY, toy_dir)
    fifo = {**TOY, "policy": "fifo"}
    assert key_of({**fifo, "params": {"backfill": False}}, toy_dir) == key_of(fifo, toy_dir)
    assert key_of({**fifo, "params": {"backfill": True}}, toy_dir) != key_of(fifo, toy_dir)
    gen = {**TOY, "cluster": "n4g8", "trace": {"generate": {"num_jobs": 5, "lam": 100}}}
    explicit = {**gen, "trace": {"generate": {"num_jobs": 5, "lam": 100.0, "seed": 0,
                                              "min_ddl": 0.5, "max_ddl": 1.5}}}
    assert key_of(explicit, toy_dir) == key_of(gen, toy_dir)
    other_seed = {**gen, "trace": {"generate": {"num_jobs": 5, "lam": 100, "seed": 3}}}
    assert key_of(other_seed, toy_dir) != key_of(gen, toy_dir)


def test_canonical_json_is_fixed():
    assert canonical_json({"b": 1.0, "a": [1, 2.5, (3,)], "c": None, "d": True}) == \
        '{"a":[1,2.5,[3]],"b":1,"c":null,"d":true}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_put_is_one_transaction(tmp_path, toy_dir, monkeypatch):
    rec = execute_run(spec_of(TOY, toy_dir))
    st = Store(tmp_path / "s.sqlite")
    real = Store._insert_rows

    def boom(self, table, key, df, spec):
        if table == "timeline":  # the run row and the job rows are already inserted
            raise KeyboardInterrupt
        return real(self, table, key, df, spec)

    monkeypatch.setattr(Store, "_insert_rows", boom)
    with pytest.raises(KeyboardInterrupt):
        st.put(rec)
    monkeypatch.undo()
    con = sqlite3.connect(tmp_path / "s.sqlite")
    assert [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("runs", "jobs", "timeline")] == [0, 0, 0]
    st.put(rec)
    assert [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("runs", "jobs")] == [1, 3]


def test_put_replaces_a_failed_run(tmp_path, toy_dir):
    spec = spec_of(TOY, toy_dir)
    rec = execute_run(spec)
    failed = type(rec)(rec.key, rec.scenario, rec.name, "failed", "ValueError: x",
                       rec.started_at, rec.finished_at, 0.1)
    with Store(tmp_path / "s.sqlite") as st:
        st.put(failed)
        assert st.statuses() == {rec.key: "failed"} and st.jobs().empty
        st.put(rec)
        assert st.statuses() == {rec.key: "done"} and len(st.jobs()) == 3
        with pytest.raises(ValueError, match="does not match"):
            st.put(type(rec)("0" * 64, rec.scenario, "", "done", None, "", "", 0.0))


def test_bad_store_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Store(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_text("this is not a database, just some text long enough " * 50)
    with pytest.raises(InputError, match="not a clustersim results store"):
        Store(junk)
    old = tmp_path / "old.sqlite"
    Store(old).close()
    con = sqlite3.connect(old)
    con.execute("UPDATE meta SET value='0' WHERE name='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="schema version 0"):
        Store(old)


def test_runs_with_failed_and_done_rows(tmp_path, toy_dir):
    """A NULL summary or error reads back as None whichever row comes first."""
    done = execute_run(spec_of(TOY, toy_dir))
    other = execute_run(spec_of({**TOY, "policy": "edf"}, toy_dir))
    failed = type(other)(other.key, other.scenario, other.name, "failed", "ValueError: x",
                         other.started_at, other.finished_at, 0.1)
    with Store(tmp_path / "s.sqlite") as st:
        st.put(failed)
        st.put(done)
        for keys in ([failed.key, done.key], [done.key, failed.key], None):
            runs = st.runs(keys).set_index("key")
            assert runs.loc[failed.key, "summary"] is None
            assert runs.loc[failed.key, "error"] == "ValueError: x"
            assert runs.loc[done.key, "summary"] == done.summary
            assert runs.loc[done.key, "error"] is None
