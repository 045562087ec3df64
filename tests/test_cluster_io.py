"""Tests for sim.model.cluster_io: ElasticFlow CSV, YAML and bundled cluster specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import InputError
from sim.model.cluster import DEFAULT_LINKS, ClusterSpec, LinkSpec
from sim.model.cluster_io import (
    bundled_cluster_names,
    cluster_from_dict,
    load_cluster,
    load_yaml_with_lines,
)

REPO_SPECS = Path(__file__).resolve().parents[1] / "cluster_specs"
HEADER = "num_switch,num_node_p_switch,num_gpu_p_node,num_cpu_p_node,mem_p_node"

#: POLICIES.md 10.5: (switches, nodes per switch, GPUs per node) and CPUs per node
TOPOLOGY = {
    "n1g1": (1, 1, 1, 40), "n1g2": (1, 2, 1, 40), "n1g4": (1, 1, 4, 40),
    "n1g8": (1, 1, 8, 40), "n2g2": (1, 2, 2, 40), "n4g8": (1, 4, 8, 40),
    "n8g8": (1, 8, 8, 40), "n16g4": (1, 16, 4, 64), "n16g8": (1, 16, 8, 64),
    "n32g4": (1, 32, 4, 40), "n32g8": (1, 32, 8, 64), "n48g8": (1, 48, 8, 64),
    "n64g8": (2, 32, 8, 64), "n128g8": (1, 128, 8, 64), "n160g8": (5, 32, 8, 128),
    "n256g8": (8, 32, 8, 64),
}

FULL_YAML = """\
name: lab
switches: 2
nodes_per_switch: 4
gpus_per_node: 8
gpu_type: T4
cores_per_node: 32
memory_GB_per_node: 512.5
links:
  intra_node: {bandwidth_MBps: 100000, latency_s: 1.0e-6}
  switch_switch:
    bandwidth_MBps: 25000.5
    latency_s: 1e-5
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _bad(arg: str | Path) -> InputError:
    with pytest.raises(InputError) as ei:
        load_cluster(arg)
    return ei.value


