"""GPU placement: the artifact's ``elastic`` node-set scheme and a generic first fit.

Pure data, no SimPy. Policies call these to turn a GPU *count* per job into concrete
global GPU ids (``node * gpus_per_node + local``, see :mod:`sim.model.cluster`).

:class:`BuddyPlacer` is the ``elastic`` scheme of POLICIES.md 9.1, used by EF, EDF,
Tiresias and Themis. Every scheduling instant those policies release everything and
re-place all running jobs in a policy-specific order; :func:`place_all` does exactly
that from an empty cluster. The orders are :func:`ef_placement_order` (EF) and
:func:`gdesc_placement_order` (``edf``, Tiresias and Themis: plain ``num_gpu``
descending, stable); ``edf-accessctrl`` places in list order (no helper needed).

GPU-id rule (POLICIES.md 1.6, the key of the overhead cache). Inside a node set, the
GPUs are numbered by *position*: the GPUs of the set's nodes in node order. A job
takes the lowest ``g`` free positions. From an empty cluster (the only way the
artifact's policies use the placer) positions are filled in job-list order without
holes, so a job occupying whole nodes gets consecutive ids from the first GPU of its
first node and jobs sharing a node get consecutive ids in job-list order, which is
the artifact's rule; an identical sequence of placements yields identical id tuples.
Two deliberate differences only show up with individual releases, which the artifact
never does within an instant: (a) remaining jobs keep their GPUs (the artifact would
renumber them, which could hand the same GPU to two jobs), and (b) a node set whose
nodes are not consecutive uses its real nodes' GPUs, not ids counted on from the
first node.

:func:`first_fit` is a topology-preferring fallback for policies outside the artifact.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from sim.model.cluster import ClusterSpec

#: Class-list keys of the ``elastic`` scheme; a job's GPU count must be one of them.
CLASS_KEYS: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 88, 128, 256)
_KEY_SET = frozenset(CLASS_KEYS)

JobKey = Hashable


class PlacementError(Exception):
    """A placement request that cannot be satisfied (base class)."""


class UnsupportedSizeError(PlacementError, ValueError):
    """The GPU count is not one of :data:`CLASS_KEYS` (the artifact aborts the run)."""


class FragmentationError(PlacementError):
    """No node set can take the job and there are not enough free whole nodes."""


def file_key(free: int) -> int | None:
    """Class key a node set with ``free`` free GPUs is filed under.

    The largest key ``k <= free`` with ``free % k == 0``; ``None`` for a full set
    (``free == 0``), which stays in the list of the last job placed there.
    """
    if free <= 0:
        return None
    best = 1
    for k in CLASS_KEYS:
        if k > free:
            break
        if free % k == 0:
            best = k
    return best


@dataclass(eq=False)
class NodeSet:
    """A group of whole nodes shared by the jobs placed on it.

    Attributes:
        nodes: node ids, ascending (taken from the front of the sorted free list).
        capacity: ``len(nodes) * gpus_per_node`` GPUs.
        util: GPUs in use.
        jobs: job keys in placement order (the node set's job list).
        slots: per position (GPU of ``gpus``), the job holding it or ``None``.
        gpus: global GPU ids by position (the nodes' GPUs in node order).
        klass: key of the class list the set is filed in.
    """

    nodes: tuple[int, ...]
    capacity: int
    gpus: tuple[int, ...]
    util: int = 0
    jobs: list[JobKey] = field(default_factory=list)
    slots: list[JobKey | None] = field(default_factory=list)
    klass: int = 0

    @property
    def free(self) -> int:
        return self.capacity - self.util


class BuddyPlacer:
    """The ``elastic`` node-set placement of POLICIES.md 9.1 on one cluster.

    State: node sets filed in class lists (each sorted by ``util`` ascending, stable:
    a set inserted into a list goes after every set of equal ``util``), and the list
    of free nodes sorted by id. Not thread-safe; one instance per simulated cluster.
    """

    def __init__(self, cluster: ClusterSpec) -> None:
        self.cluster = cluster
        self._gpn = cluster.gpus_per_node
        self._node_gpus = _node_gpus(cluster)
        self.reset()

    # -- public API ------------------------------------------------------------
    def reset(self) -> None:
        """Release every job: all nodes free, all class lists empty."""
        self._free_nodes: list[int] = list(range(self.cluster.num_nodes))
        self._classes: dict[int, list[NodeSet]] = {k: [] for k in CLASS_KEYS}
        self._jobs: dict[JobKey, tuple[NodeSet, tuple[int, ...]]] = {}

    def place(self, job_key: JobKey, g: int) -> tuple[int, ...]:
        """Place job ``job_key`` on ``g`` GPUs and return its global GPU ids, ascending.

        Steps (9.1): (1) the first (least-used) node set of class ``g`` if the job
        fits; (2) else, for each larger class key from the largest down to just above
        ``g``, that class's first node set if the job fits (a set tried and not used
        is put back at the end of its list, i.e. after the sets of equal ``util``);
        (3) else a new node set of ``ceil(g / gpus_per_node)`` nodes from the front of
        the free list. The chosen set is re-filed by its new free count; a full set
        is filed under ``g``.

        Raises:
            UnsupportedSizeError: ``g`` is not in :data:`CLASS_KEYS`.
            FragmentationError: nothing fits; the placer is left unchanged.
            PlacementError: ``job_key`` is already placed.
        """
        if job_key in self._jobs:
            raise PlacementError(f"job {job_key!r} is already placed")
        if isinstance(g, bool) or not isinstance(g, int) or g not in _KEY_SET:
            raise UnsupportedSizeError(
                f"job {job_key!r}: {g!r} GPUs is not a placement class; "
                f"the elastic scheme needs one of {list(CLASS_KEYS)}"
            )
        saved: list[tuple[int, NodeSet]] = []  # sets tried and put back, to undo on failure
        classes = self._classes
        ns = self._try_class(g, g, saved) if classes[g] else None
        if ns is None:
            for k in _LARGER[g]:
                if classes[k]:
                    ns = self._try_class(k, g, saved)
                    if ns is not None:
                        break
        if ns is None:
            need = math.ceil(g / self._gpn)
            if need > len(self._free_nodes):
                for k, tried in reversed(saved):  # undo the put-backs: a failure changes nothing
                    lst = self._classes[k]
                    del lst[_index_of(lst, tried)]
                    lst.insert(0, tried)
                raise FragmentationError(
                    f"cannot place job {job_key!r} on {g} GPUs: no node set of class "
                    f">= {g} has room and only {len(self._free_nodes)} free node(s) remain "
                    f"(need {need}); {self.free_gpus()} GPUs free in total"
                )
            nodes = tuple(self._free_nodes[:need])
            del self._free_nodes[:need]
            node_gpus = self._node_gpus
            gpus = (node_gpus[nodes[0]] if need == 1
                    else tuple(gpu for n in nodes for gpu in node_gpus[n]))
            ns = NodeSet(nodes=nodes, capacity=need * self._gpn, gpus=gpus,
                         slots=[None] * (need * self._gpn))
        ids = self._assign(ns, job_key, g)
        self._file(ns, full_key=g)
        return ids

    def release(self, job_key: JobKey) -> None:
        """Release a placed job (``KeyError`` if unknown).

        ``util -= g``; an empty node set returns its nodes to the free list (kept
        sorted by id), otherwise it is re-filed by its new free count. The other
        jobs of the set keep their GPU ids.
        """
        ns, ids = self._jobs.pop(job_key)
        lst = self._classes[ns.klass]
        del lst[_index_of(lst, ns)]
        ns.util -= len(ids)
        ns.jobs.remove(job_key)
        for p, holder in enumerate(ns.slots):
            if holder == job_key:
                ns.slots[p] = None
        if ns.util == 0:
            for n in ns.nodes:
                bisect.insort(self._free_nodes, n)
        else:
            self._file(ns, full_key=None)

    def free_gpus(self) -> int:
        """Free GPUs: sum over node sets of ``capacity - util`` plus free nodes x gpn."""
        in_sets = sum(ns.free for lst in self._classes.values() for ns in lst)
        return in_sets + len(self._free_nodes) * self._gpn

    def gpus_of(self, job_key: JobKey) -> tuple[int, ...]:
        """GPU ids of a placed job (as returned by :meth:`place`)."""
        return self._jobs[job_key][1]

    def placements(self) -> dict[JobKey, tuple[int, ...]]:
        """All placed jobs and their GPU ids, in placement order."""
        return {k: ids for k, (_, ids) in self._jobs.items()}

    def free_nodes(self) -> tuple[int, ...]:
        """Nodes in no node set, ascending."""
        return tuple(self._free_nodes)

    def class_lists(self) -> dict[int, list[tuple[tuple[int, ...], int]]]:
        """Non-empty class lists as ``key -> [(nodes, util), ...]`` in list order (for tests/logs)."""
        return {k: [(ns.nodes, ns.util) for ns in lst] for k, lst in self._classes.items() if lst}

    def __contains__(self, job_key: object) -> bool:
        return job_key in self._jobs

    # -- helpers ---------------------------------------------------------------
    def _try_class(self, k: int, g: int, saved: list[tuple[int, NodeSet]]) -> NodeSet | None:
        """Pop the first set of class ``k``; return it if ``g`` fits, else put it back
        (after the sets of equal ``util``) and note it in ``saved``."""
        lst = self._classes[k]
        if not lst:
            return None
        ns = lst.pop(0)
        if ns.util + g <= ns.capacity:
            return ns
        self._insert(k, ns)
        saved.append((k, ns))
        return None

    def _assign(self, ns: NodeSet, job_key: JobKey, g: int) -> tuple[int, ...]:
        positions = [p for p, holder in enumerate(ns.slots) if holder is None][:g]
        for p in positions:
            ns.slots[p] = job_key
        ns.util += g
        ns.jobs.append(job_key)
        ids = tuple(ns.gpus[p] for p in positions)
        self._jobs[job_key] = (ns, ids)
        return ids

    def _file(self, ns: NodeSet, full_key: int | None) -> None:
        """File a set (not in any list) by its free count; a full set goes under ``full_key``."""
        k = file_key(ns.free)
        if k is None:
            assert full_key is not None, "a release never leaves a set full"
            k = full_key
        self._insert(k, ns)

    def _insert(self, k: int, ns: NodeSet) -> None:
        # Append-then-stable-sort by util == insert after every set of equal util.
        lst = self._classes[k]
        bisect.insort_right(lst, ns, key=_util)
        ns.klass = k


_util = operator.attrgetter("util")
#: per size, the larger class keys in the order step (2) tries them (largest first)
_LARGER: dict[int, tuple[int, ...]] = {
    g: tuple(k for k in reversed(CLASS_KEYS) if k > g) for g in CLASS_KEYS}


_NODE_GPUS: dict[int, tuple[ClusterSpec, tuple[tuple[int, ...], ...]]] = {}


def _node_gpus(cluster: ClusterSpec) -> tuple[tuple[int, ...], ...]:
    """Global GPU ids per node; a placer is built at every instant, so they are kept
    per cluster object (which the entry holds, so its id is not reused)."""
    hit = _NODE_GPUS.get(id(cluster))
    if hit is not None and hit[0] is cluster:
        return hit[1]
    ids = tuple(tuple(cluster.gpus_of_node(n)) for n in range(cluster.num_nodes))
    if len(_NODE_GPUS) >= 16:
        _NODE_GPUS.clear()
    _NODE_GPUS[id(cluster)] = (cluster, ids)
    return ids


def _index_of(lst: list[NodeSet], ns: NodeSet) -> int:
    for i, s in enumerate(lst):
        if s is ns:
            return i
    raise AssertionError("node set missing from its class list")


def place_all(
    cluster: ClusterSpec, sizes_in_order: Iterable[tuple[JobKey, int]]
) -> dict[JobKey, tuple[int, ...]]:
    """Place ``(job_key, g)`` pairs in the given order on an empty cluster.

    What every ``elastic`` policy does each instant (release all, re-place). Returns
    ``job_key -> GPU ids`` in placement order. Raises like :meth:`BuddyPlacer.place`.
    """
    seq = list(sizes_in_order)
    gpn = cluster.gpus_per_node
    starts = _starts_from_empty([g for _, g in seq], cluster.num_nodes, gpn)
    if starts is not None and len({k for k, _ in seq}) == len(seq):
        return {k: tuple(range(a, a + g)) for (k, g), a in zip(seq, starts)}
    placer = BuddyPlacer(cluster)  # bad input: the placer raises the error, naming the job
    for key, g in seq:
        placer.place(key, g)
    return placer.placements()


def _starts_from_empty(sizes: Sequence[int], num_nodes: int, gpn: int) -> list[int] | None:
    """:meth:`BuddyPlacer.place` of each size in turn from an empty cluster, on bare
    counters: the first GPU id each job gets (``None`` if a placement would fail).

    From an empty cluster nothing is released, so every node set is a run of
    consecutive nodes taken from the front of the free list and its positions fill
    without holes: a job's ids are ``g`` consecutive ids from ``first node * gpn +
    util before it``. The class lists, their ``util`` order and the put-backs are the
    placer's own; only the bookkeeping of job keys and slots is left out (the result
    is checked against the placer by a property test).
    """
    util: list[int] = []
    cap: list[int] = []
    first: list[int] = []  # first GPU id of each node set
    classes: dict[int, list[int]] = {k: [] for k in CLASS_KEYS}
    by_util = util.__getitem__
    next_node = 0
    out = []
    for g in sizes:
        if type(g) is not int or g not in _KEY_SET:
            return None
        ns = -1
        for k in ((g,) + _LARGER[g]) if classes[g] else _LARGER[g]:
            lst = classes[k]
            if lst:
                s = lst.pop(0)
                if util[s] + g <= cap[s]:
                    ns = s
                    break
                bisect.insort_right(lst, s, key=by_util)  # tried, put back
        if ns < 0:
            need = -(-g // gpn)
            if need > num_nodes - next_node:
                return None
            ns = len(util)
            util.append(0)
            cap.append(need * gpn)
            first.append(next_node * gpn)
            next_node += need
        out.append(first[ns] + util[ns])
        util[ns] += g
        k = file_key(cap[ns] - util[ns])
        bisect.insort_right(classes[g if k is None else k], ns, key=by_util)
    return out



class PlacementMemo:
    """:func:`place_all` that remembers the placements of recent size sequences.

    Placing from an empty cluster is a deterministic function of the cluster and the
    sequence of sizes ``g``: no step of :meth:`BuddyPlacer.place` looks at a job's key
    (it only labels the GPUs taken), so the ``i``-th job of two sequences with the same
    sizes gets the same GPU ids. A policy that re-places every job each instant in
    size order (``gdesc_placement_order``) repeats a size sequence whenever the
    multiset of picked sizes repeats, whatever the jobs; the memo then hands the
    remembered ids to this call's keys without placing again. One instance per policy
    object (per run); it keeps the last ``size`` sequences. Errors are raised exactly
    as :func:`place_all` raises them and are not remembered.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._cluster: ClusterSpec | None = None
        self._ids: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        self.hits = 0  # calls answered from memory (for tests and profiling)

    def place_all(
        self, cluster: ClusterSpec, sizes_in_order: Iterable[tuple[JobKey, int]]
    ) -> dict[JobKey, tuple[int, ...]]:
        """Same as :func:`place_all` (a fresh dict every call)."""
        seq = list(sizes_in_order)
        keys = [k for k, _ in seq]
        sizes = tuple(g for _, g in seq)
        if cluster is not self._cluster and cluster != self._cluster:
            self._cluster, self._ids = cluster, {}
        ids = self._ids.get(sizes)
        if ids is not None and len(set(keys)) == len(keys):
            self.hits += 1
            return dict(zip(keys, ids))
        try:
            ids = list(place_all(cluster, enumerate(sizes)).values())
        except PlacementError:
            ids = None
        if ids is None or len(set(keys)) != len(keys):
            return place_all(cluster, seq)  # raises with the caller's keys
        if len(self._ids) >= self.size:
            del self._ids[next(iter(self._ids))]  # the oldest
        self._ids[sizes] = ids
        return dict(zip(keys, ids))

