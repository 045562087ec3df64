"""Tests for sim.engine.network: max-min flow sharing, serial links, comm models."""

from __future__ import annotations

import random
import time

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine.network import (
    AllReduceComm,
    ExtraEndpoint,
    Network,
    NoComm,
    load_model_sizes,
    slowest_link,
)
from sim.errors import InputError
from sim.model.cluster import DEFAULT_LINKS, ClusterSpec, LinkSpec

FAST = LinkSpec(bandwidth_MBps=1000.0)
SLOW = LinkSpec(bandwidth_MBps=100.0)


def spec(intra=FAST, ns=SLOW, ss=FAST, num_switch=2, nodes_per_switch=2,
         gpn=4) -> ClusterSpec:
    return ClusterSpec(name="t", num_switch=num_switch, nodes_per_switch=nodes_per_switch,
                       gpus_per_node=gpn,
                       links={"intra_node": intra, "node_switch": ns, "switch_switch": ss})


def run_transfers(net: Network, env: simpy.Environment, reqs) -> list:
    """Start (src, dst, MB) requests at t=0 and run to completion; return the events."""
    evs = [net.transfer(s, d, mb, label=str(i)) for i, (s, d, mb) in enumerate(reqs)]
    env.run()
    assert all(e.processed for e in evs)
    return evs


def test_path_topology() -> None:
    env = simpy.Environment()
    net = Network(env, spec(), extra_endpoints={"manager": LinkSpec(50.0)})
    assert net.path(1, 1) == [("intra_node", 1)]
    assert net.path(0, 1) == [("node_switch", 0, "up"), ("node_switch", 1, "down")]
    assert net.path(1, 2) == [("node_switch", 1, "up"), ("switch_switch", 0, "up"),
                              ("switch_switch", 1, "down"), ("node_switch", 2, "down")]
    assert net.path("manager", 3) == [("endpoint", "manager", "up"),
                                      ("switch_switch", 1, "down"), ("node_switch", 3, "down")]
    assert net.path(0, "manager") == [("node_switch", 0, "up"), ("switch_switch", 0, "up"),
                                      ("endpoint", "manager", "down")]
    assert net.endpoints() == [0, 1, 2, 3, "manager"]
    for bad in (4, -1, "nope", True):
        with pytest.raises(ValueError):
            net.path(0, bad)
    with pytest.raises(ValueError):
        net.transfer("manager", "manager", 1.0)
    with pytest.raises(ValueError):
        net.transfer(0, 1, -1.0)


def test_single_flow_latency_plus_size_over_bw() -> None:
    env = simpy.Environment()
    c = spec(ns=LinkSpec(100.0, latency_s=0.001))
    net = Network(env, c)
    (ev,) = run_transfers(net, env, [(0, 1, 50.0)])
    assert ev.arrived_s == pytest.approx(0.502)
    assert ev.sent_s == pytest.approx(0.5)
    assert env.now == pytest.approx(0.502)
    assert ev.value is ev and ev.started_s == 0.0


def test_intra_node_uses_intra_bandwidth() -> None:
    env = simpy.Environment()
    net = Network(env, spec(intra=LinkSpec(2000.0, latency_s=0.01)))
    (ev,) = run_transfers(net, env, [(3, 3, 100.0)])
    assert ev.arrived_s == pytest.approx(0.01 + 0.05)
    assert net.path(3, 3) == [("intra_node", 3)]


def test_zero_size_takes_latency() -> None:
    env = simpy.Environment()
    net = Network(env, spec(ns=LinkSpec(100.0, latency_s=0.25)))
    (ev,) = run_transfers(net, env, [(0, 1, 0.0)])
    assert ev.arrived_s == pytest.approx(0.5)


def test_two_flows_share_a_link() -> None:
    env = simpy.Environment()
    net = Network(env, spec())
    a = net.transfer(0, 1, 100.0)
    b = net.transfer(0, 1, 100.0)
    env.run(until=0.5)
    assert net.rate_of(a) == pytest.approx(50.0) and net.rate_of(b) == pytest.approx(50.0)
    env.run()
    assert a.arrived_s == pytest.approx(2.0) and b.arrived_s == pytest.approx(2.0)


def _three_flow_net() -> tuple[simpy.Environment, Network]:
    env = simpy.Environment()
    c = spec(ns=FAST)
    net = Network(env, c, extra_endpoints={"a": LinkSpec(100.0), "b": LinkSpec(60.0)})
    return env, net


