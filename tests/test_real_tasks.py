"""Real mode for task workloads: GPR pools on Ackley on actual Dask workers, time-compressed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import InputError
from sim.poolrun import load_pool_scenario, pool_scenario_from_dict
from sim.real.cluster import connect
from sim.real.pools import NO_CLUSTER, execute, run_pool_real, scaled
from sim.traces.ackley import generate_ackley

SCENARIO = Path(__file__).parent.parent / "scenarios" / "gpr-ackley.yaml"


def test_real_block_is_validated_naming_the_key():
    with pytest.raises(InputError) as e:
        load_pool_scenario(SCENARIO, ["real.pointz=10"])
    assert e.value.field == "real.pointz"
    with pytest.raises(InputError, match="real.compression must be > 0"):
        load_pool_scenario(SCENARIO, ["real.compression=0"])


def test_real_mode_measures_the_retrain_instead_of_modelling_it():
    scn = scaled(load_pool_scenario(SCENARIO, ["real.points=30"]))
    assert scn.ackley.points == 30 and scn.params["retrain_s"] == 0.0
    assert scn.params["retrain_n3_s"] == 0.0


@pytest.fixture(scope="module")
def workers():
    w = connect(NO_CLUSTER)
    yield w
    w.close()


def small(**kw):
    d = {"workload": {"ackley": {"points": 32}},
         "pools": [{"name": "pool1", "workers": 2, "batch_size": 4, "threshold": 2},
                   {"name": "pool2", "workers": 2, "batch_size": 4, "threshold": 2,
                    "join": {"after": "reprioritisation", "count": 2, "delay_s": 0}}],
         "policy": "gpr", "params": {"score": "ei", "retrain_every": 6, "hyper_points": 20},
         "seed": 3, "real": {"compression": 25}}
    d.update(kw)
    return scaled(pool_scenario_from_dict(d))


@pytest.mark.real
@pytest.mark.slow
def test_gpr_pools_on_dask_workers(workers):
    scn = small()
    ex = execute(scn, workers)
    _tasks, values = generate_ackley(scn.ackley, scn.seed)
    # every Ackley evaluation ran for real, in a worker, and returned the true value
    assert ex.tasks_done == 32 and set(ex.results) == set(values)
    assert all(abs(ex.results[t] - v) < 1e-9 for t, v in values.items())
    ev = ex.pool_events
    reps = [t for t, k, _ in ev if k == "reprioritisation"]
    assert len(reps) >= 2
    # pool2 joins at the 2nd reprioritisation and claims nothing before it
    (join2,) = [t for t, k, d in ev if k == "pool-join" and d == "pool2"]
    assert join2 == reps[1]
    claims2 = [t for t, k, d in ev if k == "claim" and d.startswith("pool2 ")]
    assert claims2 and min(claims2) >= join2
    # each pool starts its claims in claim order (per-pool FIFO)
    for pool in ("pool1", "pool2"):
        claimed = [d.split()[1] for _, k, d in ev if k == "claim" and d.startswith(pool + " ")]
        started = [e[2] for e in ex.events if e[1] == "task_started"
                   and e[4].startswith(pool + " ")]
        assert started == claimed[:len(started)] and len(started) == len(claimed)
    # claims after the last reprioritisation follow its priorities (highest first)
    last = reps[-1]
    after = [d.split()[1] for t, k, d in ev if k == "claim" and t > last]
    prio = [ex.tasks[t].priority for t in after]
    assert len(after) >= 2 and prio == sorted(prio, reverse=True)
    assert max(prio) > 0  # they are the GP's ranks, not the initial equal priorities
    # the real retrain took measurable time inside decide (no modelled cost)
    assert max(ex.decide_wall_s) > 0.005


@pytest.mark.real
@pytest.mark.slow
def test_real_run_writes_the_simulations_outputs(workers, tmp_path):
    from sim.poolrun import write_pool_run

    res = run_pool_real(small(seed=4), workers=workers)
    out = write_pool_run(res, tmp_path / "run")
    assert {p.name for p in out.iterdir()} == {"scenario.yaml", "transactions",
                                               "completions.csv", "events.csv", "summary.json"}
    s = res.summary
    assert s["mode"] == "real" and s["done"] == 32 and s["value_mismatches"] == 0
    assert s["best_value"] == s["optimum"]  # every point ran, so the best was found
    bests = [c[4] for c in res.completions]
    assert bests == sorted(bests, reverse=True)
    assert "TASK t00" in (out / "transactions").read_text()


@pytest.mark.real
@pytest.mark.slow
def test_threeways_map_on_batch_job_workers_with_real_store(tmp_path):
    from sim.ems import EMSStore
    from sim.real.threeways import run_real
    from sim.workloads import threeways as tw

    db = tmp_path / "EMS.db3"
    sets = ["threeways.params.seed.range=[0,40]", "threeways.params.nrow=[300]",
            "threeways.params.ncol=[300]", "threeways.processes=2", "threeways.threads=1",
            "threeways.start_s=[0.0,0.3]", "threeways.store.flush_rows=10",
            f"threeways.store.db={db}"]
    scn = tw.load(Path(__file__).parent.parent / "scenarios" / "threeways-dask.yaml", sets)
    res = run_real(scn)
    s = res.summary
    assert s["done"] == s["stored_rows"] == 40 and s["flushes"] == 4
    assert len(res.lines) == 4 and res.lines[0].startswith("Count: 10,")
    # the second batch job launched 0.3 s in and connected only after its process started;
    # both processes computed instances
    conn = {r[2]: r[0] for r in res.records if r[1] == "WORKER" and r[3] == "CONNECTION"}
    assert set(conn) == {"p0", "p1"} and conn["p1"] > 0.3 + 0.1
    ran = {r[4][0] for r in res.records if r[1] == "TASK" and r[3] == "RUNNING"}
    assert ran == {"p0", "p1"}
    # instances computed for real: the stored rows are the SVD's results
    with EMSStore(db, ["nrow", "ncol", "seed"]) as store:
        rows = store.conn.execute('SELECT seed, v_alignment FROM "ems"').fetchall()
    assert sorted(r[0] for r in rows) == list(range(40))
    assert all(0.5 < r[1] <= 1.0 + 1e-9 for r in rows)
    # EMS resume: a re-run skips every stored combination
    again = run_real(scn).summary
    assert again["instances"] == 0 and again["skipped"] == 40
