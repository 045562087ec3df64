"""The policy contract.

A policy is an object with ``decide(snapshot) -> Decision``. It may keep private
bookkeeping between calls (queues, plans), but it never touches SimPy, Dask,
files or the wall clock: time comes from ``snapshot.now_s``.

Each policy module defines a class with:

* ``NAME``: registry name (as in the ElasticFlow artifact where one exists);
* ``SUMMARY``: one line for ``clustersim policies``;
* ``Params``: a frozen dataclass whose fields carry ``metadata={"help": ...}``;
* ``WORK``: what finishes a job, ``"iterations"`` or ``"duration"``;
* ``ARTIFACT``: the :class:`ArtifactTraits` the ``elasticflow-artifact`` preset
  applies for this policy (how the artifact schedules its instants and charges
  overheads for it);
* ``PREEMPT``: what taking a job's GPUs away means, ``"restart"`` (the job's
  process ends; it restarts from its checkpoint) or ``"suspend"`` (the process is
  kept on its node, as in Gandiva's time slicing; resuming on the GPUs it left
  costs only the warm overhead). Clean mode only; the preset has its own rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from sim.errors import InputError
from sim.model.decision import Decision
from sim.model.snapshot import Snapshot


@dataclass(frozen=True)
class ArtifactTraits:
    """How the ElasticFlow artifact runs a policy (applied only under its preset).

    Attributes:
        instants: ``"coalesce"`` (the slot-coalescing rule of POLICIES.md 1.4),
            ``"rounds"`` (fixed rounds of the slot length from the first arrival), or
            ``"exact"`` (every queued event is its own instant).
        overhead: who pays the synthetic restart overhead of POLICIES.md 1.6:
            ``"every-instant"`` (every job holding GPUs, at every instant, with the
            placement cache), ``"every-instant-uncached"``, ``"while-arrivals-uncached"``
            (Gandiva: every job, waiting ones too, while trace jobs remain to arrive; a
            waiting job pays when it next runs), ``"on-start"`` (jobs whose
            GPU set changed from none), or ``"none"``.
        overhead_extends_end: whether a charged overhead is added to the job's
            declared end (EF/EDF do; Tiresias/Gandiva only lose progress).
        detect_done: whether an instant that finds a job's work done finishes it
            then (EF/EDF's early-finish rule, Gandiva), instead of waiting for the
            end the policy declared (Tiresias, Themis).
        judge: ``"end"`` (deadline judged on the logged end) or ``"real_end"``
            (on the policy's exact finish estimate; ef-accessctrl).
        queued_ends_for_all: the artifact keeps an end event queued for every
            runnable job, running or not (EF, EDF); it matters to the coalescing
            rule's "at least two queued events" test.
        idle_step_s: when nothing is queued but jobs remain, advance by this much.
        wake_rule: ``"replace"`` (a decision's wake-up replaces the previous one) or
            ``"if-first"`` (EF: queued only if earlier than every queued event, then
            never cancelled).
        clip_at_real_end: progress stops at the declared real end (EF, EDF: the
            artifact's ``run_all_jobs``), so overheads leave a remainder to re-plan.
        all_strict: the artifact's trace converter marks every job strict (Chronus,
            POLICIES.md 10.3): best-effort jobs are loaded as deadline jobs with the
            deadline written in the trace, and count in the deadline ratio.
    """

    instants: str = "coalesce"
    overhead: str = "none"
    overhead_extends_end: bool = False
    detect_done: bool = True
    judge: str = "end"
    queued_ends_for_all: bool = False
    idle_step_s: float = 10.0
    wake_rule: str = "replace"
    clip_at_real_end: bool = False
    all_strict: bool = False


@dataclass(frozen=True)
class NoParams:
    """This policy has no parameters."""


class Policy:
    """Base class: stores params and the preset flag; subclasses implement decide()."""

    NAME: ClassVar[str] = ""
    SUMMARY: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    WORK: ClassVar[str] = "iterations"
    ARTIFACT: ClassVar[ArtifactTraits] = ArtifactTraits()
    PREEMPT: ClassVar[str] = "restart"

    def __init__(self, params: Any = None, *, artifact: bool = False) -> None:
        self.params = params if params is not None else self.Params()
        self.artifact = artifact

    def decide(self, snap: Snapshot) -> Decision:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def make_params(cls, values: dict[str, Any] | None, *, source: str = "") -> Any:
        """Build ``Params`` from a plain dict, naming unknown keys and bad types."""
        values = dict(values or {})
        fields = {f.name: f for f in dataclasses.fields(cls.Params)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise InputError(
                f"unknown parameter(s) {', '.join(unknown)} for policy {cls.NAME!r}; "
                f"valid: {', '.join(fields) or '(none)'}",
                file=source or None, field=unknown[0],
            )
        out = {}
        for name, value in values.items():
            default = fields[name].default
            if default is not dataclasses.MISSING and default is not None:
                want = type(default)
                try:
                    if want is bool and isinstance(value, str):
                        value = value.lower() in ("1", "true", "yes", "on")
                    elif want is not bool:
                        value = want(value)
                except (TypeError, ValueError):
                    raise InputError(
                        f"parameter {name!r} of {cls.NAME!r} must be {want.__name__}, got {value!r}",
                        file=source or None, field=name,
                    ) from None
            out[name] = value
        return cls.Params(**out)

    @classmethod
    def describe_params(cls) -> list[tuple[str, str, Any, str]]:
        """(name, type, default, help) for every parameter."""
        rows = []
        for f in dataclasses.fields(cls.Params):
            rows.append((f.name, getattr(f.type, "__name__", str(f.type)), f.default,
                         f.metadata.get("help", "")))
        return rows
