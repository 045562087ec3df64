"""`clustersim figures elasticflow` on tiny inputs: runs what is missing, draws from the store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import sim.sweep as sweep
from analysis.elasticflow import FIGURES, sample_spaced
from sim.cli import main
from sim.store import Store
from tests.toy import TOY_CSV


@pytest.fixture()
def toy(tmp_path: Path) -> Path:
    p = tmp_path / "toy.csv"
    p.write_text(TOY_CSV)
    return p


def figures(tmp_path: Path, *args: str) -> int:
    return main(["figures", "elasticflow", "--store", str(tmp_path / "s.sqlite"),
                 "--out", str(tmp_path / "out"), "--workers", "1", "--quiet", *args])


def test_every_figure_has_a_grid():
    assert sorted(FIGURES) == ["10", "11", "8a", "8b", "9"]
    for f in FIGURES.values():
        assert f.grid_path.is_file(), f.grid_path


def test_fig10_on_the_toy_trace(tmp_path, toy, capsys):
    rc = figures(tmp_path, "--only", "10", "--set", f"trace={toy}", "--set", "cluster=n1g8")
    assert rc == 0
    out = tmp_path / "out"
    assert (out / "fig10.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "fig10.pdf").read_bytes()[:5] == b"%PDF-"
    assert "fig10: 6 runs: 0 already done, 6 done now" in capsys.readouterr().out
    # the plotted numbers are the store's timelines, sampled as plot_fig10.py does
    data = pd.read_csv(out / "fig10.csv")
    assert list(dict.fromkeys(data.policy)) == ["edf", "gandiva", "dlas-gpu", "themis",
                                               "chronus", "ef-accessctrl"]
    with Store(tmp_path / "s.sqlite", create=False) as st:
        runs = st.runs()
        key = runs[runs.policy == "ef-accessctrl"].key.iloc[0]
        tl = sample_spaced(st.timeline(key), 2400.0)
    ef = data[data.policy == "ef-accessctrl"]
    assert list(ef.ce) == pytest.approx(list(tl.ce))
    assert list(ef.time_h) == pytest.approx(list(tl.time_s / 3600))
    assert ef.ce.max() > 0 and ef.ce.iloc[-1] == 0


def test_second_call_draws_from_the_store_only(tmp_path, toy, monkeypatch, capsys):
    args = ["--only", "10", "--set", f"trace={toy}", "--set", "cluster=n1g8"]
    assert figures(tmp_path, *args) == 0
    first = (tmp_path / "out" / "fig10.csv").read_text()
    (tmp_path / "out" / "fig10.png").unlink()

    def no_runs(spec):
        raise AssertionError("nothing should run")

    monkeypatch.setattr(sweep, "execute_run", no_runs)
    capsys.readouterr()
    assert figures(tmp_path, *args) == 0
    assert "6 already done, 0 done now" in capsys.readouterr().out
    assert (tmp_path / "out" / "fig10.png").exists()
    assert (tmp_path / "out" / "fig10.csv").read_text() == first


def test_other_figures_on_tiny_inputs(tmp_path, toy):
    assert figures(tmp_path, "--only", "8a,8b,9", "--set", f"trace={toy}",
                   "--set", "gpu_type=A100") == 0
    assert figures(tmp_path, "--only", "11", "--set", "trace.generate.num_jobs=6",
                   "--set", "slot_s=2400") == 0
    out = tmp_path / "out"
    for stem in ["fig8a", "fig8b", "fig9", "fig11a", "fig11b"]:
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.pdf").exists()
    fig8a = pd.read_csv(out / "fig8a.csv")
    # POLICIES.md 11.1 ratios of the toy trace (n16g4 instead of n1g8 changes nothing
    # for EDF: one job at a time, 8 GPUs each)
    assert fig8a.set_index("policy").deadline_satisfactory_ratio["edf"] == 1.0
    fig9 = pd.read_csv(out / "fig9.csv")
    assert list(dict.fromkeys(fig9.label)) == [
        "EDF", "EDF + Admission Control", "EDF + Elastic Scaling", "ElasticFlow"]
    assert list(dict.fromkeys(fig9.num_gpus)) == [64, 128, 256]
    fig8b = pd.read_csv(out / "fig8b.csv")
    assert set(fig8b.cluster) == {"n64g8", "n128g8", "n32g8"}
    fig11 = pd.read_csv(out / "fig11a.csv")
    assert sorted(set(fig11.be_fraction)) == pytest.approx([i / 10 for i in range(1, 10)])
    gandiva = fig11[fig11.policy == "gandiva"]
    assert (gandiva.jct_improvement_vs_gandiva.dropna() == 1.0).all()
    with Store(tmp_path / "s.sqlite", create=False) as st:
        runs = st.runs()
    one = runs[(runs.policy == "edf") & (runs.trace.str.endswith("-be0.5"))].iloc[0]
    ref = runs[(runs.policy == "gandiva") & (runs.trace == one.trace)].iloc[0]
    row = fig11[(fig11.policy == "edf") & (fig11.be_fraction == 0.5)].iloc[0]
    assert row.jct_improvement_vs_gandiva == pytest.approx(ref.be_jct_mean_s / one.be_jct_mean_s)


def test_unknown_figure_exit_2(tmp_path, capsys):
    assert figures(tmp_path, "--only", "8a,12") == 2
    err = capsys.readouterr().err
    assert "'12'" in err and "8a, 8b, 9, 10, 11" in err
    assert not (tmp_path / "s.sqlite").exists()
