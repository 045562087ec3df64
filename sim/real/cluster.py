"""Dask workers for real mode: a LocalCluster started by the run, or an existing scheduler.

Every modelled node is one Dask worker. A worker of node ``k`` advertises
``GPU=g`` (its GPUs), ``node<k>=g`` and ``cpu<k>=c`` (its CPU-task slots); the
executor pins a job segment to node ``k`` by asking for ``node<k>`` GPUs and a
CPU task by asking for ``cpu<k>`` slots. Resources, unlike addresses, survive a
worker restart: the nanny brings a killed worker back with the same ones, and
work pinned to its node waits for it.

An existing cluster should start its workers the same way, e.g.
``dask worker tcp://host:8786 --nthreads 6 --resources "GPU=4,node0=4,cpu0=2"``.
If its workers advertise only ``GPU``, nodes are mapped to the first GPU workers
by name and pinned by address (a worker that dies does not come back then).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sim.errors import InputError
from sim.model.cluster import ClusterSpec


@dataclass
class Workers:
    """A connected client plus how to pin work to each modelled node."""

    client: Any
    gpu_pins: list[dict[str, Any]]  # node -> submit kwargs for a job segment (minus GPU count)
    cpu_pins: list[dict[str, Any]]
    by_resource: bool
    cpu_slots: int
    owned: Any = None  # the SpecCluster we started, closed with us
    notes: list[str] = field(default_factory=list)

    def segment_kwargs(self, node: int, gpus: int) -> dict[str, Any]:
        kw = dict(self.gpu_pins[node])
        if self.by_resource:
            kw["resources"] = {f"node{node}": gpus}
        else:
            kw["resources"] = {"GPU": gpus}
        return kw

    def launch(self, name: str, nthreads: int, resources: dict[str, float]) -> None:
        """Start one more worker process, ``name``, with these resources (returns at once;
        the worker joins the scheduler when its process has started, like a batch job).

        Raises:
            InputError (field ``--scheduler``): the workers belong to an existing
                cluster, which this run cannot grow.
        """
        from distributed import Nanny

        if self.owned is None:
            raise InputError("this run starts worker processes as it goes (task workers, "
                             "pools): it needs its own LocalCluster, not --scheduler",
                             field="--scheduler")
        self.owned.worker_spec[name] = {"cls": Nanny, "options": {
            "nthreads": nthreads, "resources": dict(resources), "host": "127.0.0.1",
            "silence_logs": logging.ERROR}}
        self.owned.scale(len(self.owned.worker_spec))  # launches what the spec lacks

    def joined(self) -> set[str]:
        """Names of the workers connected to the scheduler now."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {str(w.get("name", a)) for a, w in info.items()}

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.owned is not None:
                self.owned.close()


def connect(cluster: ClusterSpec, *, scheduler: str | None = None, cpu_slots: int = 1,
            timeout_s: float = 5.0) -> Workers:
    """Start (or reach) one Dask worker per node of ``cluster``.

    Raises:
        InputError (field ``--scheduler``): the scheduler cannot be reached within
            ``timeout_s``, or it has too few workers with GPUs.
    """
    if scheduler is not None:
        w = _existing(cluster, scheduler, cpu_slots, timeout_s)
    else:
        w = _local(cluster, cpu_slots)
    # import the trainer once per worker now, not inside the first job's start-up time
    w.client.run(importlib.import_module, "sim.real.trainer")
    return w


def _local(cluster: ClusterSpec, cpu_slots: int) -> Workers:
    import dask
    from distributed import Client, Nanny, Scheduler, SpecCluster

    g = cluster.gpus_per_node
    workers = {
        f"node{k}": {"cls": Nanny, "options": {
            # one thread per GPU (a segment each) plus the CPU-task slots
            "nthreads": g + cpu_slots,
            "resources": {"GPU": g, f"node{k}": g, "CPU": cpu_slots, f"cpu{k}": cpu_slots},
            "host": "127.0.0.1", "silence_logs": logging.ERROR,
        }}
        for k in range(cluster.num_nodes)
    }
    sched = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": ":0"}}
    # allowed-failures 0: a segment on a worker that dies fails at once (KilledWorker)
    # and the executor restarts it from its checkpoint, logging the failure, instead of
    # Dask rerunning it silently.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.work-stealing": False}):
        spec = SpecCluster(workers=workers, scheduler=sched, silence_logs=logging.ERROR,
                           name="clustersim-real")
    try:
        client = Client(spec)
        if cluster.num_nodes:  # none: task workers are launched as the run goes
            client.wait_for_workers(cluster.num_nodes, timeout=60)
    except BaseException:
        spec.close()
        raise
    pins: list[dict[str, Any]] = [{"allow_other_workers": False}] * cluster.num_nodes
    return Workers(client, pins, list(pins), True, cpu_slots, owned=spec)


def _existing(cluster: ClusterSpec, address: str, cpu_slots: int, timeout_s: float) -> Workers:
    from distributed import Client

    try:
        client = Client(address, timeout=f"{timeout_s}s")
    except Exception as e:  # OSError, TimeoutError, ValueError for a malformed address
        raise InputError(f"cannot reach Dask scheduler {address!r} within {timeout_s:g} s: "
                         f"{type(e).__name__}: {e}", field="--scheduler") from None
    try:
        return _map_nodes(client, cluster, address, cpu_slots, timeout_s)
    except BaseException:
        client.close()
        raise


def _map_nodes(client: Any, cluster: ClusterSpec, address: str, cpu_slots: int,
               timeout_s: float) -> Workers:
    n, g = cluster.num_nodes, cluster.gpus_per_node
    with contextlib.suppress(TimeoutError):  # too few: reported below with what is there
        client.wait_for_workers(n, timeout=timeout_s)
    info = client.scheduler_info(n_workers=-1)["workers"]
    res = {addr: w.get("resources", {}) for addr, w in info.items()}
    if all(any(r.get(f"node{k}", 0) >= g for r in res.values()) for k in range(n)):
        pins: list[dict[str, Any]] = [{"allow_other_workers": False}] * n
        return Workers(client, pins, list(pins), True, cpu_slots)
    gpu_workers = sorted((str(info[a].get("name", a)), a) for a, r in res.items()
                         if r.get("GPU", 0) >= g)
    if len(gpu_workers) < n:
        raise InputError(
            f"the cluster needs {n} Dask workers with resource GPU>={g} (or node0..node{n - 1}); "
            f"scheduler {address} has {len(gpu_workers)} (of {len(info)} workers)",
            field="--scheduler")
    pins = [{"workers": [a], "allow_other_workers": False} for _, a in gpu_workers[:n]]
    return Workers(client, pins, list(pins), False, cpu_slots,
                   notes=["workers advertise no node<k> resources: pinned by address"])
