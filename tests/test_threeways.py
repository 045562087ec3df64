"""Many jobs three ways: EMS store, the deployment model, the (c) validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main
from sim.ems import EMSStore, FlushCost, ResultBuffer, consume, progress_line, unroll
from sim.workloads import threeways as tw

SCN = Path(__file__).resolve().parents[1] / "scenarios"


def test_unroll_and_resume(tmp_path: Path) -> None:
    combos = unroll({"seed": [0, 1, 2], "n": [10, 20]})
    assert len(combos) == 6 and combos[0] == {"seed": 0, "n": 10}
    with EMSStore(tmp_path / "e.db3", ["seed", "n"]) as st:
        st.write([{**c, "v": 1.0} for c in combos[:4]])
    with EMSStore(tmp_path / "e.db3", ["seed", "n"]) as st:  # reopened: still there
        assert st.count() == 4
        assert st.pending(combos) == combos[4:]


def test_buffer_flushes_on_rows_or_time() -> None:
    st = EMSStore(":memory:", ["k"])
    buf = ResultBuffer(st, flush_rows=3, flush_s=60.0)
    assert not buf.add({"k": 1}, 1.0)
    assert not buf.add({"k": 2}, 2.0)
    assert buf.add({"k": 3}, 3.0)  # third row
    assert buf.flush(3.0) == 3 and st.count() == 3
    assert not buf.add({"k": 4}, 63.0)
    assert buf.add({"k": 5}, 63.5)  # more than 60 s since the save at 3.0


def test_consume_models_flush_cost_and_progress() -> None:
    results = [(float(i), {"k": i}) for i in range(1, 26)]  # one result per second
    buf = ResultBuffer(EMSStore(":memory:", ["k"]), flush_rows=10, flush_s=1e9)
    got = consume(results, 25, buf, FlushCost(base_s=2.0, per_row_s=0.1), result_s=0.0)
    assert [n for _, _, n in got.flushes] == [10, 10, 5]
    # the first flush (at 10 s) blocks the driver for 3 s: result 11 is seen at 13 s
    assert got.seen_s[10] == pytest.approx(13.0)
    assert got.end_s == pytest.approx(got.flushes[-1][1])
    assert len(got.lines) == 2 and got.lines[0] == progress_line(10, 10.0, 25)
    assert "Seconds/Instance: 1.0000" in got.lines[0] and "Remaining Count: 15" in got.lines[0]


def test_slowdown_reproduces_array_instance_time() -> None:
    scn = tw.load(SCN / "threeways-array.yaml")
    # 10 processes on one node: 0.51 s alone -> ~0.95 s (the study's array runs)
    assert 0.9 <= scn.spec.instance.median_s * scn.spec.slowdown <= 1.0
    assert tw.load(SCN / "threeways-dask.yaml").spec.slowdown == 8.0


def test_rerun_skips_stored_combinations(tmp_path: Path) -> None:
    db = str(tmp_path / "EMS.db3")
    sets = ["threeways.processes=2", "threeways.threads=4", f"threeways.store.db={db}"]
    first = tw.run(tw.load(SCN / "threeways-dask.yaml",
                           [*sets, "threeways.params.seed.range=[0, 60]"]))
    assert first.summary["instances"] == 60 and first.summary["stored_rows"] == 60
    second = tw.run(tw.load(SCN / "threeways-dask.yaml",
                            [*sets, "threeways.params.seed.range=[0, 100]"]))
    assert second.summary["skipped"] == 60 and second.summary["instances"] == 40
    assert second.summary["stored_rows"] == 100
    with EMSStore(db, ["seed", "nrow", "ncol"]) as st:
        assert sorted(s for s, _, _ in st.stored()) == list(range(100))


def test_more_processes_finish_sooner() -> None:
    base = ["threeways.params.seed.range=[0, 200]", "threeways.threads=4"]
    few = tw.run(tw.load(SCN / "threeways-dask.yaml", [*base, "threeways.processes=2"]))
    many = tw.run(tw.load(SCN / "threeways-dask.yaml", [*base, "threeways.processes=8"]))
    assert many.summary["makespan_s"] < few.summary["makespan_s"] / 2.5
    assert len(few.lines) == 20  # a progress line every 10 results


@pytest.mark.slow
def test_dask_cluster_matches_study_77s() -> None:
    res = tw.run(tw.load(SCN / "threeways-dask.yaml"))
    assert res.summary["instances"] == 1000
    assert 77.07 * 0.9 <= res.summary["makespan_s"] <= 77.07 * 1.1
    assert res.summary["flushes"] == 5  # 200-row flushes


def test_cli_run_and_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc = main(["run", str(SCN / "threeways-array.yaml"), "--out", str(out),
               "--set", "threeways.params.seed.range=[0, 30]"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["instances"] == 30 and len((out / "progress.log").read_text().splitlines()) == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text((SCN / "threeways-dask.yaml").read_text().replace("threads: 8", "thread: 8"))
    rc = main(["run", str(bad), "--out", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and "threeways.thread" in err and "line" in err
    assert not (tmp_path / "nothing").exists()
