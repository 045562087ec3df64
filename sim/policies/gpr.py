"""GPR reprioritisation: rank queued tasks by a Gaussian-process surrogate (EMEWS).

The EMEWS EQ/SQL Ackley workflow (Collier et al., "Developing Distributed
High-performance Computing Capabilities of an Open Science Platform for Robust
Epidemic Analysis", IPDPSW 2023; WORKFLOWS.md section 1(b)): every ``retrain_every``
completions the ME algorithm fits a Gaussian-process regressor (scikit-learn:
MinMaxScaler(-1, 1) then GaussianProcessRegressor(normalize_y=True, kernel
Constant x RBF)) on the completed points and their values, scores every task still
queued and rewrites their priorities, best first: priority = #ranked - rank.
The tasks minimise their value; ``score: ei`` ranks by expected improvement over
the best value seen, ``score: mean`` by the predicted mean. The baselines share the
same rounds with a ranking that ignores the results: ``fifo`` (submission order,
i.e. no change) and ``random`` (a fresh seeded permutation each round).

Contract (pure; the executor provides pools, claims and results):

* reads ``snap.results`` (task id -> value of every completed task) and
  ``snap.tasks`` (queued, unclaimed tasks; a task's point is ``spec.params["x"]``,
  remembered from the first snapshot that shows it);
* a round starts at the first decision with at least ``k * retrain_every`` results
  (k = 1, 2, ...) and no round in flight; it is skipped when nothing is queued;
* the retrain takes a modelled time (``retrain_s`` + ``retrain_n3_s`` x (n/1000)^3
  for n training points, plus, with ``retrain: remote``, ``remote_latency_s`` and
  the training set at ``remote_MBps``); the policy asks to be woken then and only
  then returns the new priorities, for the tasks still queued. Until then the queue
  keeps the old order (pools keep claiming by it). The baselines take no time;
* with workers in the snapshot (an executor without pools) it also places queued
  tasks in priority order, first fit in worker order; pool executors show none.

Deviations: (1) the kernel adds a WhiteKernel noise term by default (``noise``):
without it the fit on the rugged Ackley surface drives the RBF length scale to its
1e-5 bound and the GP predicts the mean everywhere (measured: Spearman rank
correlation with held-out values undefined, all-equal predictions; with the noise
term about 0.6); (2) hyperparameters are optimised on at most ``hyper_points``
evenly spaced training points (by task id) and the GP is then fitted on all points
with that kernel, to bound the cost of a simulated run; (3) a round with no queued
task is skipped (OSPREY's last round finds no uncompleted task).
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass, field

import numpy as np

from sim.errors import InputError
from sim.model.decision import Decision
from sim.model.snapshot import Snapshot
from sim.policies.base import Policy
from sim.policies.taskfit import Free
from sim.registry import register

SCORES = ("ei", "mean", "fifo", "random")


@dataclass(frozen=True)
class GPRParams:
    score: str = field(default="ei", metadata={
        "help": "ranking: 'ei' (expected improvement), 'mean' (lowest predicted value), "
                "baselines 'fifo' (submission order) and 'random'"})
    retrain_every: int = field(default=50, metadata={"help": "completions per round (K)"})
    retrain: str = field(default="local", metadata={
        "help": "'local' or 'remote' (adds latency and shipping the training set)"})
    retrain_s: float = field(default=0.5, metadata={
        "help": "fixed time of one retrain, s (OSPREY's retrain sleeps at least 0.5 s)"})
    retrain_n3_s: float = field(default=2.0, metadata={
        "help": "retrain time for 1000 training points, s; scales as n^3"})
    remote_latency_s: float = field(default=1.0, metadata={
        "help": "round trip to a remote retrainer, s"})
    remote_MBps: float = field(default=10.0, metadata={
        "help": "bandwidth to a remote retrainer, MB/s"})
    point_kB: float = field(default=1.0, metadata={
        "help": "size of one training point shipped to a remote retrainer, kB"})
    noise: bool = field(default=True, metadata={
        "help": "add a WhiteKernel noise term to Constant x RBF (see deviations)"})
    xi: float = field(default=0.0, metadata={"help": "exploration margin of EI"})
    hyper_points: int = field(default=200, metadata={
        "help": "optimise kernel hyperparameters on at most this many points (0: all)"})
    seed: int = field(default=0, metadata={"help": "seed of the random baseline and the GP"})

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise InputError(f"score must be one of {', '.join(SCORES)}, got {self.score!r}",
                             field="score")
        if self.retrain not in ("local", "remote"):
            raise InputError(f"retrain must be 'local' or 'remote', got {self.retrain!r}",
                             field="retrain")
        if self.retrain_every < 1:
            raise InputError(f"retrain_every must be >= 1, got {self.retrain_every}",
                             field="retrain_every")
        for name in ("retrain_s", "retrain_n3_s", "remote_latency_s", "point_kB", "xi"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0", field=name)
        if self.remote_MBps <= 0:
            raise InputError("remote_MBps must be > 0", field="remote_MBps")
        if self.hyper_points < 0:
            raise InputError("hyper_points must be >= 0", field="hyper_points")


@dataclass
class _Round:
    number: int
    ready_s: float
    order: list[str]  # task ids, best first


@register
class GPRReprioritise(Policy):
    NAME = "gpr"
    SUMMARY = "Task workloads: every K completions re-rank queued tasks by a GP surrogate"
    Params = GPRParams
    WORK = "duration"

    def __init__(self, params: object = None, *, artifact: bool = False) -> None:
        super().__init__(params, artifact=artifact)
        self._x: dict[str, list[float]] = {}  # task id -> point, as first seen queued
        self._next_at = self.params.retrain_every
        self._rounds = 0
        self._pending: _Round | None = None
        self._rng = random.Random(self.params.seed)

    def decide(self, snap: Snapshot) -> Decision:
        p: GPRParams = self.params
        for tv in snap.tasks:
            if tv.spec.task_id not in self._x and "x" in tv.spec.params:
                self._x[tv.spec.task_id] = tv.spec.params["x"]
        notes: list[str] = []
        priorities: dict[str, float] = {}
        wake = None
        if self._pending is None and len(snap.results) >= self._next_at:
            self._next_at += p.retrain_every
            if snap.tasks:
                self._pending = self._start_round(snap, notes)
            else:
                notes.append(f"round at {len(snap.results)} results skipped: nothing queued")
        if self._pending is not None:
            if snap.now_s >= self._pending.ready_s - 1e-9:
                priorities = self._apply(snap, self._pending, notes)
                self._pending = None
            else:
                wake = self._pending.ready_s
        return Decision(priorities=priorities, dispatch=self._place(snap, priorities),
                        wake_s=wake, notes=tuple(notes))

    # --- rounds ---------------------------------------------------------------------
    def _start_round(self, snap: Snapshot, notes: list[str]) -> _Round:
        p: GPRParams = self.params
        self._rounds += 1
        queued = [tv.spec.task_id for tv in snap.tasks]
        train = sorted(t for t in snap.results if t in self._x)
        if p.score == "fifo":
            submit = {tv.spec.task_id: tv.spec.submit_s for tv in snap.tasks}
            order = sorted(queued, key=lambda t: (submit[t], t))
            cost = 0.0
        elif p.score == "random":
            order = sorted(queued)
            self._rng.shuffle(order)
            cost = 0.0
        else:
            order = self._rank(train, [snap.results[t] for t in train], queued)
            cost = self.retrain_cost_s(len(train))
        notes.append(f"retrain {self._rounds} start: {len(train)} points, {len(order)} queued, "
                     f"{cost:.3f} s")
        return _Round(self._rounds, snap.now_s + cost, order)

    def _apply(self, snap: Snapshot, rnd: _Round, notes: list[str]) -> dict[str, float]:
        queued = {tv.spec.task_id for tv in snap.tasks}
        n = len(rnd.order)
        pr = {t: float(n - r) for r, t in enumerate(rnd.order) if t in queued}
        notes.append(f"reprioritise {rnd.number}: {len(pr)} of {n} ranked tasks still queued")
        return pr

    def retrain_cost_s(self, n: int) -> float:
        """Modelled duration of one retrain on ``n`` training points, seconds."""
        p: GPRParams = self.params
        s = p.retrain_s + p.retrain_n3_s * (n / 1000.0) ** 3
        if p.retrain == "remote":
            s += p.remote_latency_s + n * p.point_kB / 1000.0 / p.remote_MBps
        return s

    def _rank(self, train: list[str], y: list[float], queued: list[str]) -> list[str]:
        """Queued task ids, best first, by the GP's score (ties by task id)."""
        if not train or not queued:
            return sorted(queued)
        mu, sd = fit_predict(np.array([self._x[t] for t in train]), np.array(y),
                             np.array([self._x[t] for t in queued]), noise=self.params.noise,
                             hyper_points=self.params.hyper_points, seed=self.params.seed)
        if self.params.score == "mean":
            key = mu
        else:
            key = -expected_improvement(mu, sd, float(min(y)), self.params.xi)
        idx = sorted(range(len(queued)), key=lambda i: (key[i], queued[i]))
        return [queued[i] for i in idx]

    def _place(self, snap: Snapshot, priorities: dict[str, float]) -> tuple[tuple[str, str], ...]:
        if not snap.workers or not snap.tasks:
            return ()
        free = [Free.of(w) for w in snap.workers]
        order = sorted(enumerate(snap.tasks),
                       key=lambda it: (-priorities.get(it[1].spec.task_id, it[1].priority),
                                       it[0]))
        out = []
        for _, tv in order:
            f = next((f for f in free if f.fits_task(tv.spec)), None)
            if f is not None:
                f.take_task(tv.spec)
                out.append((tv.spec.task_id, f.worker_id))
        return tuple(out)


