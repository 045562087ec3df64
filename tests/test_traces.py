"""Tests for sim.traces.elasticflow: reading/writing ElasticFlow and ITP trace CSVs."""

from __future__ import annotations

import gzip
import math
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import InputError
from sim.model.cluster import ClusterSpec
from sim.model.job import BEST_EFFORT_DEADLINE, JobSpec
from sim.model.throughput import bundled_table
from sim.traces import ARTIFACT_COLUMNS, ITP_COLUMNS, read_trace, write_trace

TRACES = Path(__file__).resolve().parents[1] / "traces"

ART_HEADER = ",".join(ARTIFACT_COLUMNS)
ITP_HEADER = ",".join(ITP_COLUMNS)

#: job counts per shipped trace and the throughput table it needs
EXPECTED = {
    "195job.csv": (195, "A100"),
    "cluster01.csv": (1595, "A100"),
    "cluster02.csv": (5778, "A100"),
    "cluster03.csv": (3011, "A100"),
    "cluster04.csv": (15802, "A100"),
    "cluster05.csv": (3629, "A100"),
    "cluster06.csv": (2396, "A100"),
    "cluster07.csv": (12699, "A100"),
    "cluster08.csv": (13047, "A100"),
    "cluster09.csv": (11134, "A100"),
    "cluster10.csv": (260, "A100"),
    "elasticVpollux_e.csv": (195, "T4"),
    "fig10_100jobs_1500lam.csv": (100, "A100"),
    "philly_103959.csv": (876, "A100"),
}


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _bad(path: Path, **kw: object) -> InputError:
    with pytest.raises(InputError) as ei:
        read_trace(path, **kw)  # type: ignore[arg-type]
    return ei.value