def test_max_min_three_flows_two_links() -> None:
    # f1: a->0 and f2: a->b share a's uplink (100); f2 and f3: 1->b share b's downlink (60).
    # b's downlink is the bottleneck: f2 = f3 = 30; f1 takes the rest of a's uplink: 70.
    env, net = _three_flow_net()
    f1 = net.transfer("a", 0, 1000.0)
    f2 = net.transfer("a", "b", 1000.0)
    f3 = net.transfer(1, "b", 1000.0)
    env.run(until=0.1)
    assert [net.rate_of(f) for f in (f1, f2, f3)] == pytest.approx([70.0, 30.0, 30.0])


def test_early_finish_frees_bandwidth() -> None:
    # rates 70/30/30 as above; f2 (30 MB) ends at t=1. Then f1 (70 MB left) runs alone on
    # a's uplink at 100 -> 1.7; f3 (30 MB left) alone on b's downlink at 60 -> 1.5.
    env, net = _three_flow_net()
    f1, f2, f3 = run_transfers(net, env, [("a", 0, 140.0), ("a", "b", 30.0), (1, "b", 60.0)])
    assert f2.arrived_s == pytest.approx(1.0)
    assert f3.arrived_s == pytest.approx(1.5)
    assert f1.arrived_s == pytest.approx(1.7)


def test_short_flow_leaves_then_long_speeds_up() -> None:
    env = simpy.Environment()
    net = Network(env, spec())
    short, long_ = run_transfers(net, env, [(0, 1, 50.0), (0, 1, 150.0)])
    assert short.arrived_s == pytest.approx(1.0)
    assert long_.arrived_s == pytest.approx(2.0)


def test_late_arrival_shares_from_its_start() -> None:
    env = simpy.Environment()
    net = Network(env, spec())
    out = {}

    def late():
        yield env.timeout(0.5)
        out["b"] = net.transfer(0, 1, 25.0)

    a = net.transfer(0, 1, 100.0)
    env.process(late())
    env.run()
    # a alone until 0.5 (50 MB); both at 50 MB/s until b's 25 MB are done at 1.0;
    # a then has 25 MB left alone -> 1.25
    assert out["b"].arrived_s == pytest.approx(1.0)
    assert a.arrived_s == pytest.approx(1.25)


def test_serial_link_is_fifo_one_at_a_time() -> None:
    env = simpy.Environment()
    c = spec(ns=FAST)
    net = Network(env, c, extra_endpoints={
        "manager": ExtraEndpoint(LinkSpec(100.0, latency_s=0.01), serial=True)})
    assert net.is_serial(("endpoint", "manager", "up"))
    sends = [net.transfer("manager", n, 100.0, label=f"pkg{n}") for n in (2, 0, 1)]
    back = net.transfer(3, "manager", 50.0)  # other direction: its own queue
    env.run(until=0.2)
    assert net.active_transfers == 2 and net.queued_transfers == 2
    assert net.rate_of(sends[0]) == pytest.approx(100.0) and net.rate_of(sends[1]) == 0.0
    env.run()
    assert [s.started_s for s in sends] == pytest.approx([0.0, 1.0, 2.0])
    assert [s.sent_s for s in sends] == pytest.approx([1.0, 2.0, 3.0])
    # latency: endpoint 0.01 + switch_switch 0 + node_switch 0
    assert [s.arrived_s for s in sends] == pytest.approx([1.01, 2.01, 3.01])
    assert back.arrived_s == pytest.approx(0.51)


def test_serial_links_argument() -> None:
    env = simpy.Environment()
    net = Network(env, spec(), serial_links=[("node_switch", 0, "up")])
    a, b = run_transfers(net, env, [(0, 1, 100.0), (0, 2, 100.0)])
    assert a.arrived_s == pytest.approx(1.0) and b.arrived_s == pytest.approx(2.0)


def test_full_duplex() -> None:
    env = simpy.Environment()
    net = Network(env, spec())
    a, b = run_transfers(net, env, [(0, 1, 100.0), (1, 0, 100.0)])
    assert a.arrived_s == pytest.approx(1.0) and b.arrived_s == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 500.0), min_size=1, max_size=12))
