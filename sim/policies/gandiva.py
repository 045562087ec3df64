"""Gandiva (``gandiva``): per-size node sets, grow/shrink, coarse time slicing.

Jobs run at their requested GPU count inside *node sets*: groups of whole nodes
reserved for one job size, each with a number of job slots. A node set holding
more jobs than slots time-slices them. See POLICIES.md section 6.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from sim.model.decision import Decision
from sim.model.snapshot import JobStatus, Snapshot
from sim.policies.base import ArtifactTraits, Policy
from sim.registry import register

#: Job sizes the artifact's Gandiva placement knows (others abort the run there).
SIZE_CLASSES: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 88, 128, 256)


@dataclass(frozen=True)
class GandivaParams:
    quantum_s: float = field(
        default=60.0,
        metadata={"help": "time-slicing quantum: an over-full node set rotates its running "
                          "jobs to the back at instants t with t % quantum_s == 0 (artifact: 60)"})


@dataclass(eq=False)
class NodeSet:
    """Whole nodes reserved for jobs of one size ``g``.

    ``capacity`` job slots (``floor(len(nodes) * gpn / g)``); ``jobs`` in list
    order, the first ``capacity`` run; ``slot_of`` keeps a running job on the same
    GPUs from one instant to the next; ``inserted`` counts every job ever put in
    (the artifact's utilisation, see :class:`Gandiva`).
    """

    g: int
    nodes: tuple[int, ...]
    capacity: int
    gpus: tuple[int, ...]
    jobs: list[str] = field(default_factory=list)
    slot_of: dict[str, int] = field(default_factory=dict)
    inserted: int = 0

    @property
    def util(self) -> int:
        return len(self.jobs)


@register
class Gandiva(Policy):
    """Gandiva (Xiao et al., "Gandiva: Introspective Cluster Scheduling for Deep
    Learning", OSDI 2018) as simplified by the ElasticFlow artifact
    (POLICIES.md section 6).

    Each instant: (2) drop finished jobs, rotate the running jobs of over-full node
    sets to the back when ``t % quantum_s == 0``, free empty node sets; (3) place
    arrivals: (a) the least-used set of the class if ``util + 1 < capacity``, (b) a
    new set from free nodes, (c) the least-used set even if full (time slicing),
    (d) wait; (4) if a set was freed, retry waiting jobs; (1) grow/shrink every size
    class towards ``min(floor(demand_g / sum demand * G), demand_g)`` GPUs, creating
    node sets from free nodes or dissolving the least-used ones and re-inserting
    their jobs into the least-used remaining sets. The first ``capacity`` jobs of
    every set hold GPUs.

    Step (1) comes last on purpose: the artifact runs it at the start of the *next*
    instant, before it credits the interval's progress to the first ``capacity``
    jobs of every set. Node sets do not change between instants, so running it at
    the end of this one is the same step, and the jobs given GPUs are exactly the
    ones the artifact credits (a job moved behind a full set at that step gets no
    progress for the interval, as in the artifact).

    Deviations from the paper: no GPU packing (the artifact's memory utilisation
    is 1.0 for every model), no profiling-driven migration, no introspection; the
    quantum is 60 s on coarse instants instead of sub-minute suspend/resume.

    Artifact behaviour (``elasticflow-artifact`` preset). Items marked
    *reconstructed* were first inferred from the artifact's shipped Figure 10 log;
    all are now checked against ``cluster.py`` (``gandiva_placement``,
    ``gandiva_node_set_expand``/``_shrink``/``_adjust``, ``time_slicing_execute``):

    * A node set's utilisation (for sorting the class list and for rule (a)) is
      the number of jobs put in it, never decremented when a job leaves
      (*reconstructed*; ``time_slicing_execute`` removes finished jobs without
      touching ``util``); a grow that re-spreads the class resets it (below).
    * Grow (``gandiva_node_set_expand``): each of the ``ceil(diff / g)`` attempts
      opens a set if enough nodes are free (a failed attempt does not stop the
      loop). Whether the class's jobs are then re-spread hangs on a loop counter
      the artifact reuses for its inner node loop: it ends at ``nodes_per_set - 1``
      when the last attempt opened a set and at the attempt count when it failed.
      So classes whose sets span several nodes (``g > gpn``) always re-spread,
      one-node classes only when the last attempt found no free node; otherwise
      the new sets stay empty and are freed at the next instant (the
      *reconstructed* "no job moves" of Figure 10). Re-spreading empties every
      set of the class (utilisation 0) and puts the jobs, set by set in list
      order, one by one into the first set of the list, re-sorted (stably, in
      place) after each insertion.
    * Placement (``gandiva_placement``) pops the least-used set to test rule (a)
      and, if refused, appends it back unsorted; rule (c) then pops the new front,
      i.e. the *second* least-used set when there are several. A set that takes a
      job in (a) or (c) is appended before the list is re-sorted, so it goes
      behind the sets it now ties with.
    * No end times are declared: a job's completion is noticed at the first
      instant after its work is done (arrival instants while arrivals remain,
      then every ``S``), logging the exact crossing time.
    * Wake-ups every ``S`` once the trace's arrivals are consumed. That needs
      ``snapshot.more_arrivals``; on an engine without the field the policy wakes
      every ``S`` whenever jobs remain, which adds instants while arrivals remain.
    * Retrying waiting jobs skips the job after each one that starts (the
      artifact removes from the list it iterates).
    * Overheads (engine): every job in a node set, waiting ones included, gets
      ``overhead(g, restart)`` at every instant while arrivals remain; a waiting
      job pays it when it next runs. (Finer artifact detail the engine rule does
      not draw: jobs waiting outside any node set are not charged, and a job that
      started from the pending list has its overhead cleared at every instant,
      so after the last arrival neither pays a stale overhead when it runs. The
      toy, Figure 10 and Figure 8(a) results match without drawing it.)
    * The artifact logs ``start_time`` when a job enters a node set; the executor
      logs when it first holds GPUs (later for a job placed by (c)).

    Validation: with the engine's Gandiva overhead rule and ``more_arrivals`` the
    toy trace and all 100 Figure 10 rows match the artifact, and Figure 8(a)
    (``n16g4``, ``S = 60``, T4, where 8- and 16-GPU jobs span several nodes)
    gives the artifact's 0.0923 (18 of 195).

    Clean mode (deviations from the artifact):

    * utilisation is the current job count;
    * grow and shrink count whole node sets: ``ceil(missing GPUs / set GPUs)``
      sets are added, and only sets the class can spare above its target are
      removed (the artifact's one set per ``g`` missing GPUs opened, say, 12
      one-node sets for 12 waiting 1-GPU jobs and shrank them away at the next
      instant, every instant);
    * instead of re-spreading a class at every grow, each instant evens every
      class out by moving waiting jobs from over-full sets to the emptiest ones,
      never a running job, so an even class moves nothing (:meth:`_rebalance`;
      re-spreading moved about 60 jobs and copied 32 checkpoints per instant on
      ITP cluster03);
    * waiting jobs are all retried; wake-ups only at the next quantum boundary
      while some node set is over-full (completions are exact);
    * time slicing suspends jobs (``PREEMPT = "suspend"``): a job resuming on the
      GPUs it left pays the warm overhead, not a restart.
    """

    NAME = "gandiva"
    SUMMARY = "Gandiva: per-size node sets, grow/shrink, time slicing (artifact version)"
    Params = GandivaParams
    WORK = "duration"
    PREEMPT = "suspend"  # time slicing keeps the process on its node (clean overheads)
    ARTIFACT = ArtifactTraits(instants="coalesce", overhead="while-arrivals-uncached",
                              overhead_extends_end=False, detect_done=True)

    def __init__(self, params: GandivaParams | None = None, *, artifact: bool = False) -> None:
        super().__init__(params, artifact=artifact)
        self.free_nodes: list[int] | None = None  # built at the first call
        self.classes: dict[int, list[NodeSet]] = {}
        self.set_of: dict[str, NodeSet] = {}
        self.size: dict[str, int] = {}
        self.pending: list[str] = []

    # ------------------------------------------------------------------ decide
    def decide(self, snap: Snapshot) -> Decision:
        cluster = snap.cluster
        if self.free_nodes is None:
            self.free_nodes = list(range(cluster.num_nodes))
        now = snap.now_s
        present = {j.job_id for j in snap.jobs}

        released = self._time_slice(now, present)
        for j in snap.arrivals:
            g = j.spec.num_gpu
            if g not in SIZE_CLASSES:
                raise ValueError(f"gandiva: job {j.job_id!r} asks for {g} GPUs; node-set "
                                 f"classes are {list(SIZE_CLASSES)}")
            self.size[j.job_id] = g
            if not self._place(j.job_id, snap):
                self.pending.append(j.job_id)
        if released:
            self._retry_pending(snap)
        self._grow_shrink(snap)  # the next instant's step (1); see the class docstring

        alloc = self._alloc()
        wake = None
        if self.set_of or self.pending:
            if self.artifact:
                # every S once the arrivals are consumed; without the snapshot field
                # (older engines) we cannot tell, and wake every S regardless
                if not getattr(snap, "more_arrivals", False) and snap.slot_s > 0:
                    wake = now + snap.slot_s
            elif any(ns.util > ns.capacity for lst in self.classes.values() for ns in lst):
                q = self.params.quantum_s
                wake = (math.floor(now / q + 1e-9) + 1) * q
        return Decision(alloc=alloc, wake_s=wake)

    # ------------------------------------------------------------ steps
    def _grow_shrink(self, snap: Snapshot) -> None:
        """Step (1): move each class towards ``min(floor(demand/total * G), demand)`` GPUs."""
        gpn = snap.cluster.gpus_per_node
        demand = {g: sum(ns.util for ns in lst) * g for g, lst in self.classes.items()}
        demand = {g: d for g, d in demand.items() if d > 0}
        total = sum(demand.values())
        for g in sorted(demand):
            lst = self.classes[g]
            plan = math.floor(demand[g] / total * snap.cluster.num_gpus)
            target = min(plan, demand[g])
            diff = target - sum(len(ns.nodes) for ns in lst) * gpn
            need = math.ceil(g / gpn)  # nodes per set
            if diff > 0:
                if self.artifact:
                    self._grow_artifact(g, lst, math.ceil(diff / g), need, snap)
                    continue
                # [CLEAN] in whole sets: enough to reach the target (the artifact
                # counts one set per g GPUs missing, i.e. gpn / g times too many sets
                # for small jobs, and shrinks them away again at the next instant)
                for _ in range(math.ceil(diff / (need * gpn))):
                    if len(self.free_nodes) < need:
                        break
                    lst.append(self._new_set(g, snap))
            elif diff < 0:
                if self.artifact:
                    k = min(math.ceil(-diff / g), len(lst) - 1)
                else:  # only sets the class can spare without going below its target
                    k = min(-diff // (need * gpn), len(lst) - 1)
                gone, self.classes[g] = lst[:k], lst[k:]
                for ns in gone:
                    self.free_nodes.extend(ns.nodes)
                self._insert_many(g, [jid for ns in gone for jid in ns.jobs])
        if not self.artifact:
            for g in sorted(self.classes):
                self._rebalance(g, snap)

    def _grow_artifact(self, g: int, lst: list[NodeSet], want: int, need: int,
                       snap: Snapshot) -> None:
        """[ARTIFACT] ``gandiva_node_set_expand``: ``want`` new sets, jobs re-spread or not.

        Each of the ``want`` attempts opens a set if ``need`` nodes are free. The jobs
        are re-spread only if a loop counter the artifact reuses for its inner
        node loop ends positive: it ends at ``need - 1`` when the last attempt opened
        a set, at ``want`` when it failed. So multi-node classes always re-spread,
        single-node classes only when the last attempt found no free node.
        Re-spreading resets the utilisation of every set holding jobs and puts the
        jobs (set by set, in list order) one by one into the first set of the list,
        which is re-sorted (stably, in place) after each insertion, so the jobs
        alternate between the sets.
        """
        counter = 0
        for k in range(1, want + 1):
            if len(self.free_nodes) >= need:
                lst.append(self._new_set(g, snap))
                counter = need - 1
            else:
                counter = k
        if counter <= 0:
            return  # the new sets stay empty and are freed at the next instant
        moved: list[str] = []
        for ns in lst:
            if ns.jobs:
                moved.extend(ns.jobs)
                ns.jobs.clear()  # slots are kept: a job back in its set keeps its GPUs
                ns.inserted = 0
        self._insert_many(g, moved)

    def _rebalance(self, g: int, snap: Snapshot) -> None:
        """[CLEAN] Even out class ``g`` (every instant, after step (1)), moving few jobs.

        While the fullest set is over-full (holds waiting jobs) and holds at least
        two jobs more than the emptiest, one of its waiting jobs moves to the
        emptiest set: one that never started (``NEW``/``WAITING`` in ``snap``: it has
        no checkpoint to copy) if there is one, else the last in its list. Running jobs never move, so
        a grow migrates nothing that is running, and a checkpoint is copied only for
        a suspended job that later gets GPUs in its new set. Ties go to the first
        set in list order. This fills the sets a grow opens and the slots that
        completions free, and leaves loads as even as re-spreading the whole class
        would, wherever waiting jobs allow; an even class moves nothing.
        """
        lst = self.classes[g]
        if len(lst) < 2:
            return
        jobs = snap.index()
        fresh = (JobStatus.NEW, JobStatus.WAITING)
        while True:
            src = max(lst, key=lambda ns: ns.util)
            dst = min(lst, key=lambda ns: ns.util)
            if src.util <= src.capacity or src.util - dst.util <= 1:
                break
            waiting = src.jobs[src.capacity:]
            jid = next((j for j in reversed(waiting) if jobs[j].status in fresh), waiting[-1])
            self._remove(src, jid)
            self._put(dst, jid)
        self._sort(g)

    def _time_slice(self, now: float, present: set[str]) -> bool:
        """Step (2): drop finished jobs, rotate over-full sets, free empty sets."""
        released = False
        q = self.params.quantum_s
        rotate = q > 0 and abs(now / q - round(now / q)) < 1e-9
        for g in sorted(self.classes):
            keep: list[NodeSet] = []
            for ns in self.classes[g]:
                ran = ns.jobs[: ns.capacity]
                for jid in [jid for jid in ns.jobs if jid not in present]:
                    self._remove(ns, jid)
                    del self.set_of[jid], self.size[jid]
                if rotate and ns.util > ns.capacity:
                    moved = [jid for jid in ran if jid in present]
                    ns.jobs = [jid for jid in ns.jobs if jid not in moved] + moved
                if ns.jobs:
                    keep.append(ns)
                else:
                    self.free_nodes.extend(ns.nodes)
                    released = True
            self.classes[g] = keep
            self._sort(g)
        return released

    def _place(self, jid: str, snap: Snapshot) -> bool:
        """Step (3), ``gandiva_placement``: (a) room, (b) new set, (c) time-slice, else False."""
        g = self.size[jid]
        lst = self.classes.setdefault(g, [])
        if lst and self._load(lst[0]) + 1 < lst[0].capacity:
            self._insert(lst[0], jid, to_back=self.artifact)
            return True
        if lst and self.artifact:
            # [ARTIFACT] the refused set was popped from the front and goes to the back
            # unsorted, so (c) below takes the *next* least-used set when there is one
            lst.append(lst.pop(0))
        if len(self.free_nodes) >= math.ceil(g / snap.cluster.gpus_per_node):
            lst.append(self._new_set(g, snap))
            self._insert(lst[-1], jid)
            return True
        if lst:
            self._insert(lst[0], jid, to_back=self.artifact)
            return True
        return False

    def _retry_pending(self, snap: Snapshot) -> None:
        """Step (4): retry waiting jobs in order."""
        i = 0
        while i < len(self.pending):
            if self._place(self.pending[i], snap):
                del self.pending[i]
                if self.artifact:
                    i += 1  # [ARTIFACT] the list shrinks under the loop: skip the next job
            else:
                i += 1

    def _alloc(self) -> dict[str, tuple[int, ...]]:
        """The first ``capacity`` jobs of each set hold GPUs; they keep their slot."""
        alloc: dict[str, tuple[int, ...]] = {}
        for g in sorted(self.classes):
            for ns in self.classes[g]:
                run = ns.jobs[: ns.capacity]
                for jid in [jid for jid in ns.slot_of if jid not in run]:
                    del ns.slot_of[jid]
                used = set(ns.slot_of.values())
                free = (s for s in range(ns.capacity) if s not in used)
                for jid in run:
                    if jid not in ns.slot_of:
                        ns.slot_of[jid] = next(free)
                    s = ns.slot_of[jid]
                    alloc[jid] = tuple(sorted(ns.gpus[s * g:(s + 1) * g]))
        return alloc

    # ----------------------------------------------------------- helpers
    def _new_set(self, g: int, snap: Snapshot) -> NodeSet:
        gpn = snap.cluster.gpus_per_node
        need = math.ceil(g / gpn)
        nodes = tuple(self.free_nodes[:need])
        del self.free_nodes[:need]
        gpus = tuple(x for n in nodes for x in snap.cluster.gpus_of_node(n))
        return NodeSet(g=g, nodes=nodes, capacity=(need * gpn) // g, gpus=gpus)

    def _insert(self, ns: NodeSet, jid: str, *, to_back: bool = False) -> None:
        """Put ``jid`` in ``ns`` and re-sort the class list.

        ``to_back``: [ARTIFACT] ``gandiva_placement`` pops the set from the list and
        appends it before sorting, so it goes behind the sets it now ties with
        (re-spreading and shrinking insert in place).
        """
        self._put(ns, jid)
        if to_back:
            lst = self.classes[ns.g]
            lst.remove(ns)
            lst.append(ns)
        self._sort(ns.g)

    def _insert_many(self, g: int, jids: list[str]) -> None:
        """``_insert(classes[g][0], jid)`` for each of ``jids`` in turn, in O(log n) each.

        Re-sorting the class after every insertion costs O(sets) per job, which a
        long queue re-spread at every grow turns into most of a run. A stable sort
        keeps tied sets in list order, and the set that just took a job was ahead of
        every set it now ties with; so the order is (load, then the sets that reached
        that load later first, then the others in list order), which a heap keeps.
        """
        lst = self.classes[g]
        if not jids or not lst:
            return
        loads = [self._load(ns) for ns in lst]
        if any(a > b for a, b in zip(loads, loads[1:])):  # not sorted: the first one
            self._insert(lst[0], jids[0])                   # sorts it, as before
            jids = jids[1:]
            lst = self.classes[g]
            loads = [self._load(ns) for ns in lst]
        heap = [(load, i, ns) for i, (load, ns) in enumerate(zip(loads, lst))]  # sorted
        for seq, jid in enumerate(jids, start=1):
            load, _, ns = heap[0]
            self._put(ns, jid)
            heapq.heapreplace(heap, (load + 1, -seq, ns))
        heap.sort(key=lambda e: e[:2])
        lst[:] = [ns for _, _, ns in heap]

    def _put(self, ns: NodeSet, jid: str) -> None:
        """Append ``jid`` to ``ns`` (no re-sort)."""
        ns.jobs.append(jid)
        ns.inserted += 1
        self.set_of[jid] = ns

    def _remove(self, ns: NodeSet, jid: str) -> None:
        ns.jobs.remove(jid)
        ns.slot_of.pop(jid, None)

    def _load(self, ns: NodeSet) -> int:
        """A set's utilisation: [ARTIFACT] jobs ever inserted, else jobs it holds now."""
        return ns.inserted if self.artifact else ns.util

    def _sort(self, g: int) -> None:
        """Class lists stay sorted by utilisation (stable: ties keep list order)."""
        self.classes[g].sort(key=self._load)

    # --------------------------------------------------------- inspection
    def node_sets(self) -> dict[int, list[tuple[tuple[int, ...], list[str]]]]:
        """``size -> [(nodes, jobs), ...]`` in class-list order (for tests and logs)."""
        return {g: [(ns.nodes, list(ns.jobs)) for ns in lst]
                for g, lst in sorted(self.classes.items()) if lst}