# --------------------------------------------------------------------------- shipped data
def test_every_shipped_trace_is_listed() -> None:
    assert sorted(p.name for p in TRACES.glob("*.csv")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_trace_loads_with_its_table(name: str) -> None:
    count, gpu = EXPECTED[name]
    jobs = read_trace(TRACES / name, table=bundled_table(gpu))
    assert len(jobs) == count
    assert sorted(j.idx for j in jobs) == list(range(count))
    assert [j.submit_s for j in jobs] == sorted(j.submit_s for j in jobs)
    assert len({j.job_id for j in jobs}) == count
    assert all(j.trace_deadline_s is not None and j.trace_deadline_s >= j.submit_s for j in jobs)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_trace_fails_with_the_other_table(name: str) -> None:
    _, gpu = EXPECTED[name]
    other = "T4" if gpu == "A100" else "A100"
    err = _bad(TRACES / name, table=bundled_table(other))
    assert err.field in ("model_name", "batch_size")
    assert err.line is not None and err.line >= 2
    assert err.file == str(TRACES / name)


def test_cluster04_size_and_speed() -> None:
    t0 = time.perf_counter()
    jobs = read_trace(TRACES / "cluster04.csv", table=bundled_table("A100"))
    elapsed = time.perf_counter() - t0
    assert len(jobs) == 15802
    assert elapsed < 1.0


def test_fig10_first_rows() -> None:
    jobs = read_trace(TRACES / "fig10_100jobs_1500lam.csv")
    assert jobs[0] == JobSpec(
        job_id="0", idx=0, submit_s=0, iterations=7246, model="resnet50", batch_size=256,
        deadline_s=5896, num_gpu=1, duration_s=3930, best_effort=False, trace_deadline_s=5896,
    )
    assert jobs[1].job_id == "1" and jobs[1].submit_s == 4686 and jobs[1].model == "gpt2"


def test_itp_uuid_ids_are_strings() -> None:
    jobs = read_trace(TRACES / "cluster10.csv")
    assert jobs[0].job_id == "5dc7d9cd-c300-9a4f-c3cd-dc2cc0935548"
    assert jobs[0].submit_s == 2266647 and jobs[0].deadline_s == 2267101


def test_philly_uses_iteration_and_duration_not_real_columns(tmp_path: Path) -> None:
    p = _write(tmp_path,
               "job_id,submit_time,real_iteration,model_name,ddl,batch_size,num_gpu,"
               "real_duration,duration,iteration\n"
               "0,0,111,vgg16,500,256,1,222,333,444\n")
    (job,) = read_trace(p)
    assert job.iterations == 444 and job.duration_s == 333


# --------------------------------------------------------------------------- semantics
def test_both_column_sets_give_equal_jobs(tmp_path: Path) -> None:
    rows = ["a,10,100,resnet50,50,64,2,30", "b,5,200,gpt2,40,128,1,20"]
    art = _write(tmp_path, "job_id,submit_time,iteration,model_name,ddl,batch_size,num_gpu,"
                 "duration\n" + "\n".join(rows) + "\n", "art.csv")
    itp = _write(tmp_path, ITP_HEADER + "\n" + "\n".join(rows) + "\n", "itp.csv")
    table = bundled_table("A100")
    assert read_trace(art, table=table) == read_trace(itp, table=table)


def test_columns_matched_by_name_in_any_order(tmp_path: Path) -> None:
    p = _write(tmp_path, "duration,extra,num_gpu,batch_size,deadline,model_name,"
               "num_iteration,submission_time,job_id\n30,zzz,2,64,50,resnet50,100,10,a\n")
    assert read_trace(p) == [JobSpec("a", 0, 10, 100, "resnet50", 64, 50, 2, 30, False, 50)]


def test_stable_sort_and_idx_is_file_position(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n"
               "x,20,1,bert,30,64,1,1,0\n"
               "y,10,1,bert,30,64,1,1,0\n"
               "z,20,1,bert,30,64,1,1,0\n"
               "w,10,1,bert,30,64,1,1,0\n")
    jobs = read_trace(p)
    assert [(j.job_id, j.idx) for j in jobs] == [("y", 1), ("w", 3), ("x", 0), ("z", 2)]


def test_best_effort_column(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n"
               "0,0,100,bert,300,64,1,50,1\n"
               "1,0,100,bert,400,64,1,50,0\n")
    be, dl = read_trace(p)
    assert be.best_effort and be.deadline_s == BEST_EFFORT_DEADLINE and math.isinf(be.deadline_s)
    assert be.trace_deadline_s == 300 and not be.has_deadline
    assert not dl.best_effort and dl.deadline_s == 400 and dl.trace_deadline_s == 400
    assert isinstance(dl.deadline_s, int)


def test_blank_lines_skipped_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n0,0,1,bert,5,64,1,1,0\n\n1,0,1,bert,5,64,1,x,0\n\n")
    err = _bad(p)
    assert (err.line, err.field) == (4, "duration")


def test_crlf_and_no_trailing_newline(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes((ITP_HEADER + "\r\na,1,2,bert,3,64,1,4\r\nb,1,2,bert,3,64,1,4").encode())
    assert [j.job_id for j in read_trace(p)] == ["a", "b"]


def test_num_gpu_without_table_rate_is_not_an_error(tmp_path: Path) -> None:
    # A100 deepspeech2 batch 32 has no value at 64 GPUs; traces may still request it.
    p = _write(tmp_path, ART_HEADER + "\n0,0,10,deepspeech2,100,32,64,10,0\n")
    (job,) = read_trace(p, table=bundled_table("A100"))
    assert job.num_gpu == 64


def test_cluster_check_accepts_job_that_fits(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n0,0,10,bert,100,64,8,10,0\n")
    assert read_trace(p, cluster=ClusterSpec("one", 1, 1, 8))[0].num_gpu == 8


# --------------------------------------------------------------------------- gzip / round trip
def test_gzip_by_suffix_and_by_magic(tmp_path: Path) -> None:
    src = TRACES / "fig10_100jobs_1500lam.csv"
    plain = read_trace(src)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    assert read_trace(gz) == plain
    magic = tmp_path / "no_suffix.csv"
    magic.write_bytes(gzip.compress(src.read_bytes()))
    assert read_trace(magic) == plain


def test_corrupt_gzip(tmp_path: Path) -> None:
    p = tmp_path / "t.csv.gz"
    p.write_bytes(b"\x1f\x8bnot really gzip")
    err = _bad(p)
    assert err.file == str(p) and "gzip" in err.message


def test_write_read_round_trip_is_byte_exact_for_fig10(tmp_path: Path) -> None:
    src = TRACES / "fig10_100jobs_1500lam.csv"
    jobs = read_trace(src)
    out = tmp_path / "out.csv"
    write_trace(jobs, out)
    assert out.read_bytes() == src.read_bytes()
    assert read_trace(out) == jobs


@pytest.mark.parametrize("name", ["cluster10.csv", "philly_103959.csv", "elasticVpollux_e.csv"])
def test_round_trip_of_other_formats(tmp_path: Path, name: str) -> None:
    jobs = read_trace(TRACES / name)
    out = tmp_path / "out.csv.gz"
    write_trace(jobs, out)
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert read_trace(out) == jobs


def test_round_trip_best_effort_and_quoted_ids(tmp_path: Path) -> None:
    jobs = [
        JobSpec("a,b", 0, 0, 10, "bert", 64, BEST_EFFORT_DEADLINE, 1, 5, True, 77),
        JobSpec('q"x', 1, 3, 10, "bert", 64, 9, 1, 5, False, 9),
    ]
    out = tmp_path / "o.csv"
    write_trace(jobs, out)
    assert read_trace(out) == jobs


def test_write_rejects_non_integer_deadline(tmp_path: Path) -> None:
    job = JobSpec("a", 0, 0, 10, "bert", 64, 9.5, 1, 5)
    with pytest.raises(ValueError, match="deadline"):
        write_trace([job], tmp_path / "o.csv")


_ids = st.text(alphabet="abcxyz0123456789-,\" ", min_size=1, max_size=8).filter(
    lambda s: s.strip() == s)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(_ids, st.integers(0, 10**9), st.integers(0, 10**9),
                          st.integers(0, 10**6), st.booleans(), st.integers(1, 64)),
                min_size=1, max_size=20, unique_by=lambda t: t[0]))
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory,
                             rows: list[tuple[str, int, int, int, bool, int]]) -> None:
    jobs = [
        JobSpec(jid, i, sub, it, "vgg16", 128,
                BEST_EFFORT_DEADLINE if be else sub + slack, gpus, it // 7, be, sub + slack)
        for i, (jid, sub, it, slack, be, gpus) in enumerate(rows)
    ]
    jobs.sort(key=lambda j: j.submit_s)
    out = tmp_path_factory.mktemp("rt") / "o.csv"
    write_trace(jobs, out)
    assert read_trace(out) == jobs


# --------------------------------------------------------------------------- malformed input
def test_missing_file(tmp_path: Path) -> None:
    err = _bad(tmp_path / "nope.csv")
    assert err.file == str(tmp_path / "nope.csv") and "not found" in err.message


def test_empty_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "")
    err = _bad(p)
    assert (err.file, err.line) == (str(p), 1) and "empty" in err.message


