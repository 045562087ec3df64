"""Controller: feasibility checks and the decision -> actions diff."""

import pytest

from sim.control import Admit, Controller, Declare, Decline, Resize, Start, Stop, Wake, diff
from sim.errors import InfeasibleDecision
from sim.model.decision import Decision
from sim.model.snapshot import JobStatus, JobView, Snapshot
from sim.model.throughput import bundled_table
from sim.policies.base import Policy
from tests.toy import N1G8, TOY_JOBS


def snap(*views: JobView) -> Snapshot:
    return Snapshot(now_s=100.0, cluster=N1G8, table=bundled_table("A100"), jobs=views)


A = JobView(spec=TOY_JOBS[0], status=JobStatus.RUNNING, gpus=(0, 1))
B = JobView(spec=TOY_JOBS[1], status=JobStatus.NEW)
C = JobView(spec=TOY_JOBS[2], status=JobStatus.PAUSED)


class Fixed(Policy):
    NAME = "fixed-test"

    def __init__(self, decision: Decision) -> None:
        super().__init__()
        self.decision = decision

    def decide(self, snap: Snapshot) -> Decision:
        return self.decision


def test_diff_orders_releases_before_grants():
    d = Decision(alloc={"1": (0, 1, 2, 3), "2": (4,)}, wake_s=500.0, end_s={"1": 900.0})
    acts = diff(snap(A, B, C), d)
    kinds = [type(a) for a in acts]
    # B is admitted, A loses its GPUs, B and C start; stops precede starts
    assert Admit("1") in acts
    assert kinds.index(Stop) < kinds.index(Start)
    assert Start("1", (0, 1, 2, 3)) in acts and Start("2", (4,)) in acts
    assert Declare("1", 900.0, 900.0, None) in acts
    assert acts[-1] == Wake(500.0)


def test_resize_and_decline():
    d = Decision(alloc={"0": (0, 1, 2, 3)}, decline=("1",))
    acts = diff(snap(A, B), d)
    assert acts[0] == Decline("1")
    assert Resize("0", (0, 1, 2, 3)) in acts
    assert not any(isinstance(a, Admit) for a in acts)


def test_unchanged_allocation_gives_no_action():
    acts = diff(snap(A), Decision(alloc={"0": (0, 1)}))
    assert acts == []


@pytest.mark.parametrize(
    "decision, message",
    [
        (Decision(alloc={"0": (0, 1), "1": (1,)}), "given to both"),
        (Decision(alloc={"0": (8,)}), "cluster has 8"),
        (Decision(alloc={"9": (0,)}), "unknown"),
        (Decision(alloc={"1": (3,)}, decline=("1",)), "declined job"),
        (Decision(decline=("0",)), "already admitted"),
        (Decision(alloc={"0": (2, 2)}), "twice"),
    ],
)
def test_infeasible_decisions_are_refused(decision, message):
    ctl = Controller(Fixed(decision))
    with pytest.raises(InfeasibleDecision, match=message):
        ctl.step(snap(A, B))
