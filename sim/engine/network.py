"""Flow-level network model (SimPy) and communication-slowdown models.

:class:`Network` moves data between endpoints: cluster nodes (``int`` ids) and named
extra endpoints (e.g. a task manager ``"manager"``). A transfer's duration is its
path latency plus its size over its rate, where concurrent flows share every link by
max-min fairness (progressive filling), recomputed whenever a flow starts or ends.

Topology (choices the engine relies on):

* Each node ``n`` has a ``node_switch`` link to its switch; each switch ``s`` has a
  ``switch_switch`` link to one core. Traffic between GPUs of one node uses that
  node's ``intra_node`` link. Node to node: ``intra`` if same node; up and down the
  two ``node_switch`` links if same switch; else also up and down the two switches'
  ``switch_switch`` links.
* **Extra endpoints attach to the core** (symmetric for every switch), through their
  own link class given by the caller. A node reaching ``"manager"`` therefore crosses
  its ``node_switch`` link, its switch's ``switch_switch`` link and the manager's
  link. The core exists even on a one-switch cluster (then only extra-endpoint
  traffic crosses ``switch_switch``).
* **Links are full duplex**: each direction (``"up"`` towards the core, ``"down"``
  away from it) is a separate link with the class's full bandwidth; ``intra_node``
  is one link per node.
* A **serial** link carries one flow at a time in FIFO order of :meth:`transfer`
  calls (TaskVine's 2023 manager sent environment packages strictly one after
  another). A flow waiting on a serial link uses no bandwidth anywhere. An extra
  endpoint declared serial makes both directions of its link serial (each direction
  its own queue).
* Timing: a flow transmits from the moment it is admitted (at once, or when it
  reaches the head of every serial queue on its path); after its last byte has
  been sent its event fires one path latency (sum of link latencies) later. A lone
  flow thus takes ``latency + size / bandwidth``. Serial queues advance when
  transmission ends, not when the data arrives.

Units: sizes in MB, bandwidths in MB/s, times in seconds (``env.now``).

Implementation: no process per flow and no per-byte events. Flows with the same path
always get the same max-min rate, so they are kept in *path groups* with a shared
"service" counter (MB delivered per flow since the group formed) and a heap of
per-flow targets; a single wake-up timeout (invalidated by a generation number) fires
at the next completion. Starts within one instant are coalesced into one rate
recomputation.

The communication models (:class:`NoComm`, :class:`AllReduceComm`) are pure
functions of a job's GPU placement; they do not use :class:`Network`.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import simpy
import yaml

from sim.errors import InputError
from sim.model.cluster import ClusterSpec, LinkSpec

#: A network endpoint: a node id, or the name of an extra endpoint.
Endpoint = int | str
#: A directed link: ``("intra_node", node)``, ``("node_switch", node, dir)``,
#: ``("switch_switch", switch, dir)`` or ``("endpoint", name, dir)`` with
#: ``dir`` in ``{"up", "down"}`` ("up" = towards the core).
LinkId = tuple[Any, ...]

_TIME_TOL_S = 1e-9  # flows due within this much time are completed together


@dataclass(frozen=True, slots=True)
class ExtraEndpoint:
    """An endpoint outside the cluster attached to the core.

    Attributes:
        link: its link class (bandwidth per direction, latency).
        serial: both directions carry one flow at a time, FIFO.
    """

    link: LinkSpec
    serial: bool = False


class Transfer(simpy.Event):
    """The event of one transfer; it succeeds with itself as value when the data has arrived.

    Attributes (times in seconds of ``env.now``):
        src, dst, size_MB, label: as requested.
        path: the directed links crossed.
        requested_s: when :meth:`Network.transfer` was called.
        started_s: when transmission began (later than ``requested_s`` if it
            queued on a serial link); ``None`` while queued.
        sent_s: when the last byte left; ``None`` before.
        arrived_s: ``sent_s`` + path latency; ``None`` before.
    """

    def __init__(self, env: simpy.Environment, seq: int, src: Endpoint, dst: Endpoint,
                 size_MB: float, label: str, path: tuple[_Link, ...], latency_s: float) -> None:
        super().__init__(env)
        self.seq = seq
        self.src = src
        self.dst = dst
        self.size_MB = size_MB
        self.label = label
        self.path: tuple[LinkId, ...] = tuple(link.id for link in path)
        self.latency_s = latency_s
        self.requested_s: float = env.now
        self.started_s: float | None = None
        self.sent_s: float | None = None
        self.arrived_s: float | None = None
        self._links = path
        self._blocked = 0  # serial queues in which this flow is not at the head
        self._group: _Group | None = None

    def __repr__(self) -> str:
        return (f"<Transfer #{self.seq} {self.label!r} {self.src}->{self.dst} "
                f"{self.size_MB} MB>")


class Network:
    """Flow-level network of one cluster plus extra endpoints (see module docstring).

    Args:
        env: the simulation environment.
        cluster: topology and link classes (``cluster.links`` must hold
            ``intra_node``, ``node_switch`` and ``switch_switch``).
        extra_endpoints: name -> :class:`LinkSpec` or :class:`ExtraEndpoint`.
        serial_links: further directed links to make serial (e.g. a node's uplink).
    """

    def __init__(
        self,
        env: simpy.Environment,
        cluster: ClusterSpec,
        *,
        extra_endpoints: Mapping[str, LinkSpec | ExtraEndpoint] | None = None,
        serial_links: Iterable[LinkId] = (),
    ) -> None:
        self.env = env
        self.cluster = cluster
        for cls in ("intra_node", "node_switch", "switch_switch"):
            if cls not in cluster.links:
                raise ValueError(f"cluster {cluster.name!r} has no {cls!r} link class")
        self._links: dict[LinkId, _Link] = {}
        for n in range(cluster.num_nodes):
            self._add(("intra_node", n), cluster.links["intra_node"], False)
            for d in ("up", "down"):
                self._add(("node_switch", n, d), cluster.links["node_switch"], False)
        for s in range(cluster.num_switch):
            for d in ("up", "down"):
                self._add(("switch_switch", s, d), cluster.links["switch_switch"], False)
        self._extra: dict[str, ExtraEndpoint] = {}
        for name, spec in (extra_endpoints or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"extra endpoint names must be non-empty strings, not {name!r}")
            ep = spec if isinstance(spec, ExtraEndpoint) else ExtraEndpoint(spec)
            self._extra[name] = ep
            for d in ("up", "down"):
                self._add(("endpoint", name, d), ep.link, ep.serial)
        for lid in serial_links:
            self._link(lid).make_serial()

        self._groups: dict[tuple[LinkId, ...], _Group] = {}
        self._busy: dict[_Link, None] = {}  # links with active flows, in first-use order
        self._seq = 0
        self._t = env.now          # time the group counters were last advanced to
        self._dirty = False        # rates are stale
        self._update_pending = False
        self._gen = 0              # generation of the current wake-up
        self._due: Transfer | None = None  # the flow the pending wake-up is for
        self._n_active = 0
        self._n_queued = 0

    # -- topology --------------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        """All endpoints: node ids ascending, then extra names in declaration order."""
        return [*range(self.cluster.num_nodes), *self._extra]

    def path(self, src: Endpoint, dst: Endpoint) -> list[LinkId]:
        """Directed links crossed from ``src`` to ``dst`` (``ValueError`` if unknown or equal extras)."""
        return [link.id for link in self._path(src, dst)]

    def link_spec(self, link_id: LinkId) -> LinkSpec:
        """Bandwidth and latency of one directed link."""
        return self._link(link_id).spec

    def is_serial(self, link_id: LinkId) -> bool:
        return self._link(link_id).serial

    def latency_s(self, src: Endpoint, dst: Endpoint) -> float:
        """One-way latency from ``src`` to ``dst``: sum of the link latencies on the path."""
        return sum(link.spec.latency_s for link in self._path(src, dst))

    def slowest_link(self, nodes: set[int]) -> LinkSpec | None:
        """Slowest link class crossed by a job spread across ``nodes``; see :func:`slowest_link`."""
        return slowest_link(self.cluster, nodes)

    # -- transfers -------------------------------------------------------------
    def transfer(self, src: Endpoint, dst: Endpoint, size_MB: float, *,
                 label: str = "") -> Transfer:
        """Start moving ``size_MB`` MB from ``src`` to ``dst`` now.

        Returns a :class:`Transfer` event that succeeds (value: the transfer) when
        the data has arrived. ``size_MB`` must be finite and >= 0; a zero-size
        transfer takes the path latency (after any serial queue).
        """
        try:
            size = float(size_MB)
        except (TypeError, ValueError):
            size = math.nan
        if not (math.isfinite(size) and size >= 0):
            raise ValueError(f"transfer {label!r}: size_MB must be finite and >= 0, not {size_MB!r}")
        links = self._path(src, dst)
        latency = sum(link.spec.latency_s for link in links)
        self._seq += 1
        flow = Transfer(self.env, self._seq, src, dst, size, label, links, latency)
        self._advance()
        for link in links:
            if link.queue is not None:
                link.queue.append(flow)
                if len(link.queue) > 1:
                    flow._blocked += 1
        if flow._blocked:
            self._n_queued += 1
        else:
            self._activate(flow)
            self._request_update()
        return flow

    def rate_of(self, flow: Transfer) -> float:
        """Current rate of ``flow`` in MB/s (0.0 while queued or after sending)."""
        if flow._group is None:
            return 0.0
        if self._dirty:
            self._advance()
            self._recompute()
        return flow._group.rate

    @property
    def active_transfers(self) -> int:
        """Flows currently transmitting."""
        return self._n_active

    @property
    def queued_transfers(self) -> int:
        """Flows waiting on a serial link."""
        return self._n_queued

    # -- internals: topology ----------------------------------------------------
    def _add(self, lid: LinkId, spec: LinkSpec, serial: bool) -> None:
        if not (spec.bandwidth_MBps > 0 and spec.latency_s >= 0):
            raise ValueError(f"link {lid}: bandwidth must be > 0 and latency >= 0, got {spec}")
        link = _Link(lid, spec, len(self._links))
        if serial:
            link.make_serial()
        self._links[lid] = link

    def _link(self, lid: LinkId) -> _Link:
        try:
            return self._links[tuple(lid)]
        except KeyError:
            raise ValueError(f"unknown link {lid!r}") from None

    def _check(self, ep: Endpoint) -> None:
        if isinstance(ep, str):
            if ep not in self._extra:
                raise ValueError(f"unknown endpoint {ep!r}; extra endpoints: {list(self._extra)}")
        elif isinstance(ep, bool) or not isinstance(ep, int) or not 0 <= ep < self.cluster.num_nodes:
            raise ValueError(f"unknown endpoint {ep!r}; nodes are 0..{self.cluster.num_nodes - 1}")

    def _up(self, ep: Endpoint) -> list[_Link]:
        """Links from ``ep`` up to the core."""
        L = self._links
        if isinstance(ep, str):
            return [L[("endpoint", ep, "up")]]
        s = self.cluster.switch_of_node(ep)
        return [L[("node_switch", ep, "up")], L[("switch_switch", s, "up")]]

    def _down(self, ep: Endpoint) -> list[_Link]:
        """Links from the core down to ``ep``."""
        L = self._links
        if isinstance(ep, str):
            return [L[("endpoint", ep, "down")]]
        s = self.cluster.switch_of_node(ep)
        return [L[("switch_switch", s, "down")], L[("node_switch", ep, "down")]]

    def _path(self, src: Endpoint, dst: Endpoint) -> tuple[_Link, ...]:
        self._check(src)
        self._check(dst)
        L = self._links
        if isinstance(src, int) and isinstance(dst, int):
            if src == dst:
                return (L[("intra_node", src)],)
            if self.cluster.switch_of_node(src) == self.cluster.switch_of_node(dst):
                return (L[("node_switch", src, "up")], L[("node_switch", dst, "down")])
        elif src == dst:
            raise ValueError(f"transfer from endpoint {src!r} to itself")
        return (*self._up(src), *self._down(dst))

    # -- internals: flow dynamics ------------------------------------------------
    def _advance(self) -> None:
        """Bring every group's service counter to ``env.now`` at the current rates."""
        now = self.env.now
        dt = now - self._t
        if dt > 0:
            for grp in self._groups.values():
                grp.served += grp.rate * dt
            self._t = now

    def _activate(self, flow: Transfer) -> None:
        key = flow.path
        grp = self._groups.get(key)
        if grp is None:
            grp = self._groups[key] = _Group(flow._links)
            for link in grp.links:
                link.groups[grp] = None
        heapq.heappush(grp.heap, (grp.served + flow.size_MB, flow.seq, flow))
        grp.n += 1
        for link in grp.links:
            if link.n == 0:
                self._busy[link] = None
            link.n += 1
        flow._group = grp
        flow.started_s = self.env.now
        self._n_active += 1
        self._dirty = True

    def _request_update(self) -> None:
        if not self._update_pending:
            self._update_pending = True
            self.env.timeout(0).callbacks.append(self._on_update)

    def _on_update(self, _event: simpy.Event) -> None:
        self._update_pending = False
        self._advance()
        if self._dirty:
            self._recompute()
        self._schedule_next()

    def _recompute(self) -> None:
        """Max-min fair rates by progressive filling over path groups.

        Repeatedly take the link whose remaining capacity per unfrozen flow is
        smallest; every unfrozen group crossing it is frozen at that level. A heap of
        (level, link) with version stamps finds the next bottleneck.
        """
        self._dirty = False
        groups = self._groups
        if not groups:
            return
        push, pop = heapq.heappush, heapq.heappop
        residual: dict[_Link, float] = {}
        count: dict[_Link, int] = {}
        version: dict[_Link, int] = {}
        heap: list[tuple[float, int, int, _Link]] = []
        for link in self._busy:
            residual[link] = link.bw
            count[link] = link.n
            version[link] = 0
            heap.append((link.bw / link.n, link.order, 0, link))
        heapq.heapify(heap)
        for grp in groups.values():
            grp.rate = -1.0  # unfrozen
        left = len(groups)
        while left:
            level, _, ver, link = pop(heap)
            if ver != version[link] or count[link] == 0:
                continue
            touched: dict[_Link, None] = {}
            for grp in link.groups:
                if grp.rate >= 0.0:
                    continue
                grp.rate = level
                left -= 1
                m = grp.n
                amount = m * level
                for other in grp.links:
                    residual[other] -= amount
                    count[other] -= m
                    touched[other] = None
            for other in touched:
                version[other] += 1
                c = count[other]
                if c > 0:
                    share = residual[other] / c
                    # rounding must not take a later level below this one
                    push(heap, (share if share > level else level, other.order,
                                version[other], other))

    def _schedule_next(self) -> None:
        best = math.inf
        due = None
        for grp in self._groups.values():
            dt = (grp.heap[0][0] - grp.served) / grp.rate
            if dt < best:
                best, due = dt, grp.heap[0][2]
        self._gen += 1
        self._due = due
        if due is not None:
            ev = self.env.timeout(max(best, 0.0))
            ev.callbacks.append(partial(self._on_wakeup, self._gen))

    def _on_wakeup(self, gen: int, _event: simpy.Event) -> None:
        if gen != self._gen:
            return  # superseded by a later schedule
        self._advance()
        done: list[Transfer] = []
        for grp in self._groups.values():
            heap = grp.heap
            while heap and (heap[0][0] - grp.served
                            <= grp.rate * _TIME_TOL_S + 1e-12 * abs(heap[0][0])):
                done.append(heapq.heappop(heap)[2])
        due = self._due
        if due is not None and due._group is not None:
            # the wake-up was computed for this flow: never let rounding postpone it
            heap = due._group.heap
            if heap and heap[0][2] is due:
                done.append(heapq.heappop(heap)[2])
        done.sort(key=lambda f: f.seq)
        for flow in done:
            self._finish(flow)
        self._dirty = True
        self._recompute()
        self._schedule_next()

    def _finish(self, flow: Transfer) -> None:
        """Transmission of ``flow`` ended now: free its links, admit queued flows, fire later."""
        grp = flow._group
        assert grp is not None
        flow._group = None
        self._n_active -= 1
        grp.n -= 1
        for link in grp.links:
            link.n -= 1
            if link.n == 0:
                del self._busy[link]
        if grp.n == 0:
            del self._groups[flow.path]
            for link in grp.links:
                del link.groups[grp]
        for link in flow._links:
            if link.queue is not None:
                head = link.queue.popleft()
                assert head is flow, "serial queue out of order"
                if link.queue:
                    nxt = link.queue[0]
                    nxt._blocked -= 1
                    if nxt._blocked == 0:
                        self._n_queued -= 1
                        self._activate(nxt)
        now = self.env.now
        flow.sent_s = now
        flow.arrived_s = now + flow.latency_s
        if flow.latency_s > 0:
            self.env.timeout(flow.latency_s).callbacks.append(partial(_arrive, flow))
        else:
            flow.succeed(flow)


def _arrive(flow: Transfer, _event: simpy.Event) -> None:
    flow.succeed(flow)


class _Link:
    """One directed link: capacity, active-flow count, path groups crossing it, FIFO if serial."""

    __slots__ = ("id", "spec", "bw", "order", "n", "groups", "queue", "serial")

    def __init__(self, lid: LinkId, spec: LinkSpec, order: int) -> None:
        self.id = lid
        self.spec = spec
        self.bw = float(spec.bandwidth_MBps)
        self.order = order  # creation index: deterministic heap tie-break
        self.n = 0
        self.groups: dict[_Group, None] = {}
        self.queue: deque[Transfer] | None = None
        self.serial = False

    def make_serial(self) -> None:
        self.serial = True
        self.queue = deque()


class _Group:
    """Active flows sharing one path; they always have the same max-min rate."""

    __slots__ = ("links", "n", "rate", "served", "heap")

    def __init__(self, links: tuple[_Link, ...]) -> None:
        self.links = links
        self.n = 0           # active flows (the heap may briefly hold fewer while finishing)
        self.rate = 0.0      # MB/s per flow
        self.served = 0.0    # MB delivered per flow since the group formed
        self.heap: list[tuple[float, int, Transfer]] = []  # (served target, seq, flow)


# -- topology helpers used by the communication models --------------------------
def slowest_link(cluster: ClusterSpec, nodes: set[int]) -> LinkSpec | None:
    """Slowest link class crossed by a job spread across ``nodes``.

    ``None`` for at most one node; ``node_switch`` when every node is on one switch;
    across switches, the lower-bandwidth class of ``node_switch`` and
    ``switch_switch`` (``switch_switch`` on a tie). With the default links
    (100 Gb/s node uplinks, 400 Gb/s core) that is still ``node_switch``: spreading
    over switches then only adds latency (see :func:`hop_latency_s`).
    """
    if len(nodes) <= 1:
        return None
    ns = cluster.links["node_switch"]
    if len({cluster.switch_of_node(n) for n in nodes}) == 1:
        return ns
    ss = cluster.links["switch_switch"]
    return ss if ss.bandwidth_MBps <= ns.bandwidth_MBps else ns


def hop_latency_s(cluster: ClusterSpec, nodes: set[int]) -> float:
    """One-way latency of the longest hop between two of ``nodes`` (seconds).

    ``intra_node`` for one node; two ``node_switch`` hops on one switch; plus two
    ``switch_switch`` hops across switches.
    """
    links = cluster.links
    if len(nodes) <= 1:
        return links["intra_node"].latency_s
    lat = 2 * links["node_switch"].latency_s
    if len({cluster.switch_of_node(n) for n in nodes}) > 1:
        lat += 2 * links["switch_switch"].latency_s
    return lat


# -- communication models ------------------------------------------------------
class CommModel(Protocol):
    """Slowdown of a data-parallel job from its placement.

    ``rate_factor(model, rate, gpus, cluster)`` returns the factor in (0, 1] by which
    the job's iterations/s ``rate`` (from the throughput table, measured inside one
    node) is multiplied when it runs on the global GPU ids ``gpus``.
    """

    def rate_factor(self, model: str, rate: float, gpus: tuple[int, ...],
                    cluster: ClusterSpec) -> float: ...


class NoComm:
    """No communication penalty: placement never changes speed (artifact behaviour, 9.1)."""

    def rate_factor(self, model: str, rate: float, gpus: tuple[int, ...],
                    cluster: ClusterSpec) -> float:
        return 1.0


class AllReduceComm:
    """Ring all-reduce penalty for jobs spread over more than one node.

    Per iteration each GPU sends ``V = 2 (g - 1) / g * size_MB`` MB. The throughput
    table already includes that traffic at ``intra_node`` speed, so only the
    topology penalty is added::

        extra = V / bw(slowest link) - V / bw(intra_node)
                + 2 (g - 1) * (hop latency - intra_node latency)   # if include_latency
        factor = t / (t + extra),   t = 1 / rate

    The latency term (one latency per ring step, 2(g - 1) steps) is an addition to
    the bandwidth-only formula; it is what makes a job spread across switches slower
    than one on a single switch when the core is not the bandwidth bottleneck.
    Pass ``include_latency=False`` for the bandwidth-only form.

    Args:
        model_size_MB: gradient size per model name (see :func:`load_model_sizes`).
        default_MB: size for models not in the map.
    """

    def __init__(self, model_size_MB: Mapping[str, float], default_MB: float, *,
                 include_latency: bool = True) -> None:
        if default_MB < 0 or any(v < 0 for v in model_size_MB.values()):
            raise ValueError("model sizes must be >= 0 MB")
        self.model_size_MB = dict(model_size_MB)
        self.default_MB = float(default_MB)
        self.include_latency = include_latency

    def extra_s(self, model: str, gpus: tuple[int, ...], cluster: ClusterSpec) -> float:
        """Added seconds per iteration for ``model`` on ``gpus`` (0.0 on one node)."""
        nodes = {cluster.node_of(x) for x in gpus}
        slow = slowest_link(cluster, nodes)
        if slow is None:
            return 0.0
        g = len(gpus)
        intra = cluster.links["intra_node"]
        volume = 2.0 * (g - 1) / g * self.model_size_MB.get(model, self.default_MB)
        extra = volume / slow.bandwidth_MBps - volume / intra.bandwidth_MBps
        if self.include_latency:
            extra += 2 * (g - 1) * (hop_latency_s(cluster, nodes) - intra.latency_s)
        return max(extra, 0.0)

    def rate_factor(self, model: str, rate: float, gpus: tuple[int, ...],
                    cluster: ClusterSpec) -> float:
        if rate <= 0:
            return 1.0
        t = 1.0 / rate
        return t / (t + self.extra_s(model, gpus, cluster))


def load_model_sizes(path: str | Path | None = None) -> dict[str, float]:
    """Gradient sizes in MB by model name, from ``sim/data/model_sizes.yaml`` or ``path``.

    The file is a mapping ``model: MB``. Raises :class:`InputError` naming the file
    and key for a non-mapping or a value that is not a number >= 0.
    """
    if path is None:
        res = resources.files("sim") / "data" / "model_sizes.yaml"
        text, where = res.read_text(), "sim/data/model_sizes.yaml"
    else:
        try:
            text, where = Path(path).read_text(), str(path)
        except OSError as e:
            raise InputError(f"cannot read model sizes: {e}", file=path) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {e}", file=where) from e
    if not isinstance(data, dict):
        raise InputError("expected a mapping of model name to MB", file=where)
    out: dict[str, float] = {}
    for key, val in data.items():
        if isinstance(val, bool) or not isinstance(val, int | float) or not val >= 0:
            raise InputError(f"size must be a number >= 0 (MB), got {val!r}", file=where,
                             field=str(key))
        out[str(key)] = float(val)
    return out
