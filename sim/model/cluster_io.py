"""Load cluster descriptions (POLICIES.md 1.3, 10.5) into :class:`ClusterSpec`.

Three ways to name a cluster, all through :func:`load_cluster`:

* an ElasticFlow CSV file: header
  ``num_switch,num_node_p_switch,num_gpu_p_node,num_cpu_p_node,mem_p_node`` and
  exactly one data row (CRLF line endings and a missing final newline are fine);
* a YAML file (``.yaml``/``.yml``)::

      name: my-cluster            # optional, default: file stem
      switches: 2
      nodes_per_switch: 16
      gpus_per_node: 8
      gpu_type: A100              # optional: A100 or T4
      cores_per_node: 64          # optional, default 64
      memory_GB_per_node: 256     # optional, default 256
      links:                      # optional; each class optional
        intra_node:    {bandwidth_MBps: 300000, latency_s: 2.0e-6}
        node_switch:   {bandwidth_MBps: 12500,  latency_s: 5.0e-6}
        switch_switch: {bandwidth_MBps: 50000,  latency_s: 1.0e-5}

* a bare name such as ``n16g8``: ``cluster_specs/n16g8.csv`` (or ``.yaml``/``.yml``)
  in the current directory, else the copy bundled in ``sim/data/cluster_specs/``.

Every problem raises one :class:`sim.errors.InputError` naming the file, the
1-based line (YAML lines come from the node marks) and the field.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sim.errors import InputError
from sim.model.cluster import DEFAULT_LINKS, ClusterSpec, LinkSpec
from sim.model.throughput import GPU_TYPES

__all__ = [
    "CSV_COLUMNS",
    "YAML_KEYS",
    "bundled_cluster_names",
    "cluster_from_dict",
    "load_cluster",
    "load_yaml_with_lines",
]

#: Header of the ElasticFlow cluster-spec CSV.
CSV_COLUMNS: tuple[str, ...] = (
    "num_switch", "num_node_p_switch", "num_gpu_p_node", "num_cpu_p_node", "mem_p_node",
)
#: Keys accepted at the top level of the YAML form.
YAML_KEYS: tuple[str, ...] = (
    "name", "switches", "nodes_per_switch", "gpus_per_node", "gpu_type",
    "cores_per_node", "memory_GB_per_node", "links",
)
_REQUIRED_YAML_KEYS = ("switches", "nodes_per_switch", "gpus_per_node")
_LINK_KEYS: tuple[str, ...] = ("bandwidth_MBps", "latency_s")
_EXP_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

#: Line numbers by key path, e.g. ``("links", "intra_node", "latency_s") -> 7``.
LineMap = dict[tuple[str | int, ...], int]


# --------------------------------------------------------------------------- names
def _natural_key(name: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    num = ""
    for ch in name + "\0":
        if ch.isdigit():
            num += ch
            continue
        if num:
            parts.append(int(num))
            num = ""
        parts.append(ch)
    return tuple(parts)


def bundled_cluster_names() -> list[str]:
    """Names of the cluster specs shipped in ``sim/data/cluster_specs`` (natural order)."""
    base = resources.files("sim") / "data" / "cluster_specs"
    try:
        names = [p.name[:-4] for p in base.iterdir() if p.name.endswith(".csv")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(names, key=_natural_key)


def _is_bare_name(arg: str) -> bool:
    return "/" not in arg and "\\" not in arg and Path(arg).suffix == "" and arg not in ("", ".")


def load_cluster(path_or_name: str | Path) -> ClusterSpec:
    """Load a cluster from a CSV/YAML file or a bare name (see the module docstring).

    Contract:
        * An existing file is read by its suffix (``.csv`` -> ElasticFlow CSV,
          ``.yaml``/``.yml`` -> YAML); other suffixes are sniffed (a first line
          starting with ``num_switch`` is CSV, anything else YAML).
        * A bare name ``N`` resolves to ``./cluster_specs/N.csv`` (then ``.yaml``,
          ``.yml``), else the bundled ``sim/data/cluster_specs/N.csv``.
        * ``name`` is the YAML ``name`` or the file stem; ``source`` is the file read
          (``bundled:N`` for a bundled spec). CSV specs have ``gpu_type=None`` and the
          default links.

    Raises:
        InputError: missing file (naming the path and the bundled names) or any
            format/type/range problem (naming file, line and field).
    """
    arg = str(path_or_name)
    path = Path(arg)
    if path.is_file():
        return _load_file(path)
    if _is_bare_name(arg):
        for suffix in (".csv", ".yaml", ".yml"):
            local = Path("cluster_specs") / f"{arg}{suffix}"
            if local.is_file():
                return _load_file(local)
        bundled = resources.files("sim") / "data" / "cluster_specs" / f"{arg}.csv"
        if bundled.is_file():
            return _parse_csv(bundled.read_text(), f"bundled:{arg}", arg)
    names = ", ".join(bundled_cluster_names())
    looked = (f" (also looked for cluster_specs/{arg}.csv|.yaml|.yml in {Path.cwd()} and "
              "the bundled specs)" if _is_bare_name(arg) else "")
    raise InputError(
        f"cluster spec not found{looked}; bundled cluster names: {names}",
        file=arg, field="cluster",
    )


def _load_file(path: Path) -> ClusterSpec:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read cluster spec ({e})", file=path) from None
    suffix = path.suffix.lower()
    if suffix == ".csv" or (suffix not in (".yaml", ".yml")
                            and text.lstrip().startswith("num_switch")):
        return _parse_csv(text, str(path), path.stem)
    data, lines = load_yaml_with_lines(text, str(path))
    if not isinstance(data, Mapping):
        raise InputError(
            f"a YAML cluster spec must be a mapping with keys {', '.join(YAML_KEYS)}",
            file=path, line=lines.get((), 1),
        )
    return cluster_from_dict(data, str(path), lines=lines, default_name=path.stem)


# --------------------------------------------------------------------------- CSV
def _parse_csv(text: str, source: str, name: str) -> ClusterSpec:
    rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
            if r and any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"cluster spec is empty; expected header {','.join(CSV_COLUMNS)} "
                         "and one data row", file=source, line=1)
    header_line, header = rows[0]
    cols = [c.strip() for c in header]
    for c in cols:
        if c not in CSV_COLUMNS:
            raise InputError(f"unknown column {c!r}; valid columns: {', '.join(CSV_COLUMNS)}",
                             file=source, line=header_line, field=c)
        if cols.count(c) > 1:
            raise InputError(f"column {c!r} appears twice", file=source, line=header_line,
                             field=c)
    for c in CSV_COLUMNS:
        if c not in cols:
            raise InputError(f"missing column {c!r}; expected {','.join(CSV_COLUMNS)}",
                             file=source, line=header_line, field=c)
    if len(rows) < 2:
        raise InputError("cluster spec has a header but no data row",
                         file=source, line=header_line + 1)
    if len(rows) > 2:
        raise InputError("cluster spec must have exactly one data row",
                         file=source, line=rows[2][0])
    line, row = rows[1]
    if len(row) != len(cols):
        raise InputError(f"expected {len(cols)} cells, found {len(row)}",
                         file=source, line=line,
                         field=cols[len(row)] if len(row) < len(cols) else None)
    cells = {c: v.strip() for c, v in zip(cols, row)}

    def integer(col: str, minimum: int) -> int:
        s = cells[col]
        if not (s.isascii() and s.isdigit()):
            raise InputError(f"{s!r} is not a non-negative integer",
                             file=source, line=line, field=col)
        v = int(s)
        if v < minimum:
            raise InputError(f"must be at least {minimum}, got {v}",
                             file=source, line=line, field=col)
        return v

    s = cells["mem_p_node"]
    try:
        mem = float(s)
    except ValueError:
        raise InputError(f"{s!r} is not a number", file=source, line=line,
                         field="mem_p_node") from None
    if not math.isfinite(mem) or mem < 0:
        raise InputError(f"must be a finite number >= 0, got {s}", file=source, line=line,
                         field="mem_p_node")
    return ClusterSpec(
        name=name,
        num_switch=integer("num_switch", 1),
        nodes_per_switch=integer("num_node_p_switch", 1),
        gpus_per_node=integer("num_gpu_p_node", 1),
        cores_per_node=integer("num_cpu_p_node", 0),
        memory_GB_per_node=mem,
        gpu_type=None,
        links=dict(DEFAULT_LINKS),
        source=source,
    )


# --------------------------------------------------------------------------- YAML
def load_yaml_with_lines(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse YAML safely and return ``(data, lines)``.

    ``lines`` maps each key path (tuple of mapping keys / sequence indexes) to the
    1-based line of its value; ``()`` is the document itself. Duplicate mapping keys
    are an error (plain YAML loaders silently keep the last one).

    Raises:
        InputError: YAML syntax error or duplicate key, naming ``source`` and the line.
    """
    lines: LineMap = {}
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise InputError(f"invalid YAML: {e.problem or e}", file=source,
                             line=mark.line + 1 if mark else None) from None
        except yaml.YAMLError as e:
            raise InputError(f"invalid YAML: {e}", file=source) from None
        if root is None:
            return None, {(): 1}

        def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
            lines[path] = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for knode, vnode in node.value:
                    key = knode.value if isinstance(knode, yaml.ScalarNode) else str(knode.value)
                    kline = knode.start_mark.line + 1
                    if key in seen:
                        raise InputError(f"duplicate key {key!r} (first on line {seen[key]})",
                                         file=source, line=kline,
                                         field=".".join(str(p) for p in (*path, key)))
                    seen[key] = kline
                    walk(vnode, (*path, key))
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    walk(item, (*path, i))

        walk(root, ())
        try:
            data = loader.construct_document(root)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise InputError(f"invalid YAML value: {e.problem or e}", file=source,
                             line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    return data, lines


def _type_name(v: object) -> str:
    return "null" if v is None else type(v).__name__


def cluster_from_dict(
    d: Mapping[str, Any],
    source: str = "<dict>",
    *,
    lines: Mapping[tuple[str | int, ...], int] | None = None,
    default_name: str | None = None,
) -> ClusterSpec:
    """Build a :class:`ClusterSpec` from a mapping in the YAML form (keys :data:`YAML_KEYS`).

    Args:
        d: the mapping (``switches``, ``nodes_per_switch`` and ``gpus_per_node`` are
            required; the rest optional).
        source: file name used in error messages and stored as ``ClusterSpec.source``.
        lines: optional key-path -> line map relative to ``d`` (as returned by
            :func:`load_yaml_with_lines`, with any prefix stripped) for error lines.
        default_name: name used when ``d`` has no ``name`` (default ``"cluster"``).

    Raises:
        InputError: unknown key (listing the valid ones), missing required key, wrong
            type (integers must be YAML ints, not floats or booleans; numbers may be
            ints or floats, and exponent forms like ``1e-6`` that YAML 1.1 reads as
            strings are accepted), value out of range, or unknown ``gpu_type``;
            naming source, line and field.
    """
    lm: Mapping[tuple[str | int, ...], int] = lines or {}

    def err(msg: str, *path: str) -> InputError:
        line = None
        for k in range(len(path), -1, -1):
            if path[:k] in lm:
                line = lm[path[:k]]
                break
        return InputError(msg, file=source, line=line, field=".".join(path) or None)

    if not isinstance(d, Mapping):
        raise err(f"a cluster spec must be a mapping, got {_type_name(d)}")
    for key in d:
        if key not in YAML_KEYS:
            raise err(f"unknown key {key!r}; valid keys: {', '.join(YAML_KEYS)}", str(key))
    for key in _REQUIRED_YAML_KEYS:
        if key not in d:
            raise err(f"missing required key {key!r}; a cluster needs "
                      f"{', '.join(_REQUIRED_YAML_KEYS)}", key)

    def integer(key: str, minimum: int, default: int | None = None) -> int:
        v = d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise err(f"must be an integer, got {_type_name(v)} {v!r}", key)
        if v < minimum:
            raise err(f"must be at least {minimum}, got {v}", key)
        return v

    def number(v: Any, minimum: float, strict: bool, *path: str) -> float:
        if isinstance(v, str) and _EXP_NUMBER.fullmatch(v.strip()):
            # PyYAML (YAML 1.1) reads ``1e-6`` (no dot) as a string; accept it as a number.
            v = float(v)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise err(f"must be a number, got {_type_name(v)} {v!r}", *path)
        f = float(v)
        if not math.isfinite(f) or f < minimum or (strict and f <= minimum):
            op = ">" if strict else ">="
            raise err(f"must be a finite number {op} {minimum:g}, got {v!r}", *path)
        return f

    name = d.get("name", default_name or "cluster")
    if not isinstance(name, str) or not name.strip():
        raise err(f"must be a non-empty string, got {_type_name(name)} {name!r}", "name")
    gpu_type = d.get("gpu_type")
    if gpu_type is not None and gpu_type not in GPU_TYPES:
        raise err(f"unknown GPU type {gpu_type!r}; valid: {', '.join(GPU_TYPES)}", "gpu_type")

    links = dict(DEFAULT_LINKS)
    raw_links = d.get("links")
    if raw_links is not None:
        if not isinstance(raw_links, Mapping):
            raise err(f"must be a mapping with keys {', '.join(DEFAULT_LINKS)}, "
                      f"got {_type_name(raw_links)}", "links")
        for cls, spec in raw_links.items():
            if cls not in DEFAULT_LINKS:
                raise err(f"unknown link class {cls!r}; valid: {', '.join(DEFAULT_LINKS)}",
                          "links", str(cls))
            if not isinstance(spec, Mapping):
                raise err(f"must be a mapping like {{bandwidth_MBps: 12500, latency_s: 5e-6}}, "
                          f"got {_type_name(spec)}", "links", cls)
            for k in spec:
                if k not in _LINK_KEYS:
                    raise err(f"unknown key {k!r}; valid keys: {', '.join(_LINK_KEYS)}",
                              "links", cls, str(k))
            if "bandwidth_MBps" not in spec:
                raise err("missing required key 'bandwidth_MBps'", "links", cls)
            links[cls] = LinkSpec(
                bandwidth_MBps=number(spec["bandwidth_MBps"], 0.0, True,
                                      "links", cls, "bandwidth_MBps"),
                latency_s=number(spec.get("latency_s", 0.0), 0.0, False,
                                 "links", cls, "latency_s"),
            )

    return ClusterSpec(
        name=name,
        num_switch=integer("switches", 1),
        nodes_per_switch=integer("nodes_per_switch", 1),
        gpus_per_node=integer("gpus_per_node", 1),
        cores_per_node=integer("cores_per_node", 0, 64),
        memory_GB_per_node=number(d.get("memory_GB_per_node", 256.0), 0.0, False,
                                  "memory_GB_per_node"),
        gpu_type=gpu_type,
        links=links,
        source=source,
    )
