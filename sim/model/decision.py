"""What a policy returns: a decision as data.

A :class:`Decision` is the complete desired state for the jobs in the snapshot
(every runnable job absent from ``alloc`` holds no GPUs afterwards) plus
per-job declarations and an optional wake-up. The Controller checks it for
feasibility and diffs it against the snapshot into actions for the executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Decision:
    """A policy's answer for one scheduling instant.

    Attributes:
        alloc: job id -> concrete global GPU ids it should hold from now on.
            Runnable jobs not listed hold nothing.
        decline: NEW jobs that are refused (they never run and count as missed).
            NEW jobs not declined are admitted.
        end_s: job id -> planned end the policy declares (its own prediction, e.g.
            ElasticFlow's slot-aligned plan end). Under ``completion="declared"``
            the executor completes the job at that time; otherwise informational.
        end_event_s: job id -> when the executor should process that completion
            (defaults to ``end_s``; Tiresias processes it no earlier than a slot later).
        real_end_s: job id -> the policy's exact finish estimate; under the
            artifact preset some policies judge deadlines by it (ef-accessctrl).
        wake_s: ask to be called again at this time even if nothing happens.
        wakes: further wake-up times (under the default rule only the earliest
            matters; the ``ef`` artifact preset queues each of them).
        vacated_s: times the policy's own bookkeeping moved end events away from
            during this decision (the artifact's event queue drops wake-ups there
            when nothing else remains; ignored by the default wake rule).
        dispatch: (task id, worker id) pairs to start now (task workloads).
        install: (library, worker id) pairs: start a library on a worker.
        priorities: task id -> new priority for tasks still in the manager's queue.
        notes: free-text reasons, copied to the event log.
    """

    alloc: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    decline: tuple[str, ...] = ()
    end_s: Mapping[str, float] = field(default_factory=dict)
    end_event_s: Mapping[str, float] = field(default_factory=dict)
    real_end_s: Mapping[str, float] = field(default_factory=dict)
    wake_s: float | None = None
    wakes: tuple[float, ...] = ()
    vacated_s: tuple[float, ...] = ()
    dispatch: tuple[tuple[str, str], ...] = ()
    install: tuple[tuple[str, str], ...] = ()
    priorities: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
