"""Fidelity report pieces and real-mode input validation (no workers started)."""

from __future__ import annotations

import pandas as pd
import pytest

from sim.engine.overhead import ChargeContext, MeasuredOverhead
from sim.errors import InputError
from sim.fidelity import calibration, compare, summarise_errors
from sim.real.run import check_real
from sim.runner import prepare
from sim.scenario import scenario_from_dict


def test_calibration_means_by_kind_and_falls_back_to_the_overall_mean():
    ev = pd.DataFrame({"event": ["overhead", "overhead", "overhead", "finished"],
                       "detail": ["kind=start overhead_s=10.0 restore_s=0.1",
                                  "kind=start overhead_s=20.0 restore_s=0.1",
                                  "kind=resize overhead_s=6.0 restore_s=0.1", "end=3"]})
    assert calibration(ev) == {"start": 15.0, "resume": 12.0, "resize": 6.0}


def test_measured_overhead_tells_first_start_from_resume_and_resize():
    m = MeasuredOverhead(start_s=5.0, resume_s=7.0, resize_s=3.0)
    ctx = ChargeContext(instant=0, slot_s=0, cluster_gpus=8)
    assert m.charge(ctx, [("a", (), (0,)), ("b", (1,), (1, 2)), ("c", (3,), (3,))]) == {
        "a": 5.0, "b": 3.0}
    assert m.charge(ctx, [("a", (), (0,))]) == {"a": 7.0}


def test_compare_ratios_errors_and_outcome_mismatches():
    real = pd.DataFrame({"job_id": ["1", "0", "2"], "idx": [1, 0, 2],
                         "status": ["done", "done", "declined"],
                         "jct_s": [110.0, 200.0, None]})
    sim = pd.DataFrame({"job_id": ["0", "1", "2"], "status": ["done", "done", "done"],
                        "jct_s": [100.0, 110.0, 50.0]})
    t = compare(real, sim)
    assert list(t.job_id) == ["0", "1", "2"]  # trace order
    assert list(t.ratio_real_sim[:2]) == [2.0, 1.0] and pd.isna(t.ratio_real_sim[2])
    s = summarise_errors(t)
    assert s["jobs_compared"] == 2 and s["outcome_mismatches"] == 1
    assert s["median_abs_error"] == pytest.approx(0.25)  # |100/200 - 1| and 0


def base(**kw):
    d = {"trace": {"generate": {"num_jobs": 2, "lam": 10}}, "cluster": "n1g8",
         "policy": "edf"}
    d.update(kw)
    return d


@pytest.mark.parametrize("real, field", [
    ({"compresion": 10}, "real.compresion"),
    ({"compression": 0}, "real.compression"),
    ({"calibrate_overhead": "yes"}, "real.calibrate_overhead"),
])
def test_bad_real_block_names_the_key(real, field):
    with pytest.raises(InputError) as e:
        scenario_from_dict(base(real=real), source="s.yaml")
    assert e.value.field == field and e.value.file == "s.yaml"


def test_real_mode_refuses_artifact_preset_and_slots():
    for kw, field in (({"preset": "elasticflow-artifact"}, "preset"), ({"slot_s": 60}, "slot_s")):
        with pytest.raises(InputError) as e:
            check_real(prepare(scenario_from_dict(base(**kw))))
        assert e.value.field == field


def test_simulation_scenarios_resolve_without_a_real_block():
    assert "real" not in scenario_from_dict(base()).resolved()
    assert scenario_from_dict(base(real={"compression": 50})).resolved()["real"] == {
        "compression": 50}
