"""Helpers shared by task-workload policies: free-resource bookkeeping within one decision."""

from __future__ import annotations

from dataclasses import dataclass

from sim.model.job import TaskSpec
from sim.model.snapshot import WorkerView

EPS = 1e-9


@dataclass
class Free:
    """What is left on one worker while a decision is being built."""

    worker_id: str
    cores: float
    memory_MB: float
    disk_MB: float
    hosts: set[str]  # libraries started or starting
    slots: dict[str, int]  # library -> function slots not yet taken (may go negative)

    @classmethod
    def of(cls, w: WorkerView) -> Free:
        return cls(w.worker_id, w.free_cores, w.free_memory_MB, w.free_disk_MB,
                   set(w.libraries) | set(w.installing), dict(w.free_slots))

    def fits(self, cores: float, memory_MB: float, disk_MB: float) -> bool:
        return (cores <= self.cores + EPS and memory_MB <= self.memory_MB + EPS
                and disk_MB <= self.disk_MB + EPS)

    def fits_task(self, t: TaskSpec) -> bool:
        return self.fits(t.cores, t.memory_MB, t.disk_MB)

    def take(self, cores: float, memory_MB: float, disk_MB: float) -> None:
        self.cores -= cores
        self.memory_MB -= memory_MB
        self.disk_MB -= disk_MB

    def take_task(self, t: TaskSpec) -> None:
        self.take(t.cores, t.memory_MB, t.disk_MB)
