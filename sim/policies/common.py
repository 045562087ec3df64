"""Helpers shared by policies: GPU placement that keeps jobs where they are.

``sticky_place`` turns per-job GPU counts into concrete GPU ids while moving as
few jobs as possible: a job whose count is unchanged keeps its GPUs, a shrinking
job keeps the GPUs on its fullest nodes, and growing or new jobs take free GPUs
best-fit (the node that fits them with the least left over, else whole free
nodes on one switch). The artifact's buddy placement lives in
:mod:`sim.model.placement`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sim.model.cluster import ClusterSpec
from sim.model.placement import (
    FragmentationError,
    PlacementMemo,
    gdesc_placement_order,
    place_all,
)
from sim.model.snapshot import Snapshot


def place(snap: Snapshot, want: dict[str, int], *, artifact: bool,
          memo: PlacementMemo | None = None) -> dict[str, tuple[int, ...]]:
    """Concrete GPUs for ``want`` (job id -> GPU count; zero counts are dropped).

    Under the artifact preset every job is released and re-placed with the buddy scheme
    in GPU-count-descending order (POLICIES.md 9.1); should that fragment, or in clean
    mode, :func:`sticky_place` keeps jobs where they are. ``memo`` (the caller's, one
    per run) skips the buddy placement when the same sequence of sizes was placed
    recently; the result is the same.
    """
    want = {jid: g for jid, g in want.items() if g > 0}
    if artifact:
        try:
            order = gdesc_placement_order(list(want.items()))
            placed = (memo.place_all(snap.cluster, order) if memo is not None
                      else place_all(snap.cluster, order))
            return placed  # ids come ascending
        except FragmentationError:
            pass  # list-order placement can fragment (POLICIES.md 9.1 step 4)
    return sticky_place(snap, want, order=sorted(want, key=lambda j: -want[j]))


def sticky_place(
    snap: Snapshot, want: dict[str, int], order: Iterable[str] | None = None
) -> dict[str, tuple[int, ...]]:
    """Concrete GPUs for ``want`` (job id -> GPU count), keeping current placements.

    ``order`` is the order in which jobs needing new GPUs are placed (default:
    largest request first, then job order in the snapshot). Raises ValueError if
    the counts add up to more GPUs than the cluster has.
    """
    cluster = snap.cluster
    if sum(want.values()) > cluster.num_gpus:
        raise ValueError(f"asked for {sum(want.values())} GPUs, cluster has {cluster.num_gpus}")
    current = {j.spec.job_id: j.gpus for j in snap.jobs}
    gpn = cluster.gpus_per_node
    out: dict[str, tuple[int, ...]] = {}
    need: dict[str, int] = {}
    used: set[int] = set()
    for jid, n in want.items():
        if n <= 0:
            continue
        have = current.get(jid, ())
        if len(have) >= n:
            keep = _keep_subset(have, n, gpn)
            out[jid] = keep
            used.update(keep)
        else:
            out[jid] = tuple(have)
            used.update(have)
            need[jid] = n - len(have)
    if not need:
        return out
    free_by_node: dict[int, list[int]] = defaultdict(list)
    for g in range(cluster.num_gpus):
        if g not in used:
            free_by_node[g // gpn].append(g)
    if order is None:
        pos = {j.job_id: i for i, j in enumerate(snap.jobs)}
        order = sorted(need, key=lambda j: (-want[j], pos.get(j, 0)))
    for jid in order:
        k = need.get(jid, 0)
        if k <= 0:
            continue
        prefer = {g // gpn for g in out[jid]}
        got = _take(cluster, free_by_node, k, prefer)
        out[jid] = tuple(sorted(out[jid] + got))
    return out


def _keep_subset(have: tuple[int, ...], n: int, gpn: int) -> tuple[int, ...]:
    if len(have) == n:
        return tuple(have)
    per_node: dict[int, int] = defaultdict(int)
    for g in have:
        per_node[g // gpn] += 1
    ranked = sorted(have, key=lambda g: (-per_node[g // gpn], g))
    return tuple(sorted(ranked[:n]))


def _take(cluster: ClusterSpec, free_by_node: dict[int, list[int]], k: int,
          prefer: set[int]) -> tuple[int, ...]:
    got: list[int] = []
    # 1. nodes the job already uses
    for node in sorted(prefer):
        while k and free_by_node.get(node):
            got.append(free_by_node[node].pop(0))
            k -= 1
    if not k:
        return tuple(got)
    # 2. best fit: the node with the fewest free GPUs that still holds all of k
    fits = [n for n, f in free_by_node.items() if len(f) >= k]
    if fits:
        node = min(fits, key=lambda n: (len(free_by_node[n]), n))
        got += free_by_node[node][:k]
        del free_by_node[node][:k]
        return tuple(got)
    # 3. spread: fullest-free nodes first, grouped by switch with the most free GPUs
    nps = cluster.nodes_per_switch
    by_switch: dict[int, int] = defaultdict(int)
    for n, f in free_by_node.items():
        by_switch[n // nps] += len(f)
    nodes = sorted((n for n, f in free_by_node.items() if f),
                   key=lambda n: (-by_switch[n // nps], n // nps, -len(free_by_node[n]), n))
    for node in nodes:
        while k and free_by_node[node]:
            got.append(free_by_node[node].pop(0))
            k -= 1
        if not k:
            break
    if k:
        raise ValueError("not enough free GPUs")
    return tuple(got)


def predicted_ends(snap: Snapshot, alloc: dict[str, tuple[int, ...]]) -> dict[str, float]:
    """Exact finish times if every job kept ``alloc`` (iteration work, no overheads)."""
    out = {}
    rate_of = snap.table.rate
    now = snap.now_s
    for j in snap.jobs:
        gpus = alloc.get(j.spec.job_id)
        if gpus:
            rate = rate_of(j.spec.model, j.spec.batch_size, len(gpus))
            if rate > 0:
                out[j.spec.job_id] = now + max(j.iter_left, 0.0) / rate
    return out