def _yaml(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- CSV and names
def test_bundled_names_match_repo_specs() -> None:
    assert bundled_cluster_names() == sorted(TOPOLOGY, key=lambda n: (int(n[1:].split("g")[0]),
                                                                      int(n.split("g")[1])))
    assert {p.stem for p in REPO_SPECS.glob("*.csv")} == set(TOPOLOGY)


@pytest.mark.parametrize("name", sorted(TOPOLOGY))
def test_bundled_spec_by_name(in_tmp: Path, name: str) -> None:
    sw, nps, gpn, cpus = TOPOLOGY[name]
    c = load_cluster(name)
    assert (c.name, c.num_switch, c.nodes_per_switch, c.gpus_per_node) == (name, sw, nps, gpn)
    assert (c.cores_per_node, c.memory_GB_per_node, c.gpu_type) == (cpus, 256.0, None)
    assert c.links == DEFAULT_LINKS and c.source == f"bundled:{name}"


@pytest.mark.parametrize("name", sorted(TOPOLOGY))
def test_repo_csv_by_path_equals_bundled(name: str) -> None:
    from_path = load_cluster(REPO_SPECS / f"{name}.csv")
    bundled = load_cluster(name)
    assert from_path.source == str(REPO_SPECS / f"{name}.csv")
    assert (from_path.num_gpus, from_path.num_nodes) == (bundled.num_gpus, bundled.num_nodes)


def test_bundled_copies_are_byte_identical_to_repo_specs() -> None:
    bundled = Path(__file__).resolve().parents[1] / "sim" / "data" / "cluster_specs"
    for p in REPO_SPECS.glob("*.csv"):
        assert (bundled / p.name).read_bytes() == p.read_bytes(), p.name


def test_local_cluster_specs_dir_takes_precedence(in_tmp: Path) -> None:
    (in_tmp / "cluster_specs").mkdir()
    (in_tmp / "cluster_specs" / "n16g8.csv").write_text(HEADER + "\n3,2,1,8,16")
    c = load_cluster("n16g8")
    assert (c.num_switch, c.nodes_per_switch, c.gpus_per_node) == (3, 2, 1)
    assert c.source == str(Path("cluster_specs") / "n16g8.csv")


def test_local_yaml_by_bare_name(in_tmp: Path) -> None:
    (in_tmp / "cluster_specs").mkdir()
    (in_tmp / "cluster_specs" / "mine.yaml").write_text(FULL_YAML)
    assert load_cluster("mine").name == "lab"


def test_csv_crlf_without_trailing_newline(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_bytes((HEADER + "\r\n2,3,4,10,64.5").encode())
    c = load_cluster(p)
    assert (c.name, c.num_gpus, c.cores_per_node, c.memory_GB_per_node) == ("x", 24, 10, 64.5)


def test_csv_sniffed_without_suffix(tmp_path: Path) -> None:
    p = tmp_path / "spec"
    p.write_text(HEADER + "\n1,2,2,8,8\n")
    assert load_cluster(p).num_gpus == 4


def test_missing_file_lists_bundled_names(in_tmp: Path) -> None:
    err = _bad("n3g3")
    assert err.file == "n3g3" and "n16g8" in err.message and "n256g8" in err.message
    err = _bad(in_tmp / "nope.yaml")
    assert err.file == str(in_tmp / "nope.yaml") and "n1g1" in err.message


def test_csv_empty(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_text("")
    err = _bad(p)
    assert (err.file, err.line) == (str(p), 1)


def test_csv_missing_column(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("num_switch,num_node_p_switch,num_gpu_p_node,num_cpu_p_node\n1,2,3,4\n")
    err = _bad(p)
    assert (err.line, err.field) == (1, "mem_p_node")


def test_csv_unknown_column(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text(HEADER + ",gpus\n1,2,3,4,5,6\n")
    err = _bad(p)
    assert (err.line, err.field) == (1, "gpus")


def test_csv_two_data_rows(tmp_path: Path) -> None:
    p = tmp_path / "two.csv"
    p.write_text(HEADER + "\n1,2,3,4,5\n1,2,3,4,5\n")
    err = _bad(p)
    assert err.line == 3 and "exactly one" in err.message


def test_csv_header_only(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_text(HEADER + "\n")
    assert _bad(p).line == 2


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("0,2,3,4,5", "num_switch"),
        ("1,x,3,4,5", "num_node_p_switch"),
        ("1,2,2.5,4,5", "num_gpu_p_node"),
        ("1,2,3,-4,5", "num_cpu_p_node"),
        ("1,2,3,4,-5", "mem_p_node"),
        ("1,2,3,4,lots", "mem_p_node"),
        ("1,2,3", "num_cpu_p_node"),
    ],
)
def test_csv_bad_values(tmp_path: Path, row: str, field: str) -> None:
    p = tmp_path / "b.csv"
    p.write_text(HEADER + "\n" + row + "\n")
    err = _bad(p)
    assert (err.file, err.line, err.field) == (str(p), 2, field)


# --------------------------------------------------------------------------- YAML
def test_yaml_full(tmp_path: Path) -> None:
    p = _yaml(tmp_path, FULL_YAML)
    c = load_cluster(p)
    assert c == ClusterSpec(
        name="lab", num_switch=2, nodes_per_switch=4, gpus_per_node=8, cores_per_node=32,
        memory_GB_per_node=512.5, gpu_type="T4",
        links={"intra_node": LinkSpec(100000.0, 1e-6),
               "node_switch": DEFAULT_LINKS["node_switch"],
               "switch_switch": LinkSpec(25000.5, 1e-5)},
        source=str(p),
    )
    assert c.num_gpus == 64


def test_yaml_minimal_uses_defaults_and_stem(tmp_path: Path) -> None:
    c = load_cluster(_yaml(tmp_path, "switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\n",
                           "tiny.yml"))
    assert (c.name, c.cores_per_node, c.memory_GB_per_node, c.gpu_type) == ("tiny", 64, 256.0,
                                                                            None)
    assert c.links == DEFAULT_LINKS


def test_yaml_unknown_key_names_key_and_lists_valid(tmp_path: Path) -> None:
    p = _yaml(tmp_path, "switches: 1\nnodes_per_swich: 2\ngpus_per_node: 4\n")
    err = _bad(p)
    assert (err.file, err.line, err.field) == (str(p), 2, "nodes_per_swich")
    assert "nodes_per_switch" in err.message and "memory_GB_per_node" in err.message


def test_yaml_missing_required_key(tmp_path: Path) -> None:
    err = _bad(_yaml(tmp_path, "switches: 1\ngpus_per_node: 4\n"))
    assert (err.line, err.field) == (1, "nodes_per_switch")


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("switches: 1\nnodes_per_switch: 2.0\ngpus_per_node: 4\n", 2, "nodes_per_switch"),
        ("switches: true\nnodes_per_switch: 2\ngpus_per_node: 4\n", 1, "switches"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: -4\n", 3, "gpus_per_node"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: '4'\n", 3, "gpus_per_node"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\ncores_per_node: -1\n", 4,
         "cores_per_node"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nmemory_GB_per_node: -1\n", 4,
         "memory_GB_per_node"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\ngpu_type: V100\n", 4,
         "gpu_type"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nname: ''\n", 4, "name"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nlinks: fast\n", 4, "links"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nlinks:\n  nvlink: {}\n", 5,
         "links.nvlink"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nlinks:\n"
         "  intra_node: {bandwidth: 5}\n", 5, "links.intra_node.bandwidth"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nlinks:\n"
         "  intra_node: {latency_s: 0.1}\n", 5, "links.intra_node"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nlinks:\n"
         "  node_switch:\n    bandwidth_MBps: 10\n    latency_s: -1.0\n", 7,
         "links.node_switch.latency_s"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nlinks:\n"
         "  node_switch:\n    bandwidth_MBps: 0\n", 6, "links.node_switch.bandwidth_MBps"),
        ("switches: 1\nnodes_per_switch: 2\ngpus_per_node: 4\nlinks:\n"
         "  node_switch:\n    bandwidth_MBps: fast\n", 6, "links.node_switch.bandwidth_MBps"),
        ("switches: 1\nswitches: 2\nnodes_per_switch: 2\ngpus_per_node: 4\n", 2, "switches"),
    ],
)
def test_yaml_bad_values(tmp_path: Path, text: str, line: int, field: str) -> None:
    p = _yaml(tmp_path, text)
    err = _bad(p)
    assert (err.file, err.line, err.field) == (str(p), line, field)


def test_yaml_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    c = load_cluster(_yaml(tmp_path, "switches: 1\nnodes_per_switch: 1\ngpus_per_node: 1\n"
                                     "links:\n  intra_node: {bandwidth_MBps: 1e5, latency_s: 2e-6}\n"))
    assert c.links["intra_node"] == LinkSpec(1e5, 2e-6)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    err = _bad(_yaml(tmp_path, "switches: 1\nnodes_per_switch: [2\ngpus_per_node: 4\n"))
    assert err.line is not None and err.line >= 2 and "invalid YAML" in err.message


def test_yaml_not_a_mapping(tmp_path: Path) -> None:
    err = _bad(_yaml(tmp_path, "- 1\n- 2\n"))
    assert err.line == 1 and "mapping" in err.message


def test_yaml_empty(tmp_path: Path) -> None:
    err = _bad(_yaml(tmp_path, ""))
    assert "mapping" in err.message


# --------------------------------------------------------------------------- helpers
def test_cluster_from_dict_without_lines() -> None:
    c = cluster_from_dict({"switches": 1, "nodes_per_switch": 2, "gpus_per_node": 2,
                           "gpu_type": "A100"}, "scenario.yaml")
    assert (c.name, c.num_gpus, c.gpu_type, c.source) == ("cluster", 4, "A100", "scenario.yaml")
    with pytest.raises(InputError) as ei:
        cluster_from_dict({"switches": 1, "nodes_per_switch": 2, "gpus_per_node": 2,
                           "gpu": "A100"}, "scenario.yaml")
    assert (ei.value.file, ei.value.line, ei.value.field) == ("scenario.yaml", None, "gpu")


def test_cluster_from_dict_with_prefixed_lines() -> None:
    text = "policy: ef\ncluster:\n  switches: 1\n  nodes_per_switch: 0\n  gpus_per_node: 8\n"
    data, lines = load_yaml_with_lines(text, "s.yaml")
    sub = {k[1:]: v for k, v in lines.items() if k[:1] == ("cluster",)}
    with pytest.raises(InputError) as ei:
        cluster_from_dict(data["cluster"], "s.yaml", lines=sub)
    assert (ei.value.line, ei.value.field) == (4, "nodes_per_switch")


def test_load_yaml_with_lines_paths() -> None:
    data, lines = load_yaml_with_lines("a:\n  b: [1, 2]\n  c:\n    d: x\n", "f")
    assert data == {"a": {"b": [1, 2], "c": {"d": "x"}}}
    assert lines[("a", "b")] == 2 and lines[("a", "b", 1)] == 2 and lines[("a", "c", "d")] == 4
