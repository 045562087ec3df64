"""Tests for sim.model.placement: the elastic node-set scheme and first fit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.cluster import ClusterSpec
from sim.model.placement import (
    CLASS_KEYS,
    BuddyPlacer,
    FragmentationError,
    PlacementError,
    PlacementMemo,
    UnsupportedSizeError,
    ef_placement_order,
    file_key,
    first_fit,
    gdesc_placement_order,
    place_all,
)


def cluster(num_switch: int = 1, nodes_per_switch: int = 4, gpn: int = 8) -> ClusterSpec:
    return ClusterSpec(name="t", num_switch=num_switch, nodes_per_switch=nodes_per_switch,
                       gpus_per_node=gpn)


def assert_consistent(c: ClusterSpec, placements: dict) -> None:
    seen: set[int] = set()
    for ids in placements.values():
        assert all(0 <= x < c.num_gpus for x in ids)
        assert len(set(ids)) == len(ids)
        assert not seen & set(ids), "GPU double-booked"
        seen |= set(ids)


# -- filing rule ---------------------------------------------------------------
@pytest.mark.parametrize(("free", "key"), [
    (0, None), (1, 1), (3, 1), (4, 4), (6, 2), (7, 1), (8, 8), (12, 12), (14, 2),
    (20, 4), (24, 24), (36, 12), (96, 48), (256, 256), (512, 256),
])
def test_file_key(free: int, key: int | None) -> None:
    assert file_key(free) == key


# -- hand-worked example -------------------------------------------------------
def test_hand_worked_filing_and_refiling() -> None:
    c = cluster(num_switch=2, nodes_per_switch=2, gpn=8)  # 4 nodes, 32 GPUs
    p = BuddyPlacer(c)
    # A: nothing filed -> new set S1 = node 0, util 4, free 4 -> class 4
    assert p.place("A", 4) == (0, 1, 2, 3)
    assert p.class_lists() == {4: [((0,), 4)]}
    # B: class 2 empty; step 2 reaches class 4 -> S1, util 6, free 2 -> class 2
    assert p.place("B", 2) == (4, 5)
    assert p.class_lists() == {2: [((0,), 6)]}
    # C: 12 GPUs -> new set S2 = nodes 1,2, util 12, free 4 -> class 4
    assert p.place("C", 12) == tuple(range(8, 20))
    # D: class 4 -> S2, now full: stays in the list of its last job (4)
    assert p.place("D", 4) == (20, 21, 22, 23)
    assert p.class_lists() == {2: [((0,), 6)], 4: [((1, 2), 16)]}
    # E: class 1 empty; class 4's head S2 is full (put back); class 2 -> S1, free 1
    assert p.place("E", 1) == (6,)
    assert p.class_lists() == {1: [((0,), 7)], 4: [((1, 2), 16)]}
    # F: class 2 empty, class 4 full -> new set S3 = node 3, free 6 -> class 2 (4 does not divide 6)
    assert p.place("F", 2) == (24, 25)
    assert p.class_lists() == {1: [((0,), 7)], 2: [((3,), 2)], 4: [((1, 2), 16)]}
    assert p.free_gpus() == 7
    # G: 4 GPUs: S3 has 6 free but is filed under 2; no free node left -> fragmentation
    before = p.class_lists()
    with pytest.raises(FragmentationError):
        p.place("G", 4)
    assert p.class_lists() == before and "G" not in p
    # release C: S2 util 4, free 12 -> class 12; D keeps its GPUs
    p.release("C")
    assert p.class_lists()[12] == [((1, 2), 4)]
    assert p.gpus_of("D") == (20, 21, 22, 23)
    # H: 8 GPUs: class 8 empty; step 2 reaches class 12 -> S2's lowest free GPUs
    assert p.place("H", 8) == tuple(range(8, 16))
    assert p.class_lists()[4] == [((1, 2), 12)]
    # I: 4 GPUs -> S2's remaining positions (16..19)
    assert p.place("I", 4) == (16, 17, 18, 19)
    # release A: S1 util 3 (B, E), free 5 -> class 1
    p.release("A")
    assert p.class_lists()[1] == [((0,), 3)]
    for k in ("B", "E", "F"):
        p.release(k)
    assert p.free_nodes() == (0, 3)
    # a 2-node job on non-adjacent free nodes gets those nodes' real GPUs
    assert p.place("J", 16) == (*range(0, 8), *range(24, 32))
    assert_consistent(c, p.placements())
    assert p.free_gpus() == 0


def test_class_list_sorted_by_util_stable() -> None:
    c = cluster(nodes_per_switch=4, gpn=8)
    p = BuddyPlacer(c)
    p.place("a", 4)                   # node 0, free 4 -> class 4
    p.place("b", 8)                   # node 1 full -> class 8
    p.place("c", 8)                   # node 2 full -> class 8
    p.place("d", 2)                   # class 4 head (node 0) -> util 6 -> class 2
    p.place("e", 1)                   # class 2 head -> node 0 util 7 -> class 1
    p.place("f", 1)                   # class 1 -> node 0 full, stays in class 1
    p.place("g", 1)                   # class 1 head full -> put back; class 8's head
    lists = p.class_lists()           # (node 1) full -> put back behind node 2; -> node 3
    assert lists[8] == [((2,), 8), ((1,), 8)]
    assert lists[1] == [((3,), 1), ((0,), 8)]   # sorted by util ascending
    assert p.gpus_of("g") == (24,)


def test_release_returns_nodes_sorted() -> None:
    c = cluster(nodes_per_switch=7, gpn=4)
    p = BuddyPlacer(c)
    for k, g in [("a", 4), ("b", 8), ("c", 4), ("d", 4), ("e", 2)]:
        p.place(k, g)  # a: node 0, b: 1-2, c: 3, d: 4, e: node 5
    assert p.free_nodes() == (6,)
    p.release("d")
    p.release("a")
    p.release("b")
    assert p.free_nodes() == (0, 1, 2, 4, 6)
    assert p.free_gpus() == 5 * 4 + 2
    # the next new set takes the front of the free list
    assert p.place("f", 8) == tuple(range(0, 8))
    p.reset()
    assert p.free_nodes() == tuple(range(7)) and p.free_gpus() == 28 and not p.placements()


def test_errors() -> None:
    p = BuddyPlacer(cluster())
    with pytest.raises(UnsupportedSizeError):
        p.place("x", 3)
    with pytest.raises(UnsupportedSizeError):
        p.place("x", 0)
    p.place("x", 8)
    with pytest.raises(PlacementError):
        p.place("x", 1)
    with pytest.raises(FragmentationError):
        p.place("y", 32)
    with pytest.raises(KeyError):
        p.release("nope")


def test_identical_sequences_give_identical_ids() -> None:
    c = cluster(num_switch=2, nodes_per_switch=4, gpn=8)
    items = [("a", 16), ("b", 4), ("c", 2), ("d", 8), ("e", 1), ("f", 12)]
    assert place_all(c, items) == place_all(c, items)
    # ids only depend on the sequence of sizes, not on the keys
    other = place_all(c, [(k.upper(), g) for k, g in items])
    assert list(other.values()) == list(place_all(c, items).values())


def test_shared_node_ids_follow_job_list_order() -> None:
    c = cluster(gpn=8)
    out = place_all(c, [("a", 2), ("b", 2), ("c", 4)])
    assert out == {"a": (0, 1), "b": (2, 3), "c": (4, 5, 6, 7)}


# -- orders --------------------------------------------------------------------
def test_ef_order() -> None:
    items = [("a", 1), ("b", 8), ("c", 2), ("d", 16), ("e", 4), ("f", 1), ("g", 8), ("h", 2)]
    assert ef_placement_order(items, 4) == [
        ("d", 16), ("b", 8), ("g", 8), ("e", 4), ("c", 2), ("h", 2), ("a", 1), ("f", 1)]
    with pytest.raises(ValueError):
        ef_placement_order([("x", 3)], 8)
    assert ef_placement_order([("x", 12)], 8) == [("x", 12)]


def test_gdesc_order_is_stable() -> None:
    items = [("a", 1), ("b", 8), ("c", 2), ("d", 8)]
    assert gdesc_placement_order(items) == [("b", 8), ("d", 8), ("c", 2), ("a", 1)]


# -- properties ----------------------------------------------------------------
POW2 = [k for k in CLASS_KEYS if k & (k - 1) == 0]


@st.composite
def pow2_workload(draw):
    gpn = draw(st.sampled_from([1, 2, 4, 8]))
    nodes = draw(st.integers(1, 40))
    c = ClusterSpec(name="h", num_switch=1, nodes_per_switch=nodes, gpus_per_node=gpn)
    sizes: list[int] = []
    budget = c.num_gpus
    for _ in range(draw(st.integers(0, 60))):
        fitting = [k for k in POW2 if k <= budget]
        if not fitting:
            break
        g = draw(st.sampled_from(fitting))
        sizes.append(g)
        budget -= g
    return c, sizes


@settings(max_examples=300, deadline=None)
@given(pow2_workload(), st.booleans())
def test_pow2_largest_first_always_fits(work, ef_order: bool) -> None:
    c, sizes = work
    items = [(i, g) for i, g in enumerate(sizes)]
    order = (ef_placement_order(items, c.gpus_per_node) if ef_order
             else gdesc_placement_order(items))
    out = place_all(c, order)
    assert len(out) == len(sizes)
    assert_consistent(c, out)
    for i, g in items:
        assert len(out[i]) == g
        if g >= c.gpus_per_node:  # multi-node jobs get whole, dedicated nodes
            nodes = {c.node_of(x) for x in out[i]}
            assert len(nodes) * c.gpus_per_node == g
            assert set(out[i]) == {x for n in nodes for x in c.gpus_of_node(n)}


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_random_place_release_never_double_books(data) -> None:
    gpn = data.draw(st.sampled_from([2, 4, 8]))
    c = cluster(num_switch=2, nodes_per_switch=data.draw(st.integers(1, 6)), gpn=gpn)
    p = BuddyPlacer(c)
    live: list[int] = []
    for step in range(data.draw(st.integers(1, 60))):
        if live and data.draw(st.booleans()):
            p.release(live.pop(data.draw(st.integers(0, len(live) - 1))))
        else:
            g = data.draw(st.sampled_from([k for k in CLASS_KEYS if k <= c.num_gpus]))
            before = p.free_gpus()
            try:
                ids = p.place(step, g)
            except FragmentationError:
                assert p.free_gpus() == before
                continue
            assert len(ids) == g
            assert p.free_gpus() == before - g
            live.append(step)
        placed = p.placements()
        assert_consistent(c, placed)
        assert p.free_gpus() == c.num_gpus - sum(len(v) for v in placed.values())


# -- first fit -----------------------------------------------------------------
def test_first_fit_prefers_one_node_best_fit() -> None:
    c = cluster(num_switch=2, nodes_per_switch=2, gpn=4)
    free = {0, 1, 2, 3, 6, 7, 9, 10, 11}  # node0: 4 free, node1: 2, node2: 3
    assert first_fit(c, free, 2) == (6, 7)
    assert first_fit(c, free, 3) == (9, 10, 11)
    assert first_fit(c, free, 4) == (0, 1, 2, 3)
    assert first_fit(c, free, 10) is None


def test_first_fit_prefers_one_switch_then_spreads() -> None:
    c = cluster(num_switch=2, nodes_per_switch=2, gpn=4)
    # switch 0: node0 full free, node1 1 free; switch 1: nodes 2, 3 fully free
    free = {0, 1, 2, 3, 4} | set(range(8, 16))
    assert first_fit(c, free, 8) == tuple(range(8, 16))
    assert first_fit(c, free, 5) == (0, 1, 2, 3, 4)  # switch 0 fits exactly; 2 nodes either way
    got = first_fit(c, free, 12)
    assert got is not None and len(got) == 12 and set(got) <= free
    assert {c.node_of(x) for x in got} >= {0, 2, 3}
    assert first_fit(c, free, 13) == tuple(sorted(free))


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.sampled_from([1, 2, 4, 8, 12, 16, 24, 32])),
                    min_size=1, max_size=40))
def test_a_failed_place_changes_nothing(ops: list[tuple[bool, int]]) -> None:
    """Placing tries several class lists and puts each set it cannot use back behind its
    equals; when nothing fits, every list, the free nodes and every job are as before."""
    p = BuddyPlacer(cluster(num_switch=1, nodes_per_switch=4, gpn=8))
    placed: list[str] = []
    failures = 0
    for n, (release, g) in enumerate(ops):
        if release and placed:
            p.release(placed.pop(len(placed) // 2))
            continue
        before = (p.class_lists(), p.free_nodes(), p.placements(), p.free_gpus())
        try:
            p.place(f"j{n}", g)
            placed.append(f"j{n}")
        except FragmentationError:
            failures += 1
            assert (p.class_lists(), p.free_nodes(), p.placements(), p.free_gpus()) == before


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.sampled_from((1, 1, 2, 2, 4, 4, 8, 12, 16, 24, 32, 3, 0)), max_size=60),
       nodes=st.integers(1, 12), gpn=st.sampled_from([4, 8]))
def test_place_all_equals_the_placer_step_by_step(sizes: list[int], nodes: int, gpn: int) -> None:
    """place_all (bare counters from an empty cluster) returns exactly what BuddyPlacer
    gives placing the same jobs one by one, ids and order, and fails exactly when it does
    (unsupported sizes, fragmentation), with the placer's error."""
    c = ClusterSpec(name="t", num_switch=1, nodes_per_switch=nodes, gpus_per_node=gpn)
    seq = [(f"j{i}", g) for i, g in enumerate(sizes)]
    placer = BuddyPlacer(c)
    try:
        for key, g in seq:
            placer.place(key, g)
    except PlacementError as e:
        with pytest.raises(type(e), match=str(e).split(":")[0]):
            place_all(c, seq)
        return
    got = place_all(c, seq)
    assert got == placer.placements() and list(got) == list(placer.placements())
    assert_consistent(c, got)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=st.sampled_from([1, 3, 64]))
