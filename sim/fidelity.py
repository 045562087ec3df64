"""``clustersim fidelity``: run a scenario for real, replay it in simulation, compare JCTs.

1. The scenario runs in real mode (:mod:`sim.real.run`) into ``OUT/real/``.
2. The same workload is simulated into ``OUT/sim/``. Real mode does not model
   communication, so the replay uses ``comm: none``. With
   ``real: {calibrate_overhead: true}`` the replay charges, instead of the
   synthetic overhead formula, the mean overheads the real run measured for a
   first start, a resume and a resize (its ``overhead`` events).
3. Per job finished in both runs: real and simulated JCT, the ratio real/sim,
   and the simulation's relative error ``sim/real - 1``; the median and p95 of
   ``|error|``, a CDF figure, and jobs whose outcome differs (declined in one run,
   finished in the other).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.engine.overhead import MeasuredOverhead
from sim.errors import InputError
from sim.real.run import check_real, run_real_to
from sim.runner import RunResult, prepare, run_prepared, write_run
from sim.scenario import Scenario


@dataclass
class FidelityReport:
    table: pd.DataFrame  # job_id, real_jct_s, sim_jct_s, ratio_real_sim, error
    summary: dict[str, Any]
    real: RunResult
    sim: RunResult


def calibration(events: pd.DataFrame) -> dict[str, float]:
    """Mean measured overhead (simulated seconds) by kind: start, resume, resize.

    A kind the real run never saw falls back to the mean over all kinds (0 if none).
    """
    ov = events[events.event == "overhead"].detail.str.extract(
        r"kind=(?P<kind>\w+) overhead_s=(?P<s>[\d.]+)")
    ov["s"] = ov["s"].astype(float)
    overall = float(ov.s.mean()) if len(ov) else 0.0
    means = ov.groupby("kind").s.mean().to_dict()
    return {k: float(means.get(k, overall)) for k in ("start", "resume", "resize")}


def compare(real_jobs: pd.DataFrame, sim_jobs: pd.DataFrame) -> pd.DataFrame:
    """Per-job JCTs of both runs, for jobs finished in both."""
    r = real_jobs[["job_id", "status", "jct_s"]].rename(
        columns={"status": "real_status", "jct_s": "real_jct_s"})
    s = sim_jobs[["job_id", "status", "jct_s"]].rename(
        columns={"status": "sim_status", "jct_s": "sim_jct_s"})
    t = r.merge(s, on="job_id", how="outer")
    order = real_jobs.set_index("job_id").idx
    t = t.iloc[t.job_id.map(order).argsort(kind="stable")].reset_index(drop=True)
    both = (t.real_status == "done") & (t.sim_status == "done")
    t["ratio_real_sim"] = np.where(both, t.real_jct_s / t.sim_jct_s, np.nan)
    t["error"] = np.where(both, t.sim_jct_s / t.real_jct_s - 1.0, np.nan)
    return t


def summarise_errors(t: pd.DataFrame) -> dict[str, Any]:
    err = t.error.dropna().abs()
    return {
        "jobs_compared": int(len(err)),
        "outcome_mismatches": int((t.real_status != t.sim_status).sum()),
        "median_abs_error": float(err.median()) if len(err) else None,
        "p95_abs_error": float(np.percentile(err, 95)) if len(err) else None,
        "max_abs_error": float(err.max()) if len(err) else None,
        "mean_error": float(t.error.dropna().mean()) if len(err) else None,
    }


def run_fidelity(scn: Scenario, out: str | Path, *, scheduler: str | None = None,
                 progress: Callable[[float, int, int], None] | None = None,
                 workers: Any = None) -> FidelityReport:
    """Real run, simulated replay, comparison; writes ``out/{real,sim}/``, ``fidelity.csv``,
    ``fidelity.json`` and ``fidelity_cdf.png``."""
    check_real(prepare(scn))  # validate before starting workers
    out = Path(out)
    real = run_real_to(scn, out / "real", scheduler=scheduler, progress=progress,
                       workers=workers)
    replay = dataclasses.replace(scn, comm="none")
    p = prepare(replay)
    cal = calibration(real.events) if scn.real.get("calibrate_overhead") else None
    ov = MeasuredOverhead(cal["start"], cal["resume"], cal["resize"]) if cal else None
    sim = run_prepared(p, overhead=ov)
    sim.summary["overhead_calibration_s"] = cal
    write_run(sim, out / "sim")
    table = compare(real.jobs, sim.jobs)
    summary = {"scenario": scn.name, "policy": scn.policy,
               "compression": real.summary["compression"],
               "real_wall_s": real.summary["wall_s"], "calibration_s": cal,
               **summarise_errors(table)}
    table.to_csv(out / "fidelity.csv", index=False)
    (out / "fidelity.json").write_text(json.dumps(summary, indent=2) + "\n")
    cdf_figure(table, out / "fidelity_cdf.png", title=f"{scn.name} ({scn.policy})")
    return FidelityReport(table, summary, real, sim)


def cdf_figure(t: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    from sim.plots import plt

    ratio = np.sort(t.ratio_real_sim.dropna().to_numpy())
    if not len(ratio):
        raise InputError("no job finished in both runs: nothing to compare")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    y = np.arange(1, len(ratio) + 1) / len(ratio)
    ax.step(ratio, y, where="post")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("JCT real / simulated")
    ax.set_ylabel("fraction of jobs")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
