"""Scenarios: YAML -> validated, frozen :class:`Scenario`.

A scenario names one run: a trace (a file, or generator parameters), a cluster,
a policy with its parameters, the slot, the GPU type and the semantics preset.
Unknown keys, wrong types and missing files raise one
:class:`~sim.errors.InputError` naming the file, the line and the key.

Example::

    name: fig10-edf
    trace: traces/fig10_100jobs_1500lam.csv
    cluster: n16g8
    gpu_type: A100
    policy: edf
    params: {}
    slot_s: 240
    preset: elasticflow-artifact
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.errors import InputError

PRESETS = ("clean", "elasticflow-artifact")

#: key -> (type(s), help)
KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "label of the run"),
    "trace": ((str, dict), "trace file, or {generate: {num_jobs, lam, seed, ...}}"),
    "cluster": ((str, dict), "cluster spec name (n16g8), file, or inline mapping"),
    "gpu_type": ((str,), "throughput table: A100 or T4 (default: the cluster's, else A100)"),
    "policy": ((str,), "policy name (see `clustersim policies`)"),
    "params": ((dict,), "policy parameters"),
    "slot_s": ((int, float), "scheduling slot in seconds (0 = decide at exact event times)"),
    "preset": ((str,), "semantics: clean (default) or elasticflow-artifact"),
    "seed": ((int,), "seed of every random draw in the run"),
    "comm": ((str,), "communication slowdown model: allreduce (default) or none"),
    "horizon_s": ((int, float), "stop the simulation at this time (default: run to the end)"),
    "real": ((dict,), "real mode on Dask (docs/real.md): {compression, calibrate_overhead, ...}"),
}
#: keys of the ``real:`` block -> (type(s), default, help); see docs/real.md
REAL_KEYS: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "compression": ((int, float), 100.0, "simulated seconds per wall-clock second (> 0)"),
    "calibrate_overhead": ((bool,), False, "fidelity: replay in simulation with the "
                           "overheads measured in the real run"),
    "checkpoint_every_s": ((int, float), 2.0, "trainer: periodic checkpoint, wall seconds"),
    "step_s": ((int, float), 0.02, "trainer: wall seconds between stop-flag checks"),
    "dim": ((int,), 128, "trainer: model size (floats)"),
    "cpu_slots": ((int,), 1, "CPU-task slots per worker"),
}
GENERATE_KEYS = {
    "num_jobs", "lam", "seed", "max_scale_factor", "best_effort_percentage", "min_ddl",
    "max_ddl", "gpu_type",
}


@dataclass(frozen=True)
class Scenario:
    name: str = "run"
    trace: str | dict = ""
    cluster: str | dict = "n16g8"
    gpu_type: str | None = None
    policy: str = "edf"
    params: dict = field(default_factory=dict)
    slot_s: float = 0.0
    preset: str = "clean"
    seed: int = 0
    comm: str = "allreduce"
    horizon_s: float | None = None
    real: dict = field(default_factory=dict)
    source: str = ""  # file the scenario came from (not part of the resolved scenario)
    base_dir: str = "."  # relative paths resolve against this

    def resolved(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        d.pop("base_dir")
        if not d["real"]:
            d.pop("real")  # simulation-only scenarios resolve as before
        return d

    def path(self, p: str) -> Path:
        q = Path(p)
        if q.is_absolute() or q.exists():
            return q
        alt = Path(self.base_dir) / q
        return alt if alt.exists() else q


def _line_map(text: str) -> dict[tuple[str, ...], int]:
    """Key path -> 1-based line in a YAML document, through mappings and sequences
    (sequence items are keyed ``'0'``, ``'1'``, ...)."""
    out: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out

    def walk(node: Any, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*prefix, str(k.value))
                out[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                key = (*prefix, str(i))
                out[key] = v.start_mark.line + 1
                walk(v, key)

    if root is not None:
        walk(root, ())
    return out


def set_dotted(data: dict[str, Any], assignment: str) -> None:
    """Apply ``key.sub=value`` (value parsed as a YAML scalar) to ``data`` in place."""
    if "=" not in assignment:
        raise InputError(f"--set expects key=value, got {assignment!r}", field="--set")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    cur = data
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


def read_yaml(path: Path, what: str) -> tuple[object, str]:
    """Parse a YAML file: ``(data, text)``; a missing file or bad YAML is an InputError
    naming the file (and line)."""
    if not path.is_file():
        raise InputError(f"{what} file not found", file=path)
    text = path.read_text()
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(e, 'problem', e)}", file=path,
                         line=(mark.line + 1) if mark else None) from None


def read_scenario(path: Path, overrides: Sequence[str] = ()
                  ) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """A scenario file of any kind as ``(mapping, line map)``, ``--set`` overrides applied:
    what every kind's ``*_from_dict`` validates. A missing file, bad YAML or a document
    that is not a mapping is an InputError naming the file."""
    data, text = read_yaml(path, "scenario")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("a scenario must be a mapping of keys", file=path, line=1)
    for o in overrides:
        set_dotted(data, o)
    return data, _line_map(text)


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read and validate a scenario file, applying ``--set`` overrides."""
    path = Path(path)
    data, lines = read_scenario(path, overrides or ())
    return scenario_from_dict(data, source=str(path), lines=lines, base_dir=str(path.parent))