def test_processor_sharing_on_one_link(sizes: list[float]) -> None:
    env = simpy.Environment()
    net = Network(env, spec())
    evs = run_transfers(net, env, [(0, 1, s) for s in sizes])
    # n flows sharing 100 MB/s from t=0: the k-th smallest ends after the gaps between
    # consecutive sizes, each served with the flows still present.
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    t, prev = 0.0, 0.0
    for k, i in enumerate(order):
        t += (sizes[i] - prev) * (len(sizes) - k) / 100.0
        prev = sizes[i]
        assert evs[i].arrived_s == pytest.approx(t, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_rates_are_max_min_fair(data) -> None:
    env = simpy.Environment()
    c = spec(ns=LinkSpec(100.0), ss=LinkSpec(150.0), num_switch=2, nodes_per_switch=3)
    extra = {"m": LinkSpec(80.0), "s": LinkSpec(120.0)}
    net = Network(env, c, extra_endpoints=extra)
    eps = net.endpoints()
    flows = []
    for _ in range(data.draw(st.integers(1, 25))):
        src = data.draw(st.sampled_from(eps))
        dst = data.draw(st.sampled_from([e for e in eps if e != src or isinstance(e, int)]))
        flows.append(net.transfer(src, dst, 1e6))
    env.run(until=1e-3)
    load: dict = {}
    for f in flows:
        for lid in f.path:
            load.setdefault(lid, []).append(net.rate_of(f))
    for lid, rates in load.items():
        assert sum(rates) <= net.link_spec(lid).bandwidth_MBps * (1 + 1e-9)
    # every flow has a bottleneck: a saturated link on which no flow is faster
    for f in flows:
        r = net.rate_of(f)
        assert r > 0
        assert any(
            sum(load[lid]) >= net.link_spec(lid).bandwidth_MBps * (1 - 1e-9)
            and max(load[lid]) <= r * (1 + 1e-9)
            for lid in f.path)


def _reference_times(caps: dict, flows: list[tuple[float, list, float]]) -> list[float]:
    """Naive per-flow max-min simulation: flows are (start_s, links, size_MB)."""
    left = {i: f[2] for i, f in enumerate(flows)}
    end = [0.0] * len(flows)
    t = 0.0
    while left:
        active = [i for i in left if flows[i][0] <= t + 1e-12]
        rate: dict[int, float] = {}
        res = dict(caps)
        while len(rate) < len(active):
            todo = [i for i in active if i not in rate]
            lvl, link = min((res[lid] / sum(1 for i in todo if lid in flows[i][1]), lid)
                            for i in todo for lid in flows[i][1])
            for i in todo:
                if link in flows[i][1]:
                    rate[i] = lvl
                    for lid in flows[i][1]:
                        res[lid] -= lvl
        nxt = min([flows[i][0] for i in left if flows[i][0] > t + 1e-12]
                  + [t + left[i] / rate[i] for i in active])
        for i in active:
            left[i] -= rate[i] * (nxt - t)
            if left[i] <= 1e-9:
                del left[i]
                end[i] = nxt
        t = nxt
    return end


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_matches_naive_reference(data) -> None:
    env = simpy.Environment()
    c = spec(ns=LinkSpec(100.0), ss=LinkSpec(150.0), num_switch=2, nodes_per_switch=2)
    net = Network(env, c, extra_endpoints={"m": LinkSpec(80.0)})
    eps = net.endpoints()
    reqs = []
    for _ in range(data.draw(st.integers(1, 12))):
        src = data.draw(st.sampled_from(eps))
        dst = data.draw(st.sampled_from([e for e in eps if e != src or isinstance(e, int)]))
        start = data.draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.7]))
        reqs.append((start, src, dst, data.draw(st.floats(0.0, 200.0))))
    evs: list = [None] * len(reqs)

    def starter(i, start, src, dst, mb):
        yield env.timeout(start)
        evs[i] = net.transfer(src, dst, mb)

    for i, r in enumerate(reqs):
        env.process(starter(i, *r))
    env.run()
    caps = {lid: net.link_spec(lid).bandwidth_MBps
            for s in eps for d in eps if s != d or isinstance(s, int) for lid in net.path(s, d)}
    want = _reference_times(caps, [(st_, net.path(s, d), mb) for st_, s, d, mb in reqs])
    assert [e.arrived_s for e in evs] == pytest.approx(want, rel=1e-7, abs=1e-7)


