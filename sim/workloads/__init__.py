"""Workload families built on the task model: each turns a scenario section into a
:class:`~sim.model.tasks.TaskWorkload` and runs it on :class:`~sim.engine.tasks.TaskExecutor`.

A family's scenario file has one top-level section named after it (``threeways:``,
``dragon:``); :mod:`sim.kinds` recognises, runs and stores each family.
:func:`build` turns a mapping into a frozen dataclass, naming the file, line and key
of the first bad value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from sim.errors import InputError

#: section name -> module implementing the family
FAMILIES = {"threeways": "sim.workloads.threeways", "dragon": "sim.workloads.dragon"}

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Where:
    """Where a mapping came from, to name the bad key in an error."""

    file: str | None
    lines: Mapping[tuple[str, ...], int]
    prefix: tuple[str, ...] = ()

    def at(self, *key: str) -> dict[str, Any]:
        full = (*self.prefix, *key)
        line = None
        for n in range(len(full), 0, -1):  # nearest line known
            line = self.lines.get(full[:n])
            if line is not None:
                break
        return {"file": self.file, "line": line, "field": ".".join(full)}

    def sub(self, *key: str) -> Where:
        return Where(self.file, self.lines, (*self.prefix, *key))

    def error(self, msg: str, *key: str) -> InputError:
        return InputError(msg, **self.at(*key))


def build(cls: type[T], data: Any, where: Where, *, skip: tuple[str, ...] = ()) -> T:
    """A ``cls`` dataclass from ``data``: unknown keys and wrong types are InputErrors.

    Numbers may be given for float fields; a number or a list of numbers for
    ``tuple[float, ...]`` fields. Fields in ``skip`` are left to the caller.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise where.error(f"must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise where.error(f"unknown key {unknown[0]!r}; valid: {', '.join(sorted(fields))}",
                          unknown[0])
    out = {k: _coerce(hints[k], v, where, k) for k, v in data.items() if k not in skip}
    try:
        return cls(**out)
    except InputError as e:
        raise where.error(e.message, e.field or "") from None
    except (TypeError, ValueError) as e:
        raise where.error(str(e)) from None


def _coerce(hint: Any, v: Any, where: Where, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if v is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], v, where, key)
    if hint is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise where.error(f"must be a number, got {v!r}", key)
        return float(v)
    if hint is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise where.error(f"must be an integer, got {v!r}", key)
        return v
    if hint is bool:
        if not isinstance(v, bool):
            raise where.error(f"must be true or false, got {v!r}", key)
        return v
    if hint is str:
        if not isinstance(v, str):
            raise where.error(f"must be a string, got {v!r}", key)
        return v
    if origin is tuple and args[-1] is Ellipsis and args[0] is float:
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise where.error("must not be empty", key)
        return tuple(_coerce(float, x, where, key) for x in vals)
    return v