def scenario_from_dict(
    data: dict[str, Any],
    *,
    source: str = "",
    lines: dict[tuple[str, ...], int] | None = None,
    base_dir: str = ".",
) -> Scenario:
    """Validate a plain mapping (from YAML or the command line) into a :class:`Scenario`."""
    lines = lines or {}
    data = copy.deepcopy(data)
    for key, value in data.items():
        where = {"file": source or None, "line": lines.get((key,)), "field": key}
        if key not in KEYS:
            raise InputError(f"unknown key {key!r}; valid keys: {', '.join(KEYS)}", **where)
        types, _help = KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise InputError(f"{key!r} must be {want}, got {value!r}", **where)
    if "trace" not in data:
        raise InputError("missing required key 'trace'", file=source or None, field="trace")
    preset = data.get("preset", "clean")
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}",
                         file=source or None, line=lines.get(("preset",)), field="preset")
    if data.get("comm", "allreduce") not in ("allreduce", "none"):
        raise InputError("comm must be 'allreduce' or 'none'", file=source or None,
                         line=lines.get(("comm",)), field="comm")
    if data.get("gpu_type") not in (None, "A100", "T4"):
        raise InputError(f"unknown GPU type {data['gpu_type']!r}; valid: A100, T4",
                         file=source or None, line=lines.get(("gpu_type",)), field="gpu_type")
    if float(data.get("slot_s", 0)) < 0:
        raise InputError("slot_s must be >= 0", file=source or None,
                         line=lines.get(("slot_s",)), field="slot_s")
    trace = data["trace"]
    if isinstance(trace, dict):
        if set(trace) != {"generate"} or not isinstance(trace["generate"], dict):
            raise InputError("trace mapping must be {generate: {...}}", file=source or None,
                             line=lines.get(("trace",)), field="trace")
        bad = sorted(set(trace["generate"]) - GENERATE_KEYS)
        if bad:
            raise InputError(
                f"unknown generator key {bad[0]!r}; valid: {', '.join(sorted(GENERATE_KEYS))}",
                file=source or None, line=lines.get(("trace", "generate", bad[0])),
                field=f"trace.generate.{bad[0]}")
    _check_real(data.get("real") or {}, source, lines)
    # policy name and params are validated against the registry
    from sim import registry

    pol = data.get("policy", "edf")
    cls = registry.get(pol, source=source or None)
    cls.make_params(data.get("params"), source=source)
    return Scenario(
        name=data.get("name", "run"),
        trace=trace,
        cluster=data.get("cluster", "n16g8"),
        gpu_type=data.get("gpu_type"),
        policy=pol,
        params=dict(data.get("params") or {}),
        slot_s=float(data.get("slot_s", 0.0)),
        preset=preset,
        seed=int(data.get("seed", 0)),
        comm=data.get("comm", "allreduce"),
        horizon_s=data.get("horizon_s"),
        real=dict(data.get("real") or {}),
        source=source,
        base_dir=base_dir,
    )


def _check_real(real: dict[str, Any], source: str, lines: dict[tuple[str, ...], int]) -> None:
    for key, value in real.items():
        where = {"file": source or None, "line": lines.get(("real", key)),
                 "field": f"real.{key}"}
        if key not in REAL_KEYS:
            raise InputError(f"unknown real-mode key {key!r}; valid: {', '.join(REAL_KEYS)}",
                             **where)
        types, _default, _help = REAL_KEYS[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise InputError(f"real.{key} must be {want}, got {value!r}", **where)
        if types != (bool,) and value <= 0:
            raise InputError(f"real.{key} must be > 0, got {value!r}", **where)
