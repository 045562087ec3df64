"""The ``clustersim`` command.

Subcommands: ``run`` (one scenario), ``compare`` (several policies on one
trace: a table and a bar chart), ``policies`` (what is registered, with
parameters). Input errors print one line naming file, line and field and exit
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
    r.set_defaults(func=_cmd_run)

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
    return p


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


def _progress_bar(enabled: bool, label: str):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=0, desc=label, unit="job", leave=False, file=sys.stderr,
               bar_format="{desc}: {n}/{total} jobs done {postfix}")

    def update(now_s: float, done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(f"sim time {now_s / 3600:.1f} h", refresh=False)
        bar.update(0)

    return update, bar.close


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.runner import run_scenario, write_run
    from sim.scenario import load_scenario, scenario_from_dict, set_dotted

    if args.scenario:
        scn = load_scenario(args.scenario, args.set)
        if any([args.trace, args.cluster, args.policy, args.slot, args.gpu_type, args.preset]):
            raise InputError("give either a scenario file or --trace/--cluster/--policy, not both")
    else:
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
        scn = scenario_from_dict(d, source="<command line>")
    upd, close = _progress_bar(not args.quiet and sys.stderr.isatty(), scn.policy)
    try:
        res = run_scenario(scn, progress=upd)
    finally:
        close()
    out = Path(args.out or f"results/{scn.name}-{scn.policy}")
    write_run(res, out)
    _print_summary([res.summary])
    print(f"wrote {out}/")
    return 0


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
        upd, close = _progress_bar(not args.quiet and sys.stderr.isatty(), p.scenario.policy)
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


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def _print_summary(summaries: list[dict]) -> None:
    cols = [("policy", "policy"), ("deadline_satisfactory_ratio", "ratio"),
            ("accepted", "met"), ("declined", "declined+late"), ("jct_mean_s", "JCT mean s"),
            ("be_jct_mean_s", "BE JCT mean s"), ("makespan_s", "makespan s"),
            ("gpu_utilisation", "GPU util"), ("wall_s", "wall s")]
    rows = [[_fmt(s.get(k)) for k, _ in cols] for s in summaries]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (_, h) in enumerate(cols)]
    print("  ".join(h.ljust(w) for (_, h), w in zip(cols, widths)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


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