def test_placement_memo_equals_placing_from_scratch(data, size: int) -> None:
    """The memo gives exactly what place_all gives, whether the sequence repeats, changes
    by one job, swaps two jobs (of equal or different sizes), renames a job or fails; a
    sequence of sizes placed within the last ``size`` successful new placements is
    answered from memory; the dict it returns is the caller's own."""
    c = cluster(num_switch=1, nodes_per_switch=4, gpn=8)
    memo = PlacementMemo(size=size)
    sizes = st.sampled_from([1, 2, 4, 8, 12, 16])
    seq: list[tuple[str, int]] = []
    remembered: list[tuple[int, ...]] = []  # size sequences the memo should hold
    expect_hits = 0
    for step in range(data.draw(st.integers(1, 14))):
        op = data.draw(st.sampled_from(["same", "add", "drop", "swap", "resize", "rename"]))
        if op == "add" or not seq:
            seq.insert(data.draw(st.integers(0, len(seq))), (f"j{step}", data.draw(sizes)))
        elif op == "drop":
            seq.pop(data.draw(st.integers(0, len(seq) - 1)))
        elif op == "swap" and len(seq) > 1:
            i = data.draw(st.integers(0, len(seq) - 2))
            seq[i], seq[i + 1] = seq[i + 1], seq[i]
        elif op == "resize":
            i = data.draw(st.integers(0, len(seq) - 1))
            seq[i] = (seq[i][0], data.draw(sizes))
        elif op == "rename":
            i = data.draw(st.integers(0, len(seq) - 1))
            seq[i] = (f"r{step}", seq[i][1])
        try:
            want = place_all(c, seq)
        except FragmentationError:
            with pytest.raises(FragmentationError):
                memo.place_all(c, seq)
            continue
        key = tuple(g for _, g in seq)
        if key in remembered:
            expect_hits += 1
        else:
            remembered = ([*remembered, key])[-size:]
        got = memo.place_all(c, list(seq))
        assert got == want and list(got) == list(want)
        got.clear()  # the caller may change its copy
    assert memo.hits == expect_hits


