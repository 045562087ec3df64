"""Scenario validation and the command line: errors name file/line/field, exit 2, write nothing."""

import json
from pathlib import Path

import pytest

from sim.cli import main
from sim.errors import InputError
from sim.scenario import load_scenario
from tests.toy import TOY_CSV

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def toy(tmp_path: Path) -> Path:
    p = tmp_path / "toy.csv"
    p.write_text(TOY_CSV)
    return p


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_line(tmp_path, toy):
    p = write(tmp_path, f"trace: {toy}\ncluster: n1g8\npolicy: fifo\nslot: 240\n")
    with pytest.raises(InputError) as e:
        load_scenario(p)
    assert e.value.line == 4 and e.value.field == "slot" and "slot_s" in str(e.value)


def test_unknown_policy_names_line(tmp_path, toy):
    p = write(tmp_path, f"trace: {toy}\ncluster: n1g8\npolicy: edff\n")
    with pytest.raises(InputError) as e:
        load_scenario(p)
    assert "edff" in str(e.value) and str(p) in str(e.value)


def test_wrong_type(tmp_path, toy):
    p = write(tmp_path, f"trace: {toy}\ncluster: n1g8\npolicy: fifo\nslot_s: soon\n")
    with pytest.raises(InputError) as e:
        load_scenario(p)
    assert e.value.field == "slot_s" and e.value.line == 4


def test_set_override(tmp_path, toy):
    p = write(tmp_path, f"trace: {toy}\ncluster: n1g8\npolicy: fifo\n")
    s = load_scenario(p, ["slot_s=60", "params.backfill=true"])
    assert s.slot_s == 60 and s.params == {"backfill": True}


def test_cli_run_writes_folder(tmp_path, toy):
    out = tmp_path / "out"
    rc = main(["run", "--trace", str(toy), "--cluster", "n1g8", "--policy", "fifo",
               "--out", str(out), "--quiet"])
    assert rc == 0
    for f in ["scenario.yaml", "jobs.csv", "events.csv", "timeline.csv", "summary.json"]:
        assert (out / f).exists(), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jobs"] == 3 and summary["deadline_jobs"] == 2


@pytest.mark.parametrize(
    "csv_text, line, field",
    [
        ("job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu\n0,0,10,resnet50,100,128,1\n",
         1, "duration"),
        ("job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration\n"
         "0,0,10,resnet50,100,128,1,5\n1,x,10,resnet50,100,128,1,5\n", 3, "submit_time"),
        ("job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration\n"
         "0,0,10,resnet51,100,128,1,5\n", 2, "model_name"),
        ("job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration\n"
         "0,50,10,resnet50,40,128,1,5\n", 2, "ddl"),
    ],
)
def test_cli_bad_trace_exit_2_nothing_written(tmp_path, capsys, csv_text, line, field):
    bad = tmp_path / "bad.csv"
    bad.write_text(csv_text)
    out = tmp_path / "out"
    rc = main(["run", "--trace", str(bad), "--cluster", "n1g8", "--policy", "fifo",
               "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(bad) in err and f"line {line}" in err and field in err
    assert err.count("\n") == 1  # one clear line
    assert not out.exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_cli_missing_file_and_unknown_cluster(tmp_path, capsys, toy):
    assert main(["run", "--trace", str(tmp_path / "nope.csv"), "--cluster", "n1g8",
                 "--policy", "fifo", "--quiet"]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert main(["run", "--trace", str(toy), "--cluster", "n3g7", "--policy", "fifo",
                 "--quiet"]) == 2
    assert "n3g7" in capsys.readouterr().err


def test_cli_too_small_cluster(tmp_path, capsys):
    p = tmp_path / "big.csv"
    p.write_text("job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,duration\n"
                 "0,0,10,resnet50,100,128,16,5\n")
    assert main(["run", "--trace", str(p), "--cluster", "n1g8", "--policy", "fifo",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "num_gpu" in err
