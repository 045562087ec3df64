"""Cluster descriptions: switches, nodes, GPUs, cores, memory and links.

Nodes are numbered switch-major (node ``n`` sits on switch ``n // nodes_per_switch``);
GPUs have global ids ``node * gpus_per_node + local``. Loaders for the
ElasticFlow CSV form and the richer YAML form live in :mod:`sim.model.cluster_io`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One class of network link: bandwidth in MB/s and one-way latency in seconds."""

    bandwidth_MBps: float
    latency_s: float = 0.0


#: Defaults for the network when a spec does not name its links: NVLink-class inside
#: a node, 100 Gb/s node uplinks, 400 Gb/s between switches. Only used by the
#: network/communication models, which the artifact preset switches off.
DEFAULT_LINKS = {
    "intra_node": LinkSpec(bandwidth_MBps=300_000.0, latency_s=2e-6),
    "node_switch": LinkSpec(bandwidth_MBps=12_500.0, latency_s=5e-6),
    "switch_switch": LinkSpec(bandwidth_MBps=50_000.0, latency_s=1e-5),
}


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A homogeneous GPU cluster.

    Attributes:
        name: label (file stem, e.g. ``n16g8``).
        num_switch, nodes_per_switch, gpus_per_node: topology.
        cores_per_node, memory_GB_per_node: per-node CPU resources.
        gpu_type: throughput-table family (``A100`` or ``T4``); ``None`` = not stated.
        links: link classes ``intra_node``, ``node_switch``, ``switch_switch``.
        source: file it was read from.
    """

    name: str
    num_switch: int
    nodes_per_switch: int
    gpus_per_node: int
    cores_per_node: int = 64
    memory_GB_per_node: float = 256.0
    gpu_type: str | None = None
    links: dict[str, LinkSpec] = field(default_factory=lambda: dict(DEFAULT_LINKS))
    source: str = ""

    @property
    def num_nodes(self) -> int:
        return self.num_switch * self.nodes_per_switch

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    def node_of(self, gpu: int) -> int:
        return gpu // self.gpus_per_node

    def switch_of_node(self, node: int) -> int:
        return node // self.nodes_per_switch

    def gpus_of_node(self, node: int) -> range:
        g = self.gpus_per_node
        return range(node * g, (node + 1) * g)
