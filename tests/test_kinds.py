"""The scenario-kind registry: recognition, errors, store round trips, figures from the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sim import kinds
from sim.cli import main
from sim.errors import InputError
from sim.store import GPU_KIND, SCHEMA_VERSION, Store, canonical_json, run_key
from sim.sweep import execute_run, runs_grid
from sim.traces.taskvine import write_log
from tests.test_taskvine import run, tiny
from tests.toy import TOY_CSV

ROOT = Path(__file__).resolve().parents[1]
SCN = ROOT / "scenarios"


@pytest.fixture()
def scenarios(tmp_path: Path) -> dict[str, tuple[Path, list[str]]]:
    """kind -> (a small scenario file of that kind, --set overrides that keep it small)."""
    (tmp_path / "toy.csv").write_text(TOY_CSV)
    gpu = tmp_path / "gpu.yaml"
    gpu.write_text("name: toy\ntrace: toy.csv\ncluster: n1g8\npolicy: edf\nslot_s: 240\n")
    log = write_log(run(tiny(), "reuse", overcommit_slots=True).records, tmp_path / "tiny.txn")
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(f"name: tiny\nworkload: {{taskvine_log: {log.name}}}\npolicy: reuse\n")
    return {
        GPU_KIND: (gpu, []),
        "tasks": (tasks, []),
        "pools": (SCN / "gpr-ackley.yaml", ["workload.ackley.points=40",
                                           "params.retrain_every=10"]),
        "threeways": (SCN / "threeways-dask.yaml", ["threeways.params.seed.range=[0, 20]"]),
        "dragon": (SCN / "dragon-widemap.yaml", ["dragon.wide_map.tasks=16"]),
    }


def test_every_file_is_recognised_as_its_kind(scenarios):
    for name, (path, sets) in scenarios.items():
        kind, scn = kinds.load(path, sets)
        assert kind.name == name and kind is kinds.get(name)
        assert scn is not None


def test_unknown_kind_names_the_file_and_the_expected_keys(tmp_path, capsys):
    bad = tmp_path / "what.yaml"
    bad.write_text("name: x\npolicy: edf\nworkers: 4\n")
    out = tmp_path / "out"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not a scenario of any kind" in err
    for k in kinds.KINDS.values():  # every kind and the keys that mark it
        assert f"{k.name}: {k.signature}" in err
    assert not out.exists()
    both = tmp_path / "both.yaml"
    both.write_text("threeways: {strategy: x}\ndragon: {}\n")
    with pytest.raises(InputError, match="several kinds .threeways, dragon.") as e:
        kinds.load(both)
    assert e.value.file == str(both)
    with pytest.raises(InputError, match="unknown scenario kind 'nope'; kinds: gpu-jobs"):
        kinds.get("nope")


def test_grid_of_an_unknown_kind_is_an_error(tmp_path):
    from sim.sweep import load_grid

    g = tmp_path / "g.yaml"
    g.write_text("base: {policy: edf}\nvary:\n  seed: [0, 1]\n")
    with pytest.raises(InputError, match="'base' is not a scenario of any kind") as e:
        load_grid(g)
    assert e.value.file == str(g) and e.value.field == "base"


@pytest.mark.parametrize("name", [GPU_KIND, "tasks", "pools", "threeways", "dragon"])
def test_each_kind_round_trips_through_the_store(scenarios, tmp_path, name):
    path, sets = scenarios[name]
    grid = runs_grid("one", [("a", path, sets), ("b-same-run", path, [*sets, "name=other"])])
    assert len(grid.runs) == 1  # the name is a label, not part of the run
    spec = grid.runs[0]
    assert spec.kind == name and spec.key == run_key(spec.resolved)
    assert spec.resolved.get("kind", GPU_KIND) == name and "name" not in spec.resolved
    rec = execute_run(spec)
    assert rec.status == "done", rec.error
    kind = kinds.get(name)
    with Store(tmp_path / "s.sqlite") as st:
        st.put(rec)
        runs = st.runs([spec.key])
        assert list(runs["kind"]) == [name] and list(runs["status"]) == ["done"]
        assert runs["summary"][0] == rec.summary
        assert canonical_json(runs["scenario"][0]) == canonical_json(spec.resolved)
        if name == GPU_KIND:
            assert len(st.jobs([spec.key])) == len(rec.jobs) == 3
            assert len(st.timeline(spec.key)) == len(rec.timeline)
            assert st.items([spec.key]).empty and st.files(spec.key) == {}
        else:
            items = st.items([spec.key])
            assert len(items) == len(rec.items) > 0 and st.jobs([spec.key]).empty
            assert list(items.columns[:6]) == ["run_key", "idx", "item_id", "status",
                                               "start_s", "end_s"]
            assert list(items["item_id"]) == list(rec.items["item_id"])
            assert set(st.files(spec.key)) == set(kind.stored_files)
            assert st.files(spec.key) == rec.files
    # a direct run of the same scenario summarises the same (less its wall time)
    _, scn = kinds.load(path, sets)
    direct = kind.summary(kind.run(scn))
    strip = lambda s: {k: v for k, v in s.items() if k != "wall_s"}  # noqa: E731
    assert strip(direct) == strip(rec.summary)


def test_schema_1_store_is_migrated(tmp_path, scenarios):
    path, sets = scenarios[GPU_KIND]
    spec = runs_grid("g", [("a", path, sets)]).runs[0]
    p = tmp_path / "old.sqlite"
    with Store(p) as st:
        st.put(execute_run(spec))
    con = sqlite3.connect(p)  # back to schema 1: no kind column, no items/files tables
    con.executescript("ALTER TABLE runs DROP COLUMN kind; DROP TABLE items; DROP TABLE files;"
                      "UPDATE meta SET value='1' WHERE name='schema_version';")
    con.close()
    with Store(p, create=False) as st:
        assert list(st.runs()["kind"]) == [GPU_KIND] and len(st.jobs()) == 3
        assert st.statuses() == {spec.key: "done"}  # the run keeps its key
    con = sqlite3.connect(p)
    assert con.execute("SELECT value FROM meta").fetchone() == (str(SCHEMA_VERSION),)
    con.close()


def test_figures_run_only_what_is_missing_for_a_task_set(tmp_path, capsys):
    store, out = tmp_path / "s.sqlite", tmp_path / "fig"
    args = ["figures", "dragon", "--store", str(store), "--out", str(out), "--workers", "1",
            "--quiet"]
    assert main(args) == 0
    assert "dragon: 18 runs: 0 already done, 18 done now, 0 failed" in capsys.readouterr().out
    first = (out / "dragon.csv").read_text()
    assert not (out / "runs").exists()  # no run folders: everything is in the store
    con = sqlite3.connect(store)
    keys = [k for (k,) in con.execute("SELECT key FROM runs ORDER BY key LIMIT 3")]
    con.execute(f"DELETE FROM runs WHERE key IN ({', '.join('?' * len(keys))})", keys)
    con.commit()
    con.close()
    assert main(args) == 0
    assert "dragon: 18 runs: 15 already done, 3 done now, 0 failed" in capsys.readouterr().out
    assert (out / "dragon.csv").read_text() == first
    assert main(args) == 0
    assert "18 already done, 0 done now" in capsys.readouterr().out
    with Store(store, create=False) as st:
        assert set(st.runs()["kind"]) == {"dragon"}
    # the report covers the task-workload runs: their table and scenarios
    report = tmp_path / "r.html"
    assert main(["report", "--store", str(store), "--out", str(report)]) == 0
    page = report.read_text()
    assert "dragon runs" in page and page.count("<tr class=run ") == 18
    assert "sched_overhead" in page and "&quot;batch_size&quot;" in page
