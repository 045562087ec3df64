"""``clustersim report``: one self-contained HTML page of everything in a results store.

The page needs nothing but itself: figures are PNGs embedded as base64 ``data:`` URIs,
the style and one small script are inline, and a Content-Security-Policy forbids any
other source, so it renders the same from an e-mail attachment as from a web server.

Runs are grouped by *setup*: their resolved scenario without ``policy``, ``params``,
``seed`` and ``version`` (so one group is one trace on one cluster with one slot and
preset, compared across policies). Within a group, runs are in the paper's policy
order (:data:`sim.plots.POLICY_ORDER`) and coloured as in every figure; a run whose
policy appears more than once in the group is told apart by the fields in which it
differs (a parameter, the seed, the code version). Each group has

* a figure: deadline satisfactory ratio and mean JCT per run (bars), and the cluster
  efficiency over time of every run with a stored timeline (steps);
* a table: one row per run with its status and summary metrics, and the run's resolved
  scenario (and the error of a failed run) in a ``<details>`` element.

Runs of the task-workload kinds (``tasks``, ``pools``, ``threeways``, ``dragon``; see
:mod:`sim.kinds`) come after the GPU-job groups, one section per kind: a table of the
kind's summary metrics, one row per run, each with its resolved scenario.

The inline script sets ``data-figures="<decoded>/<total>"`` on ``<body>`` once the page
has loaded (an image counts as decoded when its ``naturalWidth`` is positive), and
``data-run-rows`` to the number of run rows the browser built; the tests read both back
from headless Chromium.

Reads the store only; never imports the engine.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.base import colour, label, ordered_policies
from sim.errors import InputError
from sim.plots import plt
from sim.store import GPU_KIND, Store, canonical_json

#: Fields of the resolved scenario that tell runs of one group apart.
VARYING = ("policy", "params", "seed", "version")
#: (summary key, column heading, format) of the metrics table.
METRICS = (
    ("deadline_satisfactory_ratio", "deadline ratio", "{:.3f}"),
    ("accepted", "met", "{:d}"),
    ("declined", "declined/late", "{:d}"),
    ("jct_mean_s", "mean JCT (s)", "{:,.0f}"),
    ("be_jct_mean_s", "best-effort JCT (s)", "{:,.0f}"),
    ("gpu_utilisation", "GPU util", "{:.3f}"),
    ("makespan_s", "makespan (s)", "{:,.0f}"),
    ("jobs", "jobs", "{:d}"),
)
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'")


@dataclass
class Group:
    """Runs sharing one setup; ``runs`` in display order, ``variants`` key -> label."""

    title: str
    setup: dict[str, Any]
    runs: pd.DataFrame
    variants: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportInfo:
    """What :func:`write_report` wrote: the file, its groups, runs and figures."""

    path: Path
    groups: int
    runs: int
    figures: int


def write_report(store: Store, out: str | Path, *, title: str = "clustersim results") -> ReportInfo:
    """Write the report of every run in ``store`` to ``out`` (atomically).

    Raises:
        InputError: the store holds no run, or ``out`` is a folder or cannot be written.
    """
    out = Path(out)
    if out.is_dir():
        raise InputError("--out must be a file name (e.g. report.html), not a folder",
                         file=out, field="--out")
    runs = store.runs()
    if runs.empty:
        raise InputError("the results store has no runs (run a sweep first)",
                         file=store.path, field="--store")
    gpu = runs["kind"] == GPU_KIND
    groups = group_runs(runs[gpu].reset_index(drop=True))
    figures: list[str] = []
    sections = []
    for i, g in enumerate(groups, start=1):
        png = group_figure(g, store)
        figures.append(png)
        sections.append(_section(i, g, png))
    others = [(k, rows.reset_index(drop=True))
              for k, rows in runs[~gpu].groupby("kind", sort=True)]
    for i, (k, rows) in enumerate(others, start=len(groups) + 1):
        sections.append(_kind_section(i, str(k), rows))
    page = _page(title, store, runs, groups, sections, others)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        raise InputError(f"cannot write the report: {e.strerror or e}", file=out,
                         field="--out") from None
    finally:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
    return ReportInfo(out, len(groups) + len(others), len(runs), len(figures))


def group_runs(runs: pd.DataFrame) -> list[Group]:
    """The store's runs (as :meth:`Store.runs` returns them) grouped by setup.

    Groups are ordered by trace, cluster size, slot and preset; runs within a group by
    the paper's policy order, then by their varying fields.
    """
    setups: dict[str, dict[str, Any]] = {}
    members: dict[str, list[int]] = {}
    for i, scn in enumerate(runs["scenario"]):
        setup = {k: v for k, v in scn.items() if k not in VARYING}
        sk = canonical_json(setup)
        setups.setdefault(sk, setup)
        members.setdefault(sk, []).append(i)
    groups = []
    for sk, idx in members.items():
        rows = runs.iloc[idx]
        order = {p: n for n, p in enumerate(ordered_policies(rows["policy"]))}
        rows = rows.assign(
            _p=rows["policy"].map(order),
            _v=[canonical_json({k: s.get(k) for k in VARYING}) for s in rows["scenario"]],
        ).sort_values(["_p", "_v"], kind="stable").drop(columns=["_p", "_v"])
        groups.append(Group(_title(rows.iloc[0], setups[sk]), setups[sk],
                            rows.reset_index(drop=True), _variants(rows)))
    groups.sort(key=lambda g: (str(g.runs["trace"].iloc[0]), _num(g.runs["num_gpus"].iloc[0]),
                               str(g.runs["cluster"].iloc[0]), _num(g.runs["slot_s"].iloc[0]),
                               str(g.runs["preset"].iloc[0]), g.title))
    return groups


def run_label(row: Any, variants: dict[str, str]) -> str:
    """How a run is named in its group: the policy's label, plus what sets it apart."""
    v = variants.get(row.key)
    return f"{label(row.policy)} ({v})" if v else label(row.policy)


