"""Dragon-style batches: DAG inference, compile batches, critical-path ranks, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from sim.engine.tasks import DEP_FAILED
from sim.workloads import dragon as dg
from sim.workloads.dragon import ARG, RAW, WAR, WAW, DTask

SCN = Path(__file__).resolve().parents[1] / "scenarios"


def test_edges_from_reads_writes_and_args() -> None:
    prog = [DTask("w1", writes=("file:x",)),
            DTask("r1", reads=("file:x",)), DTask("r2", reads=("file:x",)),
            DTask("w2", writes=("file:x",)),
            DTask("u", reads=("ddict:k",), writes=("ddict:k",)),
            DTask("u2", reads=("ddict:k",), writes=("ddict:k",), args=("r1",))]
    e = dg.infer_edges(prog)
    assert e[("w1", "r1")] == {RAW} and e[("w1", "r2")] == {RAW}
    assert ("r1", "r2") not in e and ("r2", "r1") not in e  # readers of one version
    assert e[("r1", "w2")] == {WAR} and e[("r2", "w2")] == {WAR}
    assert e[("w1", "w2")] == {WAW}
    assert e[("u", "u2")] == {RAW, WAW}  # read-modify-write in place; no self edge
    assert e[("r1", "u2")] == {ARG}
    assert len(e) == 7
    with pytest.raises(ValueError, match="not submitted before"):
        dg.infer_edges([DTask("a", args=("b",)), DTask("b")])


def _spec(**kw: object) -> dg.DragonSpec:
    return dg.DragonSpec(tasks=[{}], **kw)  # type: ignore[arg-type]


def _run(prog: list[DTask], **kw: object) -> dg.DragonResult:
    spec = _spec(**kw)
    return dg.run(dg.DragonScenario("t", spec, tuple(prog)))


def test_critical_path_ranking_beats_fifo() -> None:
    # four independent tasks submitted before a three-task chain, on two cores
    prog = [DTask(f"x{i}") for i in range(4)]
    prog += [DTask("a", writes=("f:a",)), DTask("b", reads=("f:a",), writes=("f:b",)),
             DTask("c", reads=("f:b",))]
    cores = dg.Nodes(1, 2)
    cp = _run(prog, batch_size=64, workers=cores)
    fifo = _run(prog, batch_size=64, workers=cores, ranking="fifo")
    assert cp.compiled.ranks["a"] == 3 and cp.compiled.ranks["x0"] == 1
    assert cp.summary["makespan_s"] == pytest.approx(4.0)
    assert fifo.summary["makespan_s"] == pytest.approx(5.0)
    # one by one there is nothing to rank against: same as FIFO
    assert _run(prog, batch_size=1, workers=cores).summary["makespan_s"] == pytest.approx(5.0)


def test_batching_amortises_compile_overhead() -> None:
    costs = dg.Costs(submit_s=0.001, compile_s=0.05, compile_task_s=0.0005)
    prog = dg.wide_map(tasks=64, map_s=0.1, rng=__import__("random").Random(0))
    one = _run(prog, batch_size=1, workers=dg.Nodes(1, 16), costs=costs)
    big = _run(prog, batch_size=16, workers=dg.Nodes(1, 16), costs=costs)
    assert one.summary["passes"] == 64 and big.summary["passes"] == 4
    assert one.summary["compile_s"] == pytest.approx(64 * 0.0505)
    assert big.summary["compile_s"] == pytest.approx(4 * (0.05 + 16 * 0.0005))
    assert big.summary["makespan_s"] < one.summary["makespan_s"] / 3
    # a whole batch waits for its pass: the first task starts later with bigger batches
    assert big.summary["first_ready_s"] > one.summary["first_ready_s"]


def test_error_surfaces_on_result_and_dependants_do_not_run() -> None:
    scn = dg.load(SCN / "dragon-matpow.yaml",
                  ["dragon.errors={mul_5: 'LinAlgError: singular matrix'}"])
    res = dg.run(scn)
    r = res.results
    assert r["mul_5"].status == "error" and r["mul_5"].error == "LinAlgError: singular matrix"
    with pytest.raises(dg.TaskFailed, match="singular"):
        r["mul_5"].get()
    assert r["norm_4"].status == "ok" and r["norm_4"].get() == "ok"
    for name in ("mul_6", "norm_5", "mul_32", "total"):
        assert r[name].status == "skipped" and "'mul_5' failed" in (r[name].error or "")
    # nothing downstream ever ran: no RUNNING record, and DONE says DEP_FAILED
    ran = {i for _, s, i, ev, _ in res.records if s == "TASK" and ev == "RUNNING"}
    assert "mul_6" not in ran and "total" not in ran
    done = {i: f[0] for _, s, i, ev, f in res.records if s == "TASK" and ev == "DONE"}
    assert done["total"] == DEP_FAILED
    assert res.summary["ok"] + res.summary["errors"] + res.summary["skipped"] == 66


def test_in_place_chain_has_every_edge_kind_and_follows_it() -> None:
    res = dg.run(dg.load(SCN / "dragon-matpow.yaml", ["dragon.batch_size=16"]))
    e = res.summary["edges"]
    assert e["RAW"] > 0 and e["WAR"] == 31 and e["WAW"] == 31 and e["ARG"] == 32
    assert res.summary["makespan_s"] >= res.summary["critical_path_s"]
    done = {r.name: r.done_s for r in res.results.values()}
    assert all(done[f"norm_{i}"] <= done[f"mul_{i + 1}"] for i in range(1, 32))  # WAR held


def test_cli_dragon_run_and_bad_input(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(SCN / "dragon-widemap.yaml"), "--out", str(tmp_path / "r"),
                 "--set", "dragon.wide_map.tasks=32"]) == 0
    assert "32 tasks in 32 compile passes" in capsys.readouterr().out
    rc = main(["run", str(SCN / "dragon-widemap.yaml"), "--out", str(tmp_path / "x"),
               "--set", "dragon.errors={nope: 'boom'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "dragon.errors.nope" in err and "dragon-widemap.yaml" in err
    assert not (tmp_path / "x").exists()
    rc = main(["run", str(SCN / "dragon-widemap.yaml"), "--set", "dragon.costs.compile_s=-1"])
    assert rc == 2 and "dragon.costs.compile_s" in capsys.readouterr().err