def fit_predict(x: np.ndarray, y: np.ndarray, q: np.ndarray, *, noise: bool = True,
                hyper_points: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit the GP on ``(x, y)`` and return its mean and standard deviation at ``q``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.preprocessing import MinMaxScaler
    from threadpoolctl import threadpool_limits

    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(x)
    xs, qs = scaler.transform(x), scaler.transform(q)
    kernel = ConstantKernel() * RBF()
    if noise:
        kernel = kernel + WhiteKernel()
    # small dense algebra: one BLAS thread is fastest, and fair to a shared machine
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        sub = np.arange(len(xs))
        if hyper_points and len(xs) > hyper_points:
            sub = np.unique(np.linspace(0, len(xs) - 1, hyper_points).round().astype(int))
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=seed)
        gp.fit(xs[sub], y[sub])
        if len(sub) < len(xs):
            gp = GaussianProcessRegressor(kernel=gp.kernel_, normalize_y=True, optimizer=None)
            gp.fit(xs, y)
        mu, sd = gp.predict(qs, return_std=True)
    return mu, sd


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float,
                         xi: float = 0.0) -> np.ndarray:
    """Expected improvement below ``best`` (minimisation) of N(mu, sd^2) values."""
    imp = best - mu - xi
    out = np.maximum(imp, 0.0)
    pos = sd > 1e-12
    z = imp[pos] / sd[pos]
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    out[pos] = imp[pos] * cdf + sd[pos] * pdf
    return out