def group_figure(g: Group, store: Store) -> str:
    """The group's figure as a base64 PNG: ratio and mean JCT bars, and the cluster
    efficiency over time when timelines are stored."""
    done = g.runs[g.runs["status"] == "done"]
    timelines = {r.key: store.timeline(r.key) for r in done.itertuples()}
    timelines = {k: t for k, t in timelines.items() if len(t)}
    ncols = 3 if timelines else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.3),
                             gridspec_kw={"width_ratios": [1, 1, 1.6][:ncols]})
    names = [run_label(r, g.variants) for r in done.itertuples()]
    colours = [colour(p) for p in done["policy"]]
    xs = range(len(done))
    for ax, metric, ylabel, scale in (
            (axes[0], "deadline_satisfactory_ratio", "Deadline satisfactory ratio", 1.0),
            (axes[1], "jct_mean_s", "Mean JCT (hours)", 1 / 3600)):
        vals = [_float(v) * scale for v in done[metric]]
        ax.bar(xs, vals, color=colours, edgecolor="black", linewidth=0.5)
        for x, v in zip(xs, vals):
            if not math.isnan(v):
                ax.annotate(f"{v:.3g}", (x, v), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(list(xs), names, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        if metric == "deadline_satisfactory_ratio":
            ax.set_ylim(0, 1.1)
    if timelines:
        ax = axes[2]
        for r, name in zip(done.itertuples(), names):
            tl = timelines.get(r.key)
            if tl is None:
                continue
            hours = (tl["time_s"] - tl["time_s"].iloc[0]) / 3600.0
            ax.plot(hours, tl["ce"], drawstyle="steps-post", color=colour(r.policy),
                    linewidth=1.0, label=name)
        ax.set_xlabel("Time (hours)", fontsize=8)
        ax.set_ylabel("Cluster efficiency", fontsize=8)
        ax.set_ylim(0, None)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, frameon=False)
    if done.empty:
        axes[0].set_title("no finished runs", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90)
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------- helpers
def _variants(rows: pd.DataFrame) -> dict[str, str]:
    """key -> what tells the run apart from the group's other runs of its policy."""
    out: dict[str, str] = {}
    for _, same in rows.groupby("policy", sort=False):
        if len(same) < 2:
            continue
        flat = [_flatten({k: s.get(k) for k in ("params", "seed", "version")})
                for s in same["scenario"]]
        keys = sorted({k for f in flat for k in f})
        differ = [k for k in keys if len({canonical_json(f.get(k)) for f in flat}) > 1]
        for key, f in zip(same["key"], flat):
            out[key] = ", ".join(f"{k.removeprefix('params.')}={_short(k, f.get(k))}"
                                 for k in differ)
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _short(key: str, v: Any) -> str:
    if key == "version" and isinstance(v, str):
        return v.rsplit("code-", 1)[-1]
    return json.dumps(v) if not isinstance(v, str) else v


def _title(row: Any, setup: dict[str, Any]) -> str:
    slot = f"slot {_num(row.slot_s):g} s" if row.slot_s is not None else "no slot"
    t = f"{row.trace} on {row.cluster} ({row.num_gpus} x {row.gpu_type}), {slot}, {row.preset}"
    extra = [f"comm {setup.get('comm')}"] if setup.get("comm") not in (None, "allreduce") else []
    if setup.get("horizon_s") is not None:
        extra.append(f"horizon {setup['horizon_s']:g} s")
    return t + (", " + ", ".join(extra) if extra else "")


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.inf
    return math.inf if math.isnan(f) else f


def _float(v: Any) -> float:
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _cell(summary: dict[str, Any] | None, key: str, fmt: str) -> str:
    v = (summary or {}).get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "&ndash;"
    try:
        return html.escape(fmt.format(v))
    except (ValueError, TypeError):
        return html.escape(str(v))


def _section(i: int, g: Group, png: str) -> str:
    e = html.escape
    heads = ["policy", "status", *(h for _, h, _ in METRICS), "wall (s)", "run"]
    rows = []
    for r in g.runs.itertuples():
        scn = json.dumps(r.scenario, indent=2, sort_keys=True)
        err = (f"<p>error:</p><pre class=err>{e(r.error)}</pre>" if r.error else "")
        swatch = f'<span class=sw style="background:{e(colour(r.policy))}"></span>'
        rows.append(
            f"<tr class=run data-key={e(r.key)}><td>{swatch}{e(run_label(r, g.variants))} "
            f"<small>{e(r.policy)}</small></td>"
            f"<td class={e(r.status)}>{e(r.status)}</td>"
            + "".join(f"<td class=num>{_cell(r.summary, k, f)}</td>" for k, _, f in METRICS)
            + f"<td class=num>{_cell({'w': r.wall_s}, 'w', '{:.1f}')}</td>"
            f"<td><details><summary>{e(r.key[:12])}</summary>\n"
            f"<p>key {e(r.key)}<br>scenario name {e(r.name or '?')}, finished "
            f"{e(r.finished_at or '?')}</p>{err}"
            f"<pre>{e(scn)}</pre></details></td></tr>")
    return (
        f'<section id="g{i}"><h2>{i}. {e(g.title)}</h2>\n'
        f'<img alt="{e(g.title)}: deadline ratio, mean JCT and cluster efficiency per run" '
        f'src="data:image/png;base64,{png}">\n'
        f"<table class=runs><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in heads)}</tr>"
        f"</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table></section>")


def _kind_section(i: int, kind: str, rows: pd.DataFrame) -> str:
    """A section for the runs of one task-workload kind: summary metrics and scenarios."""
    from sim.kinds import KINDS

    e = html.escape
    cols = [c for c in (KINDS[kind].columns if kind in KINDS else ("makespan_s", "wall_s"))
            if c != "wall_s"]
    heads = ["run", "status", *cols, "wall (s)", "scenario"]
    body = []
    for r in rows.itertuples():
        scn = json.dumps(r.scenario, indent=2, sort_keys=True)
        err = (f"<p>error:</p><pre class=err>{e(r.error)}</pre>" if r.error else "")
        body.append(
            f"<tr class=run data-key={e(r.key)}><td>{e(r.name or '?')}</td>"
            f"<td class={e(r.status)}>{e(r.status)}</td>"
            + "".join(f"<td class=num>{_cell(r.summary, c, _FMT.get(c, '{}'))}</td>"
                      for c in cols)
            + f"<td class=num>{_cell({'w': r.wall_s}, 'w', '{:.1f}')}</td>"
            f"<td><details><summary>{e(r.key[:12])}</summary>\n"
            f"<p>key {e(r.key)}, finished {e(r.finished_at or '?')}</p>{err}"
            f"<pre>{e(scn)}</pre></details></td></tr>")
    return (f'<section id="g{i}"><h2>{i}. {e(_kind_title(kind))}</h2>\n'
            f"<table class=runs><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in heads)}"
            f"</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody></table></section>")


def _kind_title(kind: str) -> str:
    return f"{kind} runs"


#: number formats of the task-kind tables (others: as they come)
_FMT = {c: "{:,.2f}" for c in ("makespan_s", "t10_s", "t50_s", "t90_s", "t100_s",
                               "time_to_eps_s", "time_to_best_s", "sched_overhead_s")}
_FMT.update({"s_per_instance": "{:.4f}", "best_value": "{:.4f}", "optimum": "{:.4f}"})


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:80em;padding:0 1em;
color:#222}
h1{font-size:1.5em}h2{font-size:1.1em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.2em .5em;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.failed{color:#b00;font-weight:bold}td.done{color:#070}
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.4em;border:1px solid #555}
img{max-width:100%;display:block}
pre{font-size:.8em;max-height:30em;overflow:auto;background:#f8f8f8;padding:.5em}
pre.err{color:#900}summary{cursor:pointer;font-family:monospace;white-space:nowrap}
td small{white-space:nowrap;color:#666}
"""
_SCRIPT = """
function clustersimCheck() {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-figures", ok.length + "/" + imgs.length);
  document.body.setAttribute("data-run-rows",
                             document.querySelectorAll("table.runs tbody tr").length);
}
if (document.readyState === "complete") { clustersimCheck(); }
else { window.addEventListener("load", clustersimCheck); }
"""


def _page(title: str, store: Store, runs: pd.DataFrame, groups: list[Group],
          sections: list[str], others: list[tuple[str, pd.DataFrame]]) -> str:
    e = html.escape
    n_done = int((runs["status"] == "done").sum())
    versions = sorted({s.get("version", "?") for s in runs["scenario"]})
    index = "\n".join(
        f'<tr class=group><td><a href="#g{i}">{i}. {e(g.title)}</a></td>'
        f"<td class=num>{len(g.runs)}</td>"
        f"<td class=num>{int((g.runs['status'] == 'done').sum())}</td>"
        f"<td class=num>{int((g.runs['status'] == 'failed').sum())}</td>"
        f"<td>{e(', '.join(label(p) for p in ordered_policies(g.runs['policy'])))}</td></tr>"
        for i, g in enumerate(groups, start=1))
    index += "".join(
        f'\n<tr class=group><td><a href="#g{i}">{i}. {e(_kind_title(k))}</a></td>'
        f"<td class=num>{len(rows)}</td>"
        f"<td class=num>{int((rows['status'] == 'done').sum())}</td>"
        f"<td class=num>{int((rows['status'] == 'failed').sum())}</td>"
        f"<td>{e(', '.join(sorted({str(p) for p in rows['policy'] if isinstance(p, str)})))}"
        f"</td></tr>"
        for i, (k, rows) in enumerate(others, start=len(groups) + 1))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{_STYLE}</style></head>
<body data-figures="pending">
<h1>{e(title)}</h1>
<p>{_plural(len(runs), "run")} ({n_done} done, {len(runs) - n_done} failed) in
{_plural(len(groups), "group")},
from the results store <code>{e(str(store.path))}</code>; written {e(now)}.
Code versions: {', '.join(f'<code>{e(v)}</code>' for v in versions)}.
A GPU-job group is one setup (trace, cluster, slot, preset) compared across policies;
task-workload runs are grouped by kind. Open a run's key to see its resolved scenario.</p>
<table class=index><thead><tr><th>group</th><th>runs</th><th>done</th><th>failed</th>
<th>policies</th></tr></thead><tbody>
{index}
</tbody></table>
{chr(10).join(sections)}
<script>{_SCRIPT}</script>
</body></html>
"""