def test_header_only(tmp_path: Path) -> None:
    err = _bad(_write(tmp_path, ART_HEADER + "\n"))
    assert err.line == 2 and "no job rows" in err.message


@pytest.mark.parametrize("col", ["job_id", "submit_time", "iteration", "model_name", "ddl",
                                 "batch_size", "num_gpu", "duration"])
def test_missing_artifact_column(tmp_path: Path, col: str) -> None:
    cols = [c for c in ARTIFACT_COLUMNS if c != col]
    p = _write(tmp_path, ",".join(cols) + "\n" + ",".join("1" for _ in cols) + "\n")
    err = _bad(p)
    assert (err.file, err.line, err.field) == (str(p), 1, col)


@pytest.mark.parametrize("col", ["submission_time", "num_iteration", "deadline"])
def test_missing_itp_column_is_named_the_itp_way(tmp_path: Path, col: str) -> None:
    cols = [c for c in ITP_COLUMNS if c != col]
    p = _write(tmp_path, ",".join(cols) + "\n")
    err = _bad(p)
    assert (err.line, err.field) == (1, col)


def test_column_and_alias_both_present(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + ",deadline\n0,0,1,bert,5,64,1,1,0,5\n")
    err = _bad(p)
    assert (err.line, err.field) == (1, "deadline")


def test_duplicate_header_column(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + ",num_gpu\n")
    err = _bad(p)
    assert (err.line, err.field) == (1, "num_gpu")


@pytest.mark.parametrize(
    ("cell_index", "value", "field", "needle"),
    [
        (1, "abc", "submit_time", "not a number"),
        (1, "12.5", "submit_time", "not an integer"),
        (1, "12.0", "submit_time", "not an integer"),
        (1, "-3", "submit_time", "negative"),
        (1, "", "submit_time", "empty"),
        (2, "1e3", "iteration", "not an integer"),
        (2, "-1", "iteration", "negative"),
        (4, "5.5", "ddl", "not an integer"),
        (5, "sixty-four", "batch_size", "not a number"),
        (6, "1.5", "num_gpu", "not an integer"),
        (7, "nan", "duration", "finite"),
        (7, "-7", "duration", "negative"),
    ],
)
def test_bad_numeric_cell(tmp_path: Path, cell_index: int, value: str, field: str,
                          needle: str) -> None:
    cells = ["j", "0", "10", "bert", "100", "64", "1", "10", "0"]
    cells[cell_index] = value
    p = _write(tmp_path, ART_HEADER + "\nok,0,10,bert,100,64,1,10,0\n" + ",".join(cells) + "\n")
    err = _bad(p)
    assert (err.file, err.line, err.field) == (str(p), 3, field)
    assert needle in err.message