def test_many_transfers_are_fast() -> None:
    env = simpy.Environment()
    c = ClusterSpec(name="n16g8", num_switch=2, nodes_per_switch=8, gpus_per_node=8)
    net = Network(env, c, extra_endpoints={"manager": LinkSpec(1250.0, 1e-4)})
    rng = random.Random(7)
    eps = net.endpoints()
    peak = [0]
    done = [0]

    def source():
        for i in range(10_000):
            yield env.timeout(rng.expovariate(400.0))
            src, dst = rng.sample(eps, 2)
            ev = net.transfer(src, dst, rng.uniform(1.0, 120.0), label=str(i))
            ev.callbacks.append(lambda _e: done.__setitem__(0, done[0] + 1))
            peak[0] = max(peak[0], net.active_transfers + net.queued_transfers)

    env.process(source())
    t0 = time.perf_counter()
    env.run()
    elapsed = time.perf_counter() - t0
    assert done[0] == 10_000
    assert peak[0] >= 100
    assert elapsed < 15.0, f"{elapsed:.1f} s (peak {peak[0]} concurrent)"


# -- topology helper and communication models -----------------------------------
def test_slowest_link() -> None:
    c = ClusterSpec(name="d", num_switch=2, nodes_per_switch=2, gpus_per_node=4)
    assert slowest_link(c, {1}) is None and slowest_link(c, set()) is None
    assert slowest_link(c, {0, 1}) == DEFAULT_LINKS["node_switch"]
    assert slowest_link(c, {0, 2}) == DEFAULT_LINKS["node_switch"]  # core is faster
    slow_core = spec(ns=LinkSpec(100.0), ss=LinkSpec(40.0))
    assert slowest_link(slow_core, {0, 2}) == LinkSpec(40.0)
    assert slowest_link(slow_core, {0, 1}) == LinkSpec(100.0)
    env = simpy.Environment()
    assert Network(env, slow_core).slowest_link({0, 3}) == LinkSpec(40.0)


def test_allreduce_factors() -> None:
    c = ClusterSpec(name="d", num_switch=2, nodes_per_switch=2, gpus_per_node=4)
    comm = AllReduceComm({"m": 100.0}, default_MB=50.0)
    one_node = (0, 1, 2, 3)
    one_switch = (0, 1, 2, 3, 4, 5, 6, 7)      # nodes 0, 1 on switch 0
    two_switches = (0, 1, 2, 3, 8, 9, 10, 11)  # nodes 0, 2
    assert comm.rate_factor("m", 10.0, one_node, c) == 1.0
    f_sw = comm.rate_factor("m", 10.0, one_switch, c)
    f_x = comm.rate_factor("m", 10.0, two_switches, c)
    assert f_x < f_sw < 1.0
    # bandwidth-only form, by hand: V = 2*7/8*100 = 175 MB
    bw_only = AllReduceComm({"m": 100.0}, default_MB=50.0, include_latency=False)
    extra = 175.0 / 12_500.0 - 175.0 / 300_000.0
    assert bw_only.rate_factor("m", 10.0, one_switch, c) == pytest.approx(0.1 / (0.1 + extra))
    # unknown model -> default size (smaller -> milder)
    assert comm.rate_factor("other", 10.0, one_switch, c) > f_sw
    # an oversubscribed core makes the cross-switch penalty much larger
    oc = spec(ns=LinkSpec(12_500.0), ss=LinkSpec(3_000.0), intra=LinkSpec(300_000.0))
    assert comm.rate_factor("m", 10.0, two_switches, oc) < 0.5 * comm.rate_factor(
        "m", 10.0, one_switch, oc) + 0.5
    assert comm.rate_factor("m", 10.0, two_switches, oc) < comm.rate_factor(
        "m", 10.0, one_switch, oc)
    assert NoComm().rate_factor("m", 10.0, two_switches, c) == 1.0


def test_model_sizes_file() -> None:
    sizes = load_model_sizes()
    for m in ("resnet50", "vgg16", "inception3", "gpt2", "bert", "deepspeech2",
              "resnet50_cifar10", "cifar10", "imagenet", "ncf", "yolov3"):
        assert sizes[m] > 0
    assert sizes["vgg16"] > sizes["resnet50"]


def test_model_sizes_bad_file(tmp_path) -> None:
    p = tmp_path / "sizes.yaml"
    p.write_text("resnet50: -3\n")
    with pytest.raises(InputError, match="resnet50"):
        load_model_sizes(p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(InputError):
        load_model_sizes(p)
