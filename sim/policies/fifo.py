"""FIFO: jobs run at their requested size in arrival order; the head of the queue blocks.

The classic baseline (no paper). A job runs once every job that arrived before it
is running and enough GPUs are free; running jobs are never preempted or resized.
With ``backfill: true`` a job that fits may jump a blocked head (no reservation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.model.decision import Decision
from sim.model.snapshot import Snapshot
from sim.policies.base import ArtifactTraits, Policy
from sim.policies.common import predicted_ends, sticky_place
from sim.registry import register


@dataclass(frozen=True)
class FifoParams:
    backfill: bool = field(default=False, metadata={"help": "let later jobs that fit jump a "
                                                   "blocked head of the queue"})


@register
class Fifo(Policy):
    NAME = "fifo"
    SUMMARY = "First come, first served at the requested GPU count (optional backfill)"
    Params = FifoParams
    WORK = "iterations"
    ARTIFACT = ArtifactTraits(instants="coalesce", overhead="none", detect_done=True)

    def decide(self, snap: Snapshot) -> Decision:
        free = snap.cluster.num_gpus
        want: dict[str, int] = {}
        for j in snap.jobs:
            if j.gpus:
                want[j.job_id] = j.num_gpus
                free -= j.num_gpus
        blocked = False
        queue = sorted((j for j in snap.jobs if not j.gpus),
                       key=lambda j: (j.spec.submit_s, j.spec.idx))
        for j in queue:
            n = min(j.spec.num_gpu, snap.cluster.num_gpus)
            if n <= free and not (blocked and not self.params.backfill):
                want[j.job_id] = n
                free -= n
            else:
                blocked = True
        alloc = sticky_place(snap, want)
        return Decision(alloc=alloc, end_s=predicted_ends(snap, alloc))