def ef_placement_order(
    items: Sequence[tuple[JobKey, int]], gpus_per_node: int, *, sort_big: bool = True
) -> list[tuple[JobKey, int]]:
    """ElasticFlow's placement order within an instant (POLICIES.md 9.1).

    Jobs with ``g >= gpus_per_node`` first, ``g`` descending (stable; in input order
    if ``sort_big`` is false, as ``ef`` does with its list of started jobs); then for
    each class key below ``gpus_per_node`` from large to small, the jobs of exactly
    that size in input order. (``edf``, Tiresias and Themis use
    :func:`gdesc_placement_order` instead.)

    Raises:
        ValueError: a job has ``g < 1``, or ``g < gpus_per_node`` and ``g`` is not a
            class key (the artifact would silently never place it).
    """
    big: list[tuple[JobKey, int]] = []
    small: dict[int, list[tuple[JobKey, int]]] = {}
    for key, g in items:
        if g < 1:
            raise ValueError(f"job {key!r}: cannot place {g} GPUs")
        if g >= gpus_per_node:
            big.append((key, g))
        elif g in _KEY_SET:
            small.setdefault(g, []).append((key, g))
        else:
            raise UnsupportedSizeError(
                f"job {key!r}: {g} GPUs is below a node ({gpus_per_node}) and not a "
                f"placement class {list(CLASS_KEYS)}"
            )
    order = sorted(big, key=lambda it: -it[1]) if sort_big else big
    for k in sorted(small, reverse=True):
        order.extend(small[k])
    return order