def test_bad_numeric_cell_itp_names_the_itp_column(tmp_path: Path) -> None:
    p = _write(tmp_path, ITP_HEADER + "\na,1,2.5,bert,3,64,1,4\n")
    err = _bad(p)
    assert (err.line, err.field) == (2, "num_iteration")


def test_deadline_before_submit(tmp_path: Path) -> None:
    p = _write(tmp_path, ITP_HEADER + "\na,100,2,bert,99,64,1,4\n")
    err = _bad(p)
    assert (err.line, err.field) == (2, "deadline") and "before" in err.message


def test_best_effort_not_zero_or_one(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n0,0,1,bert,5,64,1,1,2\n")
    err = _bad(p)
    assert (err.line, err.field) == (2, "best_effort")


def test_too_few_cells(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n0,0,1,bert,5,64,1,1,0\n1,0,1,bert,5,64\n")
    err = _bad(p)
    assert (err.line, err.field) == (3, "num_gpu") and "found 6" in err.message


def test_too_many_cells(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n0,0,1,bert,5,64,1,1,0,9\n")
    err = _bad(p)
    assert err.line == 2 and err.field is None and "found 10" in err.message


def test_duplicate_job_id(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n7,0,1,bert,5,64,1,1,0\n8,0,1,bert,5,64,1,1,0\n"
               "7,3,1,bert,5,64,1,1,0\n")
    err = _bad(p)
    assert (err.line, err.field) == (4, "job_id") and "line 2" in err.message


def test_empty_job_id(tmp_path: Path) -> None:
    err = _bad(_write(tmp_path, ART_HEADER + "\n ,0,1,bert,5,64,1,1,0\n"))
    assert (err.line, err.field) == (2, "job_id")


def test_unknown_model_lists_valid_models(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n0,0,1,bert,5,64,1,1,0\n1,0,1,alexnet,5,64,1,1,0\n")
    err = _bad(p, table=bundled_table("A100"))
    assert (err.line, err.field) == (3, "model_name")
    assert "resnet50" in err.message and "alexnet" in err.message
    assert read_trace(p)[1].model == "alexnet"  # without a table, any model is accepted


def test_unknown_batch_lists_valid_batches(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n0,0,1,gpt2,5,64,1,1,0\n")
    err = _bad(p, table=bundled_table("A100"))
    assert (err.line, err.field) == (2, "batch_size") and "128, 256" in err.message


@pytest.mark.parametrize(("value", "field"), [("0", "num_gpu"), ("x", "num_gpu")])
def test_num_gpu_below_one(tmp_path: Path, value: str, field: str) -> None:
    err = _bad(_write(tmp_path, ART_HEADER + f"\n0,0,1,bert,5,64,{value},1,0\n"))
    assert (err.line, err.field) == (2, field)


def test_batch_size_zero(tmp_path: Path) -> None:
    err = _bad(_write(tmp_path, ART_HEADER + "\n0,0,1,bert,5,0,1,1,0\n"))
    assert (err.line, err.field) == (2, "batch_size")


def test_cluster_too_small(tmp_path: Path) -> None:
    p = _write(tmp_path, ART_HEADER + "\n0,0,1,bert,5,64,8,1,0\n1,0,1,bert,5,64,16,1,0\n")
    err = _bad(p, cluster=ClusterSpec("n1g8", 1, 1, 8))
    assert (err.file, err.line, err.field) == (str(p), 3, "num_gpu")
    assert "cluster too small for job" in err.message and "n1g8" in err.message


def test_itp_trace_too_big_for_small_cluster() -> None:
    err = _bad(TRACES / "cluster01.csv", cluster=ClusterSpec("n4g8", 1, 4, 8))
    assert err.field == "num_gpu" and err.line == 2  # first row asks for 64 GPUs


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes((ART_HEADER + "\n0,0,1,b\xe9rt,5,64,1,1,0\n").encode("latin-1"))
    err = _bad(p)
    assert err.line == 2 and "UTF-8" in err.message
