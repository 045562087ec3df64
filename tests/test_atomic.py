from pathlib import Path

import pytest

from sim.atomic import atomic_dir


def test_a_failed_write_leaves_the_old_folder_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with atomic_dir(out) as d:
        (d / "a.csv").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as d:
        (d / "a.csv").write_text("new")
        (d / "b.csv").write_text("half")
        raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in out.iterdir()) == ["a.csv"]
    assert (out / "a.csv").read_text() == "old"


def test_a_finished_write_replaces_the_folder_whole(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "run"
    with atomic_dir(out) as d:
        (d / "a.csv").write_text("1")
        (d / "stale.csv").write_text("x")
    with atomic_dir(out) as d:
        (d / "a.csv").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv"]
    assert (out / "a.csv").read_text() == "2"