def gdesc_placement_order(items: Sequence[tuple[JobKey, int]]) -> list[tuple[JobKey, int]]:
    """``num_gpu``-descending stable order (``edf``, Tiresias, Themis; POLICIES.md 9.1)."""
    return sorted(items, key=lambda it: -it[1])


def first_fit(cluster: ClusterSpec, free: set[int], g: int) -> tuple[int, ...] | None:
    """Pick ``g`` GPUs from the free global ids ``free``, preferring the fewest nodes.

    For policies outside the artifact. Preference: (1) ``g <= gpus_per_node``: one
    node, best fit (the node with the fewest free GPUs that suffices, then lowest
    id); (2) one switch: the switch needing the fewest nodes (then least free
    capacity, then lowest id), taking nodes with the most free GPUs first (fully free
    nodes first) and finishing on the best-fitting node; (3) anything: switches by
    free GPUs descending, each filled the same way. Within a node the lowest ids are
    taken. Returns the ids ascending, or ``None`` if fewer than ``g`` are free.
    ``free`` is not modified.
    """
    if g < 1:
        raise ValueError(f"cannot place {g} GPUs")
    if g > len(free):
        return None
    by_node: dict[int, list[int]] = {}
    for gpu in sorted(free):
        by_node.setdefault(cluster.node_of(gpu), []).append(gpu)

    if g <= cluster.gpus_per_node:
        fits = [(len(ids), n) for n, ids in by_node.items() if len(ids) >= g]
        if fits:
            return tuple(by_node[min(fits)[1]][:g])

    by_switch: dict[int, list[int]] = {}
    for n in by_node:
        by_switch.setdefault(cluster.switch_of_node(n), []).append(n)

    best: tuple[tuple[int, int, int], list[int]] | None = None
    for sw, nodes in by_switch.items():
        total = sum(len(by_node[n]) for n in nodes)
        if total < g:
            continue
        pick = _take(by_node, nodes, g)
        rank = (len({cluster.node_of(x) for x in pick}), total, sw)
        if best is None or rank < best[0]:
            best = (rank, pick)
    if best is not None:
        return tuple(sorted(best[1]))

    taken: list[int] = []
    switches = sorted(by_switch, key=lambda s: (-sum(len(by_node[n]) for n in by_switch[s]), s))
    for sw in switches:
        nodes = by_switch[sw]
        want = min(g - len(taken), sum(len(by_node[n]) for n in nodes))
        taken.extend(_take(by_node, nodes, want))
        if len(taken) == g:
            break
    return tuple(sorted(taken))


def _take(by_node: dict[int, list[int]], nodes: list[int], g: int) -> list[int]:
    """Take ``g`` GPUs from ``nodes`` (which hold at least ``g``) using the fewest nodes."""
    order = sorted(nodes, key=lambda n: (-len(by_node[n]), n))
    taken: list[int] = []
    for i, n in enumerate(order):
        need = g - len(taken)
        if need == 0:
            break
        if len(by_node[n]) >= need:
            # the last node: best fit among the rest, so bigger free blocks survive
            rest = order[i:]
            last = min((m for m in rest if len(by_node[m]) >= need),
                       key=lambda m: (len(by_node[m]), m))
            taken.extend(by_node[last][:need])
            break
        taken.extend(by_node[n])
    return taken
