"""Gandiva: artifact parity (POLICIES.md 11.1, 11.2) and node-set behaviour (section 6)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.cluster import ClusterSpec
from sim.model.job import JobSpec
from sim.model.snapshot import JobStatus, JobView, Snapshot
from sim.policies.gandiva import Gandiva, NodeSet
from tests import toy
from tests.toy import N1G8, N16G8, TABLE, TOY_JOBS, fig10_jobs, rows, run


# --------------------------------------------------------------------- parity
def test_toy_trace_matches_artifact():
    res = run("gandiva", TOY_JOBS, N1G8)
    assert rows(res) == [(1, 0.0, 5475.0), (2, 5520.0, 9623.0), (1, 240.0, 1638.0)]
    assert res.summary["deadline_satisfactory_ratio"] == 0.0


def test_toy_trace_node_set_blocking():
    # Holds on any engine: the 2-GPU job waits until the only node (1-GPU class) is empty,
    # which Gandiva notices at the first instant after job 0's end.
    res = run("gandiva", TOY_JOBS, N1G8)
    start = res.jobs.set_index("job_id").start_s
    assert start["1"] >= res.jobs.set_index("job_id").end_s["0"]
    assert res.summary["deadline_satisfactory_ratio"] == 0.0


def test_fig10_matches_artifact():
    res = run("gandiva", fig10_jobs(), N16G8)
    assert res.summary["deadline_satisfactory_ratio"] == pytest.approx(0.79)
    assert res.summary["jct_mean_s"] == pytest.approx(63852.8, abs=0.1)


@pytest.mark.slow
def test_fig8a_matches_artifact():
    # n16g4: 8- and 16-GPU jobs span several nodes, so their classes re-spread on grow
    s = toy.run_fig8a("gandiva").summary
    assert s["deadline_satisfactory_ratio"] == pytest.approx(0.0923, abs=5e-5)  # 18 / 195


def test_clean_mode_runs_fig10():
    res = run("gandiva", fig10_jobs(), N16G8, artifact=False)
    assert res.summary["unfinished"] == 0


# ---------------------------------------------------------------- unit level
@dataclass(frozen=True)
class SnapshotWithArrivals(Snapshot):
    """A snapshot carrying the proposed ``more_arrivals`` field."""

    more_arrivals: bool = True


def cluster(nodes: int) -> ClusterSpec:
    return ClusterSpec(name=f"n{nodes}g8", num_switch=1, nodes_per_switch=nodes, gpus_per_node=8)


def spec(i: int, gpus: int) -> JobSpec:
    return JobSpec(job_id=str(i), idx=i, submit_s=0, iterations=1000, model="resnet50",
                   batch_size=128, deadline_s=1e9, num_gpu=gpus, duration_s=100_000)


class World:
    """Feeds a policy snapshots built from its own last decision (no engine)."""

    def __init__(self, pol: Gandiva, nodes: int) -> None:
        self.pol, self.cluster = pol, cluster(nodes)
        self.specs: dict[str, JobSpec] = {}
        self.gpus: dict[str, tuple[int, ...]] = {}
        self.started: set[str] = set()

    def step(self, t: float, arrive: list[JobSpec] = (), finish: list[str] = (),
             **extra) -> dict[str, tuple[int, ...]]:
        for jid in finish:
            del self.specs[jid]
            self.gpus.pop(jid, None)
        new = {s.job_id for s in arrive}
        for s in arrive:
            self.specs[s.job_id] = s
        views = []
        for jid, s in self.specs.items():
            if jid in new:
                st = JobStatus.NEW
            elif self.gpus.get(jid):
                st = JobStatus.RUNNING
            else:
                st = JobStatus.PAUSED if jid in self.started else JobStatus.WAITING
            views.append(JobView(s, st, self.gpus.get(jid, ())))
        cls = SnapshotWithArrivals if extra else Snapshot
        snap = cls(now_s=t, cluster=self.cluster, table=TABLE, jobs=tuple(views),
                   finished=tuple(finish), slot_s=240, **extra)
        self.decision = self.pol.decide(snap)
        self.gpus = dict(self.decision.alloc)
        self.started |= set(self.gpus)
        return self.gpus


def test_sets_merge_and_time_slice_with_rotation_at_quantum():
    w = World(Gandiva(artifact=True), nodes=2)
    a, b, c = spec(0, 4), spec(1, 4), spec(2, 4)  # 4-GPU class: one node, 2 slots
    w.step(0, [a])
    assert w.pol.node_sets() == {4: [((0,), ["0"])]}
    # (a) is strict (util + 1 < capacity), so b opens a set on node 1; then the shrink
    # of the next instant (done now: sets do not change in between) merges the
    # least-used set (0, first of equals) into the other
    w.step(10, [b])
    assert w.pol.node_sets() == {4: [((1,), ["1", "0"])]}
    assert w.pol.free_nodes == [0]
    assert set(w.gpus) == {"0", "1"}
    # c opens a set on node 0, which is merged too: 3 jobs, 2 slots
    alloc = w.step(20, [c])
    assert w.pol.node_sets() == {4: [((1,), ["1", "0", "2"])]}
    assert alloc == {"1": (8, 9, 10, 11), "0": (12, 13, 14, 15)}
    # no rotation off the 60 s quantum; rotation on it (c takes the freed slot)
    assert w.step(50) == alloc
    alloc = w.step(60)
    # (3 jobs want 12 GPUs: the class grows by an empty set on node 0, appended
    # unsorted, which the artifact never fills: a one-node class re-spreads its jobs
    # only when the last grow attempt finds no free node; it is freed again at the
    # next instant)
    assert w.pol.node_sets() == {4: [((1,), ["2", "1", "0"]), ((0,), [])]}
    assert alloc == {"2": (12, 13, 14, 15), "1": (8, 9, 10, 11)}


def test_pending_jobs_wait_for_a_freed_set_and_artifact_retry_skips():
    for artifact, still_pending in ((True, ["2"]), (False, [])):
        w = World(Gandiva(artifact=artifact), nodes=1)
        w.step(0, [spec(0, 8)])
        w.step(10, [spec(1, 2), spec(2, 2), spec(3, 2)])  # no 2-GPU set, no free node
        assert w.pol.pending == ["1", "2", "3"] and set(w.gpus) == {"0"}
        alloc = w.step(20, finish=["0"])  # the 8-GPU set empties: retry waiting jobs
        assert w.pol.pending == still_pending
        assert set(alloc) == {"1", "2", "3"} - set(still_pending)
        assert all(g < 8 for gpus in alloc.values() for g in gpus)


def test_artifact_utilisation_counts_every_job_ever_inserted():
    for artifact, opens_new_set in ((True, True), (False, False)):
        w = World(Gandiva(artifact=artifact), nodes=4)
        w.step(0, [spec(i, 1) for i in range(7)])
        w.step(10, finish=[str(i) for i in range(6)])
        ns = w.pol.classes[1][0]
        assert (ns.util, ns.inserted) == (1, 7)
        w.pol.size["7"] = 1
        assert w.pol._place("7", Snapshot(now_s=20, cluster=w.cluster, table=TABLE))
        assert (w.pol.set_of["7"] is not ns) == opens_new_set


def test_grow_moves_no_job_under_artifact_but_spreads_in_clean_mode():
    w = World(Gandiva(artifact=True), nodes=4)
    w.step(0, [spec(i, 1) for i in range(10)])
    # 7 jobs fill set 0 (strict), 3 open set 1, which the shrink merges into set 0
    # (the artifact counts one set per GPU the class has too many)
    assert w.pol.node_sets()[1] == [((0,), [str(i) for i in range(10)])]
    alloc = w.step(10)  # 10 jobs on 8 GPUs: the class grows, but moves no job
    assert len(alloc) == 8
    # clean: shrinking counts whole sets; 16 GPUs for a 10-GPU target keeps both
    w = World(Gandiva(artifact=False), nodes=4)
    w.step(0, [spec(i, 1) for i in range(10)])
    assert w.pol.node_sets()[1] == [((1,), ["7", "8", "9"]), ((0,), [str(i) for i in range(7)])]
    assert len(w.step(10)) == 10


def test_clean_grow_and_shrink_count_whole_sets_and_settle():
    # 20 one-GPU jobs, 8-GPU nodes: the clean class holds ceil(20 / 8) = 3 nodes and
    # keeps them; the artifact's unit (one set per GPU) opened 12 sets and shrank
    # them away at the next instant, every instant
    w = World(Gandiva(artifact=False), nodes=4)
    w.step(0, [spec(i, 8) for i in range(3)])  # nodes 0-2
    w.step(10, [spec(i, 1) for i in range(3, 23)])  # all 20 in node 3's set
    assert [len(ns.jobs) for ns in w.pol.classes[1]] == [20]
    w.step(20, finish=["0", "1", "2"])  # 3 nodes free: the class grows by 2 sets
    assert sorted(len(ns.jobs) for ns in w.pol.classes[1]) == [6, 6, 8]  # 8 ran: stay
    sets = {j: ns.nodes for j, ns in w.pol.set_of.items()}
    for t in (60, 120, 180):
        w.step(t)
        assert {j: ns.nodes for j, ns in w.pol.set_of.items()} == sets
        assert len(w.gpus) == 20


def test_gpus_stay_inside_the_node_set_and_are_sticky():
    w = World(Gandiva(artifact=True), nodes=2)
    first = w.step(0, [spec(0, 2), spec(1, 2)])
    assert first == {"0": (0, 1), "1": (2, 3)}
    again = w.step(10, [spec(2, 16)])  # waits: no free node for a 2-node set
    assert again == first and w.pol.pending == ["2"]
    # once the 2-GPU set empties, the 16-GPU job gets two whole nodes (freed nodes go
    # to the back of the free list)
    alloc = w.step(20, finish=["0", "1"])
    assert alloc == {"2": tuple(range(16))}
    assert w.pol.node_sets() == {16: [((1, 0), ["2"])]}


def test_wakes_every_slot_only_after_the_last_arrival():
    w = World(Gandiva(artifact=True), nodes=1)
    w.step(0, [spec(0, 1)], more_arrivals=True)
    assert w.decision.wake_s is None
    w.step(100, [spec(1, 1)], more_arrivals=False)
    assert w.decision.wake_s == 100 + 240
    w.step(340)  # a plain Snapshot
    if "more_arrivals" in Snapshot.__dataclass_fields__:  # the field exists: True by default
        assert w.decision.wake_s is None
    else:  # engine without the field: wake every slot regardless
        assert w.decision.wake_s == 340 + 240


def test_unknown_job_size_is_refused():
    w = World(Gandiva(artifact=True), nodes=1)
    with pytest.raises(ValueError, match="node-set"):
        w.step(0, [spec(0, 3)])


def test_multi_node_class_respreads_its_jobs_on_grow():
    # gandiva_node_set_expand reuses its loop counter for the node loop: a class whose
    # sets span several nodes always re-spreads, so a time-sliced job gets the new set
    for artifact in (True, False):
        w = World(Gandiva(artifact=artifact), nodes=4)
        w.step(0, [spec(0, 8), spec(1, 16), spec(2, 16)])
        # job 2 finds no two free nodes: it time-slices behind job 1
        assert w.pol.node_sets() == {8: [((0,), ["0"])], 16: [((1, 2), ["1", "2"])]}
        assert set(w.gpus) == {"0", "1"}
        alloc = w.step(10, finish=["0"])  # node 0 is freed: the 16-GPU class grows
        assert set(alloc) == {"1", "2"}
        if artifact:  # round robin from the old set: job 1 stays, job 2 moves
            assert w.pol.node_sets() == {16: [((3, 0), ["2"]), ((1, 2), ["1"])]}


def test_single_node_class_respreads_only_when_the_last_grow_attempt_fails():
    pol = Gandiva(artifact=True)
    snap = Snapshot(now_s=0, cluster=cluster(3), table=TABLE)
    pol.free_nodes = []
    a = NodeSet(g=1, nodes=(0,), capacity=8, gpus=tuple(range(8)), inserted=12)
    b = NodeSet(g=1, nodes=(1,), capacity=8, gpus=tuple(range(8, 16)), inserted=2)
    a.jobs = [str(i) for i in range(10)]
    b.jobs = ["10", "11"]
    pol.classes = {1: [b, a]}
    pol._grow_artifact(1, pol.classes[1], 1, 1, snap)  # no free node: re-spread
    # utilisation reset, then one by one into the first set of the list, re-sorted
    # (stably, in place) after each insertion
    assert b.jobs == ["10", "1", "2", "5", "6", "9"]
    assert a.jobs == ["11", "0", "3", "4", "7", "8"]
    pol.free_nodes = [2]
    pol._grow_artifact(1, pol.classes[1], 1, 1, snap)  # a new set, no re-spread
    assert [ns.jobs for ns in pol.classes[1]] == [b.jobs, a.jobs, []]
    assert b.jobs == ["10", "1", "2", "5", "6", "9"]


def test_artifact_placement_time_slices_into_the_next_set_after_a_refusal():
    # gandiva_placement pops the least-used set to test rule (a) and appends it back
    # when it is full, so rule (c) takes the next one
    for artifact, target in ((True, "b"), (False, "a")):
        pol = Gandiva(artifact=artifact)
        c = cluster(2)
        pol.free_nodes = []
        a = NodeSet(g=8, nodes=(0,), capacity=1, gpus=tuple(range(8)), jobs=["0"], inserted=1)
        b = NodeSet(g=8, nodes=(1,), capacity=1, gpus=tuple(range(8, 16)), jobs=["1"],
                    inserted=1)
        pol.classes = {8: [a, b]}
        pol.size["2"] = 8
        assert pol._place("2", Snapshot(now_s=0, cluster=c, table=TABLE))
        assert pol.set_of["2"] is {"a": a, "b": b}[target]
        assert pol.classes[8][0] is {"a": b, "b": a}[target]  # the fuller set sorts last


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), min_size=1, max_size=8),
       st.integers(0, 30), st.booleans())
@settings(max_examples=300, deadline=None)
def test_bulk_insert_equals_inserting_one_by_one(sets, n, artifact):
    """``_insert_many`` (a heap) puts every job where ``_insert`` + re-sort would have,
    and leaves the class list in the same order; the list may start unsorted."""
    def build():
        pol = Gandiva(artifact=artifact)
        lst = []
        for i, (held, extra) in enumerate(sets):
            ns = NodeSet(g=1, nodes=(i,), capacity=8, gpus=tuple(range(8 * i, 8 * i + 8)),
                         jobs=[f"s{i}-{k}" for k in range(held)], inserted=held + extra)
            lst.append(ns)
        pol.classes[1] = lst
        return pol

    jids = [f"j{k}" for k in range(n)]
    ref, got = build(), build()
    for jid in jids:
        ref._insert(ref.classes[1][0], jid)
    got._insert_many(1, jids)
    assert [ns.nodes for ns in got.classes[1]] == [ns.nodes for ns in ref.classes[1]]
    assert [ns.jobs for ns in got.classes[1]] == [ns.jobs for ns in ref.classes[1]]
    assert [ns.inserted for ns in got.classes[1]] == [ns.inserted for ns in ref.classes[1]]
    assert {j: ns.nodes for j, ns in got.set_of.items()} == \
        {j: ns.nodes for j, ns in ref.set_of.items()}


@given(st.lists(st.integers(0, 12), min_size=1, max_size=6), st.integers(1, 4),
       st.sets(st.integers(0, 80)))
@settings(max_examples=300, deadline=None)
def test_clean_rebalance_moves_only_waiting_jobs_until_even(loads, capacity, ran):
    """``_rebalance``: no running job moves, no job is lost, the end state has no
    over-full set two jobs above the emptiest one, and a set that gave away a job
    that ran had no never-run waiting job left to give."""
    pol = Gandiva(artifact=False)
    lst, k = [], 0
    for i, n in enumerate(loads):
        ns = NodeSet(g=1, nodes=(i,), capacity=capacity, gpus=tuple(range(8 * i, 8 * i + 8)),
                     jobs=[str(k + m) for m in range(n)])
        for jid in ns.jobs:
            pol.set_of[jid] = ns
        k += n
        lst.append(ns)
    pol.classes[1] = list(lst)
    ran = {str(x) for x in ran} & {str(x) for x in range(k)}  # started before: PAUSED
    views = tuple(JobView(spec(x, 1), JobStatus.PAUSED if str(x) in ran else JobStatus.WAITING)
                  for x in range(k))
    snap = Snapshot(now_s=0, cluster=cluster(len(loads)), table=TABLE, jobs=views)
    before = {id(ns): list(ns.jobs) for ns in lst}
    pol._rebalance(1, snap)
    assert sorted(j for ns in lst for j in ns.jobs) == sorted(str(x) for x in range(k))
    for ns in lst:
        old = before[id(ns)]
        assert ns.jobs[: min(len(old), capacity)] == old[:capacity]  # running jobs stay
        gone = [j for j in old if j not in ns.jobs]
        if any(j in ran for j in gone):
            assert all(j in ran for j in ns.jobs[capacity:] if j in old)
        assert all(pol.set_of[j] is ns for j in ns.jobs)
    hi = max(ns.util for ns in lst)
    lo = min(ns.util for ns in lst)
    assert hi <= capacity or hi - lo <= 1
    assert [ns.util for ns in pol.classes[1]] == sorted(ns.util for ns in lst)


def test_clean_grow_without_free_nodes_moves_no_job():
    w = World(Gandiva(artifact=False), nodes=2)
    w.step(0, [spec(i, 8) for i in range(4)])  # two one-slot sets, two jobs each
    sets = {j: ns.nodes for j, ns in w.pol.set_of.items()}
    for t in (60, 120, 180):  # rotations; the class wants more nodes but none is free
        w.step(t)
        assert {j: ns.nodes for j, ns in w.pol.set_of.items()} == sets
        assert len(w.gpus) == 2
