"""Record (or check) the ElasticFlow parity numbers used when optimising sim/policies/efplan.py.

Prints, for ef-accessctrl and ef: Figure 10 and Figure 8(a) ``deadline_satisfactory_ratio``
and ``jct_mean_s`` (repr, so every bit shows) and the Figure 10 per-job end times.

    python bench/ef_parity.py > before.txt     # then, after a change:
    python bench/ef_parity.py | diff before.txt -
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.toy as toy  # noqa: E402
from sim.model.cluster_io import load_cluster  # noqa: E402
from sim.model.throughput import bundled_table  # noqa: E402
from sim.traces import read_trace  # noqa: E402


def fig8a(policy: str):
    cluster = load_cluster("n16g4")
    table = bundled_table("T4")
    jobs = read_trace(ROOT / "traces" / "elasticVpollux_e.csv", table=table, cluster=cluster)
    old, toy.TABLE = toy.TABLE, table
    try:
        return toy.run(policy, jobs, cluster, slot_s=60)
    finally:
        toy.TABLE = old


def digest(res) -> str:
    """sha256 of the whole job table and event log (every column, full precision)."""
    h = hashlib.sha256()
    for df in (res.jobs, res.events):
        h.update(df.to_csv(index=False, float_format="%.17g").encode())
    return h.hexdigest()[:16]


def main() -> None:
    for policy in ("ef-accessctrl", "ef"):
        res = toy.run(policy, toy.fig10_jobs(), toy.N16G8)
        s = res.summary
        print(f"fig10 {policy} ratio={s['deadline_satisfactory_ratio']!r} "
              f"jct={s['jct_mean_s']!r}")
        print(f"fig10 {policy} end_s={[repr(x) for x in res.jobs.end_s.tolist()]}")
        print(f"fig10 {policy} digest={digest(res)}")
        res = fig8a(policy)
        s = res.summary
        print(f"fig8a {policy} digest={digest(res)}")
        print(f"fig8a {policy} ratio={s['deadline_satisfactory_ratio']!r} "
              f"jct={s['jct_mean_s']!r}")


if __name__ == "__main__":
    main()
