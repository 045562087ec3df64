"""The ``clustersim`` command.

Subcommands: ``run`` (one scenario), ``compare`` (several policies on one
trace: a table and a bar chart), ``policies`` (what is registered, with
parameters), ``sweep`` (a grid of scenarios into the results store),
``figures`` (a paper's figure set, from the store), ``results`` (export the
store), ``report`` (one HTML page of the store) and ``validate`` (replay a real
run's log and compare). Input errors print one line naming file, line and field and exit
with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "cmd", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"clustersim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clustersim: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clustersim", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")

    r = sub.add_parser("run", help="run one scenario (a YAML file, or --trace/--cluster/--policy)")
    r.add_argument("scenario", nargs="?", help="scenario YAML")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario key (dotted keys reach into mappings)")
    _add_inline(r)
    r.add_argument("--policy", help="policy name")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="policy parameter")
    r.add_argument("--out", help="output folder (default results/<name>-<policy>)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--real", action="store_true",
                   help="run on actual Dask workers in compressed wall-clock time (docs/real.md)")
    r.add_argument("--scheduler", metavar="ADDR", help="with --real: use an existing Dask "
                   "scheduler (tcp://host:8786) instead of starting a LocalCluster")
    r.set_defaults(func=_cmd_run)

    fd = sub.add_parser("fidelity", help="run a scenario for real, replay it in simulation, "
                        "compare per-job JCTs")
    fd.add_argument("scenario", help="scenario YAML (with a real: block)")
    fd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a scenario key")
    fd.add_argument("--scheduler", metavar="ADDR", help="existing Dask scheduler")
    fd.add_argument("--out", help="output folder (default results/fidelity-<name>-<policy>)")
    fd.add_argument("--quiet", action="store_true", help="no progress bar")
    fd.set_defaults(func=_cmd_fidelity)

    c = sub.add_parser("compare", help="run several policies on one trace; table + bar chart")
    _add_inline(c)
    c.add_argument("--policies", required=True, help="comma-separated policy names")
    c.add_argument("--out", help="output folder (default results/compare-<trace>-<cluster>)")
    c.add_argument("--metric", default="deadline_satisfactory_ratio",
                   help="summary metric drawn in the bar chart")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=_cmd_compare)

    pol = sub.add_parser("policies", add_help=False,
                         help="list policies; `policies --help NAME` shows one's parameters")
    pol.add_argument("--help", "-h", nargs="?", const="", default=None, dest="name",
                     metavar="NAME", help="describe one policy")
    pol.add_argument("pname", nargs="?", help=argparse.SUPPRESS)
    pol.set_defaults(func=_cmd_policies)

    sw = sub.add_parser("sweep", help="run a grid of scenarios into the results store "
                        "(skips runs already done)")
    sw.add_argument("grid", help="grid YAML: base scenario + vary (see sim/sweep.py)")
    _add_sweep_options(sw)
    sw.set_defaults(func=_cmd_sweep)

    fg = sub.add_parser("figures", help="run what a paper's figures need, then draw them "
                        "from the store")
    from analysis import FIGURE_SETS

    fg.add_argument("figure_set", metavar="SET", choices=list(FIGURE_SETS),
                    help=f"figure set: {', '.join(FIGURE_SETS)}")
    fg.add_argument("--only", metavar="IDS", help="comma-separated figure ids (e.g. 8a,10)")
    fg.add_argument("--out", help="output folder (default results/figures/<set>/)")
    _add_sweep_options(fg)
    fg.set_defaults(func=_cmd_figures)

    va = sub.add_parser("validate", help="replay a real run's log in simulation and compare "
                        "completion curves")
    va.add_argument("system", choices=["taskvine"], help="log format: taskvine")
    va.add_argument("log", help="TaskVine transaction log")
    va.add_argument("--policy", default="reuse", help="policy (default reuse)")
    va.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="policy parameter (default install=demand, overcommit_slots=true)")
    va.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    va.add_argument("--variant", choices=["2023", "current"], help="log variant (default: "
                    "detected)")
    va.add_argument("--out", help="output folder (default results/validate-<log name>)")
    va.add_argument("--quiet", action="store_true", help="no progress bar")
    va.set_defaults(func=_cmd_validate)

    rs = sub.add_parser("results", help="export the store's runs, jobs, timeline and items "
                        "tables")
    rs.add_argument("--store", default=None, help="results store (default "
                    "results/clustersim.sqlite)")
    rs.add_argument("--format", choices=["csv", "parquet"], default="csv",
                    help="file format (parquet needs pyarrow)")
    rs.add_argument("--out", default="results/export", help="output folder "
                    "(default results/export)")
    rs.set_defaults(func=_cmd_results)

    rp = sub.add_parser("report", help="one self-contained HTML page of the store: figures, "
                        "metric tables, every run's scenario")
    rp.add_argument("--store", default=None, help="results store (default "
                    "results/clustersim.sqlite)")
    rp.add_argument("--out", default="results/report.html",
                    help="HTML file to write (default results/report.html)")
    rp.add_argument("--title", default="clustersim results", help="page title")
    rp.set_defaults(func=_cmd_report)
    return p


def _add_sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None,
                   help="results store (default results/clustersim.sqlite)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="Dask worker processes (default: one per core; 1 = in this process)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="use an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario key in every run (after vary)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_inline(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", help="trace CSV (ElasticFlow or ITP columns; .gz accepted)")
    p.add_argument("--cluster", help="cluster spec: name (n16g8), CSV or YAML file")
    p.add_argument("--slot", type=float, help="scheduling slot, seconds")
    p.add_argument("--gpu-type", choices=["A100", "T4"], help="throughput table")
    p.add_argument("--preset", choices=["clean", "elasticflow-artifact"],
                   help="semantics preset (default clean)")


def _inline_dict(args: argparse.Namespace, policy: str | None) -> dict:
    d: dict = {}
    if args.trace:
        d["trace"] = args.trace
    if args.cluster:
        d["cluster"] = args.cluster
    if args.slot is not None:
        d["slot_s"] = args.slot
    if args.gpu_type:
        d["gpu_type"] = args.gpu_type
    if args.preset:
        d["preset"] = args.preset
    if policy:
        d["policy"] = policy
    return d


def _progress(args: argparse.Namespace) -> bool | str:
    """How to show progress: a redrawn bar on a terminal, plain lines in a log, or not."""
    if getattr(args, "quiet", False):
        return False
    return "bar" if sys.stderr.isatty() else "lines"


#: Seconds between two progress lines of a single run when stderr is not a terminal.
LINE_EVERY_S = 30.0


def _progress_bar(enabled: bool | str, label: str, unit: str = "job"):
    """(update callback for the engine, close) of a bar of ``unit``s done, or no-ops.

    ``enabled`` is ``True``/``"bar"`` (a tqdm bar), ``"lines"`` (a plain line at most
    every :data:`LINE_EVERY_S` seconds, for logs) or ``False``."""
    if not enabled:
        return None, lambda: None

    def what(now_s: float) -> str:
        return (f"simulated time {now_s / 3600:.1f} h" if unit == "job"
                else f"sim time {now_s:.0f} s")

    if enabled == "lines":
        import time

        last = [time.monotonic()]

        def line(now_s: float, done: int, total: int) -> None:
            t = time.monotonic()
            if t - last[0] >= LINE_EVERY_S:
                last[0] = t
                print(f"{label}: {done}/{total} {unit}s done, {what(now_s)}",
                      file=sys.stderr, flush=True)

        return line, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=0, desc=label, unit=unit, leave=False, file=sys.stderr,
               bar_format=f"{{desc}}: {{n}}/{{total}} {unit}s done{{postfix}} [{{elapsed}}]")

    def update(now_s: float, done: int, total: int) -> None:
        """Called by the engine after every scheduling instant."""
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what(now_s), refresh=False)
        bar.update(0)

    return update, bar.close


def _cmd_run(args: argparse.Namespace) -> int:
    """Run one scenario of any kind (:mod:`sim.kinds`) and write its run folder."""
    from sim import kinds

    inline = any([args.trace, args.cluster, args.policy, args.slot, args.gpu_type, args.preset])
    if args.scenario:
        if inline:
            raise InputError("give either a scenario file or --trace/--cluster/--policy, not both")
        kind, scn = kinds.load(args.scenario, args.set)
    else:
        from sim.scenario import set_dotted

        if not (args.trace and args.cluster and args.policy):
            raise InputError("run needs a scenario file, or --trace, --cluster and --policy")
        d = _inline_dict(args, args.policy)
        for s in args.set:
            set_dotted(d, s)
        if args.param:
            d.setdefault("params", {})
            for kv in args.param:
                set_dotted(d["params"], kv)
        d.setdefault("name", Path(args.trace).stem)
        kind = kinds.get("gpu-jobs")  # the inline form describes GPU jobs
        scn = kind.from_dict(d, source="<command line>")
    if args.scheduler and not args.real:
        raise InputError("--scheduler needs --real", field="--scheduler")
    out = Path(args.out or kind.default_out(scn) + ("-real" if args.real else ""))
    upd, close = _progress_bar(_progress(args), kind.label(scn),
                               kind.item)
    try:
        if args.real:
            res = kind.run_real(scn, out, args.scheduler, upd)
        else:
            res = kind.run(scn, progress=upd)
    finally:
        close()
    if not args.real:
        out = kind.write(res, out)
    for line in kind.describe(res):
        print(line)
    print(f"wrote {out}/")
    return 0


def _cmd_fidelity(args: argparse.Namespace) -> int:
    from sim.fidelity import run_fidelity
    from sim.scenario import load_scenario

    scn = load_scenario(args.scenario, args.set)
    out = Path(args.out or f"results/fidelity-{scn.name}-{scn.policy}")
    upd, close = _progress_bar(_progress(args), f"{scn.policy} (real)")
    try:
        rep = run_fidelity(scn, out, scheduler=args.scheduler, progress=upd)
    finally:
        close()
    t = rep.table
    rows = [{"job": j, "real JCT": rj, "sim JCT": sj, "real/sim": r, "status": rs
             if rs == ss else f"{rs}/{ss}"}
            for j, rj, sj, r, rs, ss in zip(t.job_id, t.real_jct_s, t.sim_jct_s,
                                            t.ratio_real_sim, t.real_status, t.sim_status)]
    _print_table(rows, ["job", "real JCT", "sim JCT", "real/sim", "status"])
    sm = rep.summary
    cal = sm["calibration_s"]
    print(f"{sm['jobs_compared']} jobs compared ({sm['outcome_mismatches']} outcome "
          f"mismatches); |sim/real - 1|: median {_pct(sm['median_abs_error'])}, "
          f"p95 {_pct(sm['p95_abs_error'])}, max {_pct(sm['max_abs_error'])}")
    print("overheads: " + ("calibrated from the real run: " + ", ".join(
        f"{k} {v:.1f} s" for k, v in cal.items()) if cal else "the simulator's model "
        "(set real.calibrate_overhead to calibrate)"))
    print(f"real run {sm['real_wall_s']:.0f} s wall at compression {sm['compression']:g}; "
          f"wrote {out}/")
    return 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    from sim.runner import prepare, run_prepared, write_run
    from sim.scenario import scenario_from_dict

    if not (args.trace and args.cluster):
        raise InputError("compare needs --trace and --cluster")
    names = [n.strip() for n in args.policies.split(",") if n.strip()]
    if not names:
        raise InputError("--policies is empty", field="--policies")
    # validate everything before running anything
    prepared = []
    for name in names:
        d = _inline_dict(args, name)
        d["name"] = Path(args.trace).name.split(".")[0]
        prepared.append(prepare(scenario_from_dict(d, source="<command line>")))
    out = Path(args.out or f"results/compare-{prepared[0].scenario.name}-"
               f"{prepared[0].cluster.name}")
    results = []
    for p in prepared:
        upd, close = _progress_bar(_progress(args), p.scenario.policy)
        try:
            res = run_prepared(p, progress=upd)
        finally:
            close()
        results.append(res)
        write_run(res, out / p.scenario.policy)
        if not args.quiet:
            print(f"  {p.scenario.policy}: done in {res.summary['wall_s']:.1f} s", file=sys.stderr)
    summaries = [r.summary for r in results]
    _print_summary(summaries)
    (out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    from sim.plots import bar_chart

    png = bar_chart(summaries, args.metric, out / "compare.png",
                    title=f"{prepared[0].scenario.name} on {prepared[0].cluster.name}")
    print(f"wrote {out}/ and {png}")
    return 0


def _store_path(args: argparse.Namespace) -> Path:
    from sim.store import DEFAULT_STORE

    return Path(args.store) if args.store else DEFAULT_STORE


def _check_workers(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}", field="--workers")


def _sweep(grid, store, args: argparse.Namespace, client=None) -> bool:
    """Run ``grid`` into ``store``; print one line; True if no run failed."""
    from sim.sweep import run_sweep

    def failed(spec, error: str) -> None:
        print(f"clustersim: run failed ({spec.where}): {error}", file=sys.stderr)

    rep = run_sweep(grid.runs, store, workers=args.workers, scheduler=args.scheduler,
                    progress=_progress(args), label=grid.name,
                    on_failure=failed, client=client)
    print(f"{grid.name}: {rep.total} runs: {rep.skipped} already done, {len(rep.done)} done "
          f"now, {len(rep.failed)} failed")
    return not rep.failed


def _workers_for(grids: list, args: argparse.Namespace):
    """One Dask client for every run the grids still need (a null context when serial).

    Entered before the store is opened, so an unreachable scheduler leaves no store file.
    """
    import contextlib

    from sim.store import Store
    from sim.sweep import cores, dask_client

    keys = {r.key for g in grids for r in g.runs}
    path = _store_path(args)
    if path.exists():
        with Store(path, create=False) as store:
            keys -= {k for k, st in store.statuses(keys).items() if st == "done"}
    n = min(args.workers or cores(), len(keys))
    if keys and (args.scheduler or n > 1):  # nothing to run: no workers, no scheduler
        return dask_client(n, args.scheduler)
    return contextlib.nullcontext(None)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from sim.store import Store
    from sim.sweep import load_grid

    _check_workers(args)
    grid = load_grid(args.grid, args.set)  # validates everything before the store is opened
    path = _store_path(args)
    with _workers_for([grid], args) as client, Store(path) as store:
        ok = _sweep(grid, store, args, client)
        runs = store.runs([r.key for r in grid.runs])
    from sim import kinds

    coords = {r.key: r.coords for r in grid.runs}
    rows = [{**(sm or {}), **coords[k], "status": st}
            for k, st, sm in zip(runs["key"], runs["status"], runs["summary"])]
    kind = kinds.get(grid.runs[0].kind) if grid.runs else kinds.get("gpu-jobs")
    _print_table(rows, [*grid.axes, "status", *kind.columns])
    print(f"store: {path}")
    return 0 if ok else 1


def _cmd_figures(args: argparse.Namespace) -> int:
    """Run what the chosen figures need and is not in the store yet, then draw them."""
    from analysis import figure_set
    from sim.store import Store

    _check_workers(args)
    figset = figure_set(args.figure_set)
    wanted = list(figset.FIGURES)
    if args.only:
        wanted = [f.strip() for f in args.only.split(",") if f.strip()]
        bad = [f for f in wanted if f not in figset.FIGURES]
        if bad or not wanted:
            raise InputError(f"unknown figure {bad[0] if bad else '(none)'!r}; "
                             f"{args.figure_set} has {', '.join(figset.FIGURES)}",
                             field="--only")
    figs = [figset.FIGURES[f] for f in wanted]
    grids = [f.needs(args.set) for f in figs]  # validate all first
    out = Path(args.out or f"results/figures/{args.figure_set}")
    ok = True
    # one pool of workers for every figure that has runs to do
    with _workers_for(grids, args) as client, Store(_store_path(args)) as store:
        for fig, grid in zip(figs, grids):
            ok = _sweep(grid, store, args, client) and ok
            runs = store.runs([r.key for r in grid.runs])
            runs["label"] = [r.name for r in grid.runs]
            paths = fig.draw(runs, store, out)
            print(f"figure {fig.id}: " + ", ".join(str(p) for p in paths))
    return 0 if ok else 1


def _cmd_validate(args: argparse.Namespace) -> int:
    from sim.scenario import set_dotted
    from sim.taskrun import (
        QUANTILES,
        quantile_time,
        run_task_scenario,
        task_scenario_from_dict,
        write_task_run,
    )
    from sim.traces.taskvine import read_log

    params: dict = {"install": "demand", "overcommit_slots": True} if args.policy == "reuse" \
        else {}
    for kv in args.param:
        set_dotted(params, kv)
    log = Path(args.log)
    real = read_log(log, variant=args.variant)  # validates the log before anything runs
    wl: dict = {"taskvine_log": str(log)}
    if args.variant:
        wl["variant"] = args.variant
    scn = task_scenario_from_dict({"name": f"validate-{log.name.split('.')[0]}", "workload": wl,
                                   "policy": args.policy, "params": params, "seed": args.seed},
                                  source="<command line>")
    upd, close = _progress_bar(_progress(args), scn.policy, "task")
    try:
        res = run_task_scenario(scn, progress=upd)
    finally:
        close()
    real_t = real.completions()
    total = len(res.workload.tasks)
    print(f"{log}: {total} tasks replayed on {len(res.workload.workers)} workers "
          f"({real.variant} log), policy {args.policy} {params}")
    for n in res.notes:
        print(f"note: {n}")
    print(f"{'completed':>9}  {'real s':>8}  {'sim s':>8}  {'error':>7}")
    for q in QUANTILES:
        r, m = quantile_time(real_t, q, total), quantile_time(res.completions, q, total)
        err = f"{(m - r) / r * 100:+.1f}%" if r and m is not None else "-"
        print(f"{int(q * 100):>8}%  {_fmt_s(r):>8}  {_fmt_s(m):>8}  {err:>7}")
    out = write_task_run(res, Path(args.out or f"results/{scn.name}"))
    with (out / "real_completions.csv").open("w") as fh:
        fh.write("done,time_s\n")
        fh.writelines(f"{i},{t:.6f}\n" for i, t in enumerate(real_t, start=1))
    print(f"curves: {out}/completions.csv (simulated), {out}/real_completions.csv (real); "
          f"simulated log: {out}/transactions")
    return 0


def _fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _cmd_results(args: argparse.Namespace) -> int:
    import importlib.util

    from sim.store import Store

    if args.format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise InputError("parquet export needs pyarrow, which is not installed "
                         "(pip install pyarrow), or use --format csv", field="--format")
    out = Path(args.out)
    with Store(_store_path(args), create=False) as store:
        from sim.store import TABLES

        tables = {name: store.table(name) for name in TABLES}
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        path = out / f"{name}.{args.format}"
        tmp = out / f".{name}.{args.format}.tmp"
        try:
            if args.format == "csv":
                df.to_csv(tmp, index=False)
            else:
                df.to_parquet(tmp, index=False)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        print(f"wrote {path} ({len(df)} rows)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import write_report
    from sim.store import Store

    with Store(_store_path(args), create=False) as store:
        info = write_report(store, args.out, title=args.title)
    print(f"wrote {info.path} ({info.runs} runs in {info.groups} group(s), "
          f"{info.figures} figures, {info.path.stat().st_size / 1024:.0f} KB)")
    return 0


def _print_table(rows: list[dict], cols: list[str]) -> None:
    from sim.kinds import table_lines

    for line in table_lines(rows, cols):
        print(line)


def _print_summary(summaries: list[dict]) -> None:
    from sim.kinds import summary_lines

    for line in summary_lines(summaries):
        print(line)


def _cmd_policies(args: argparse.Namespace) -> int:
    from sim import registry

    name = args.name or args.pname
    if name:
        cls = registry.get(name)
        print(f"{cls.NAME}: {cls.SUMMARY}\n")
        doc = (cls.__doc__ or "").strip()
        if doc:
            print(doc + "\n")
        rows = cls.describe_params()
        if not rows:
            print("parameters: none")
        for pname, ptype, default, help_ in rows:
            print(f"  {pname} ({ptype}, default {default!r}): {help_}")
        return 0
    if args.name == "":
        print("usage: clustersim policies [--help NAME]\n")
    for n in registry.names():
        cls = registry.get(n)
        params = ", ".join(r[0] for r in cls.describe_params()) or "-"
        print(f"{n:16s} {cls.SUMMARY}  [params: {params}]")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