def test_placement_memo_hands_the_ids_to_other_jobs_of_the_same_sizes() -> None:
    c = cluster(nodes_per_switch=4)
    memo = PlacementMemo()
    first = [("a", 8), ("b", 4), ("c", 4), ("d", 1)]
    second = [("x", 8), ("c", 4), ("b", 4), ("y", 1)]
    assert memo.place_all(c, first) == place_all(c, first)
    assert memo.place_all(c, second) == place_all(c, second)
    assert memo.hits == 1
    assert place_all(c, second)["c"] == place_all(c, first)["b"]


def test_placement_memo_raises_like_place_all() -> None:
    c = cluster(nodes_per_switch=2)
    memo = PlacementMemo()
    assert memo.place_all(c, [("a", 8), ("b", 4)]) == place_all(c, [("a", 8), ("b", 4)])
    with pytest.raises(PlacementError, match="'a' is already placed"):
        memo.place_all(c, [("a", 8), ("a", 4)])  # a repeated key, same sizes as before
    with pytest.raises(UnsupportedSizeError, match="job 'b'"):
        memo.place_all(c, [("a", 8), ("b", 3)])
    with pytest.raises(FragmentationError, match="job 'c'"):
        memo.place_all(c, [("a", 8), ("b", 8), ("c", 1)])
    assert memo.hits == 0


def test_placement_memo_is_per_cluster() -> None:
    memo = PlacementMemo()
    small, big = cluster(nodes_per_switch=2), cluster(nodes_per_switch=4)
    seq = [("a", 8), ("b", 4)]
    assert memo.place_all(small, seq) == place_all(small, seq)
    assert memo.place_all(big, seq) == place_all(big, seq)
    assert memo.place_all(big, seq) == place_all(big, seq)
    assert memo.hits == 1
