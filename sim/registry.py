"""Policy registry: name -> policy class.

Built-in policies register themselves on import of :mod:`sim.policies`;
third-party packages add theirs through the ``clustersim.policies`` entry-point
group (value ``"module:Class"``). Duplicate names are refused; unknown names
raise an :class:`~sim.errors.InputError` that lists the valid ones.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from sim.errors import InputError
from sim.policies.base import Policy

ENTRY_POINT_GROUP = "clustersim.policies"

_REGISTRY: dict[str, type[Policy]] = {}
_loaded = False


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: add ``cls`` under ``cls.NAME``; a second class with the same name raises."""
    if not cls.NAME:
        raise ValueError(f"{cls.__name__} has no NAME")
    existing = _REGISTRY.get(cls.NAME)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"policy name {cls.NAME!r} is already registered by "
            f"{existing.__module__}.{existing.__qualname__}"
        )
    _REGISTRY[cls.NAME] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    from sim.policies import BUILTIN

    for mod in BUILTIN:
        importlib.import_module(mod)

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        register(ep.load())


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get(name: str, *, source: str | None = None) -> type[Policy]:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(
            f"unknown policy {name!r}; valid policies: {', '.join(sorted(_REGISTRY))}",
            file=source, field="policy",
        ) from None


def create(name: str, params: dict[str, Any] | None = None, *, artifact: bool = False,
           source: str | None = None) -> Policy:
    cls = get(name, source=source)
    return cls(cls.make_params(params, source=source or ""), artifact=artifact)
