"""Restart / scaling overhead models (pluggable).

An overhead is time a job holds its GPUs without making progress after its
allocation changes. Two models ship:

* :class:`ArtifactOverhead` — the ElasticFlow artifact's synthetic formula and
  charging rules (POLICIES.md 1.6), including its placement cache and its
  "restart rounds" quirk (every S-th scheduling instant, the slot length in
  seconds reused as a count). Used by the ``elasticflow-artifact`` preset.
* :class:`ChangeOverhead` — the clean default: a job pays only when its GPU set
  changes: a (re)start pays the restart cost, a rescale or migration of a running
  job pays the scaling cost. The costs use the same formula so numbers stay
  comparable. Under a suspending policy a resume on the GPUs the job left pays
  the warm (cached) cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def artifact_overhead_s(gpus: int, *, restart: bool, cached: bool, cluster_gpus: int) -> float:
    """POLICIES.md 1.6 ``overhead(g, restart, cached)`` in seconds."""
    big = cluster_gpus >= 256
    base = 7.0 if big else 2.0
    if cached:
        return base
    o = base
    if restart:
        o += 27.0 + (20.0 if big else 0.0)
    return o + 2.0 * (math.log2(gpus) + 1.0)


@dataclass
class ChargeContext:
    """What an overhead model may look at for one instant."""

    instant: int  # scheduling instants counted so far (artifact's schedule_count)
    slot_s: float
    cluster_gpus: int
    more_arrivals: bool = True  # trace jobs still to arrive after this instant
    waiting: tuple[tuple[str, int], ...] = ()  # (job id, requested GPUs) of jobs without GPUs


class OverheadModel:
    """Decides the overhead each job pays after a decision has been applied.

    ``charge(ctx, changes)`` gets, for every job holding GPUs after the decision,
    ``(job_id, old_gpus, new_gpus)`` in placement order, and returns job id ->
    seconds of overhead to charge.
    """

    extends_end: bool = False
    carry: bool = True  # unconsumed overhead carries into the next interval
    keep_idle: bool = False  # a job without GPUs keeps its pending overhead until it runs
    needs_all: bool = False  # charge() must see every job holding GPUs, not just changed ones

    def charge(
        self, ctx: ChargeContext, changes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    ) -> dict[str, float]:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class NoOverhead(OverheadModel):
    def charge(self, ctx, changes):
        return {}


@dataclass
class ChangeOverhead(OverheadModel):
    """Clean default: pay on (re)start and on a change of GPU set; nothing otherwise.

    ``suspend``: the policy suspends jobs instead of ending them (``Policy.PREEMPT``),
    so a job resuming on exactly the GPUs it last held finds its process there and
    pays the warm cost (``cached``: the base term alone, the artifact's cost for a
    placement it has seen). Anywhere else it pays a full restart. Without this a
    time-slicing quantum shorter than the restart cost (62 s for 8 GPUs on a
    512-GPU cluster against Gandiva's 60 s) lets no suspended job progress.
    """

    suspend: bool = False
    _last: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def charge(self, ctx, changes):
        out = {}
        last = self._last
        for jid, old, new in changes:
            if old == new:
                continue
            restart = not old
            warm = self.suspend and restart and last.get(jid) == new
            out[jid] = artifact_overhead_s(len(new), restart=restart, cached=warm,
                                           cluster_gpus=ctx.cluster_gpus)
            if self.suspend:
                last[jid] = new
        return out


@dataclass
class ArtifactOverhead(OverheadModel):
    """The artifact's rules; ``rule`` is an :class:`~sim.policies.base.ArtifactTraits` overhead."""

    rule: str = "every-instant"
    extends_end: bool = False
    carry: bool = False
    needs_all: bool = True
    _seen: set[frozenset[int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Gandiva charges waiting jobs too; they pay when they next run
        self.keep_idle = self.rule == "while-arrivals-uncached"

    def restart_round(self, ctx: ChargeContext) -> bool:
        s = int(ctx.slot_s)
        return s > 0 and ctx.instant > 0 and ctx.instant % s == 0

    def charge(self, ctx, changes):
        restart = self.restart_round(ctx)
        if self.rule == "none":
            return {}
        out: dict[str, float] = {}
        if self.rule == "every-instant":
            # The logger checks each placed job's GPU set against every set seen
            # since the last restart round (POLICIES.md 1.6), then remembers it.
            # A restart round empties the cache only after that check (the
            # artifact's logger sets in_cache before the scheduler resets its
            # cache), and a cached job pays the base cost even in a restart round.
            for jid, _old, new in changes:
                key = frozenset(new)
                cached = key in self._seen
                self._seen.add(key)
                out[jid] = artifact_overhead_s(len(new), restart=restart, cached=cached,
                                               cluster_gpus=ctx.cluster_gpus)
            if restart:
                self._seen.clear()
        elif self.rule == "every-instant-uncached":
            for jid, _old, new in changes:
                out[jid] = artifact_overhead_s(len(new), restart=restart, cached=False,
                                               cluster_gpus=ctx.cluster_gpus)
        elif self.rule == "while-arrivals-uncached":
            # Gandiva (POLICIES.md 1.6, 6.3 step 5): while trace jobs remain to arrive,
            # every job, running or waiting, gets overhead(g, restart) set for its next
            # running interval. After the last arrival nothing new is charged, but a
            # job that was waiting still owes what it was last given.
            if ctx.more_arrivals:
                for jid, _old, new in changes:
                    out[jid] = artifact_overhead_s(len(new), restart=restart, cached=False,
                                                   cluster_gpus=ctx.cluster_gpus)
                for jid, g in ctx.waiting:
                    out[jid] = artifact_overhead_s(g, restart=restart, cached=False,
                                                   cluster_gpus=ctx.cluster_gpus)
        elif self.rule == "on-start":
            for jid, old, new in changes:
                if not old or restart:
                    out[jid] = artifact_overhead_s(len(new), restart=restart, cached=False,
                                                   cluster_gpus=ctx.cluster_gpus)
        else:
            raise ValueError(f"unknown overhead rule {self.rule!r}")
        return out


@dataclass
class MeasuredOverhead(OverheadModel):
    """Constant costs measured in a real run (``clustersim fidelity`` calibration).

    A job's first start pays ``start_s``, a later (re)start ``resume_s``, and a
    change of the GPU set of a running job (rescale, migration) ``resize_s``.
    """

    start_s: float = 0.0
    resume_s: float = 0.0
    resize_s: float = 0.0
    _started: set[str] = field(default_factory=set)

    def charge(self, ctx, changes):
        out = {}
        for jid, old, new in changes:
            if old == new:
                continue
            if old:
                out[jid] = self.resize_s
            else:
                out[jid] = self.resume_s if jid in self._started else self.start_s
                self._started.add(jid)
        return out
