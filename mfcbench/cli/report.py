"""`python -m mfcbench report {table,figure,claims,markdown,plan-seeds,verdicts}`: the pipeline's report entry points;
`verdicts` rebuilds reports/published/VERDICTS.md and verdicts.csv from the committed snapshots (`--check`: compare only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ..core.atomic import write_csv, write_text

RESULTS_HELP = "results/<profile>: refused when it does not exist or holds no result CSV"
ONLY_HELP = ("the result files the profile builds (the rule's inputs): other CSVs in --results-dir, e.g. left by an "
             "extra the profile dropped, are not read")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench report", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="paper-layout table: one row per printed cell")
    table.add_argument("--name", required=True, help="table1 .. table15")
    table.add_argument("--input", action="append", default=[], help="result CSV (repeatable)")
    table.add_argument("--config", help="profile config (Tables 13/14 settings: what was used)")
    table.add_argument("--out", required=True)
    figure = sub.add_parser("figure", help="figure PNG plus the CSV behind it")
    figure.add_argument("--name", required=True, help="fig3, fig4, fig5 or fig7")
    figure.add_argument("--input", action="append", default=[], required=True)
    figure.add_argument("--out", required=True)
    claims = sub.add_parser("claims", help="one verdict per claim")
    claims.add_argument("--results-dir", required=True, help=RESULTS_HELP)
    claims.add_argument("--profile", help="defaults to the results folder's name")
    claims.add_argument("--out", required=True, help="claims.csv; pairs.csv and cells.csv are written beside it")
    claims.add_argument("--pairs", help="pairs.csv (default: beside --out)")
    claims.add_argument("--cells", help="cells.csv (default: beside --out)")
    claims.add_argument("--only", nargs="*", default=None, help=ONLY_HELP)
    plan = sub.add_parser("plan-seeds", help="a table's second round of seeds, from its first round (seeds.json)")
    plan.add_argument("--config", required=True, help="the profile as the run sees it (results/<profile>/config.yaml)")
    plan.add_argument("--table", required=True)
    plan.add_argument("--input", required=True, help="the first round's gathered table (results/<profile>/seedplan/<table>.csv)")
    plan.add_argument("--results", required=True, help="results/<profile>: the added cells' cell.yaml are written there")
    plan.add_argument("--out", required=True, help="results/<profile>/<table>.seeds.json")
    markdown = sub.add_parser("markdown", help="REPORT.md")
    markdown.add_argument("--results-dir", required=True, help=RESULTS_HELP)
    markdown.add_argument("--reports-dir", required=True)
    markdown.add_argument("--profile", help="defaults to the results folder's name")
    markdown.add_argument("--config", help="profile config YAML, rendered beside Tables 13/14")
    markdown.add_argument("--out", required=True)
    markdown.add_argument("--only", nargs="*", default=None, help=ONLY_HELP)
    verdicts = sub.add_parser("verdicts", help="VERDICTS.md and verdicts.csv: every verdict of the committed snapshots")
    verdicts.add_argument("--published-root", default="reports/published",
                          help="the folder holding one snapshot per profile; the page is written there")
    verdicts.add_argument("--check", action="store_true",
                          help="write nothing: name each file of the page that differs from the snapshots (exit 1)")
    return parser


def _config(path: str | None) -> dict | None:
    if not path:
        return None
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"mfcbench report {args.command}: {error}", file=sys.stderr)
        return 2


def check_results_dir(results_dir: str, only: list[str] | None) -> None:
    """Refuse a results folder that does not exist or holds none of the result CSVs to read (a typo would
    otherwise score every claim NOT_RUN and exit 0). `--only` with no file: the profile builds none."""
    folder = Path(results_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder; give the results folder of a run (results/<profile>)")
    if only != [] and not any(folder.glob("*.csv")):
        raise ValueError(f"{folder} holds no result CSVs; give the results folder of a run that gathered its tables "
                         "(results/<profile>), or run snakemake first")


def _claims(args: argparse.Namespace) -> None:
    """claims.csv, and beside it pairs.csv (every compared pair) and cells.csv (every cell behind them)."""
    from ..report.claims import load_claims, score_all
    from ..report.evidence import cells_frame
    from ..report.layout import load_results_dir
    from ..report.seedplan import annotate, load_plans

    profile = args.profile or Path(args.results_dir).name
    claims, results = load_claims(), load_results_dir(args.results_dir, args.only)
    verdicts, pairs = score_all(claims, results, profile)
    pairs = annotate(pairs, load_plans(args.results_dir, args.only))  # the seeds each pair received, and why
    out = Path(args.out)
    write_csv(args.pairs or out.with_name("pairs.csv"), pairs)
    write_csv(args.cells or out.with_name("cells.csv"), cells_frame(results, claims))
    write_csv(out, verdicts)


def _plan_seeds(args: argparse.Namespace) -> None:
    """Score the first round's cells by every claim on the table, plan the added seeds, write their cell.yaml
    and the plan (mfcbench/report/seedplan.py, mfcbench/pipeline/seeds.py)."""
    import pandas as pd

    from ..pipeline import seeds
    from ..pipeline.cells import seed_pool
    from ..report.seedplan import plan_table

    config = _config(args.config) or {}
    spec = (config.get("tables") or {}).get(args.table)
    if not spec or not spec.get("seed_plan"):
        raise ValueError(f"{args.config}: tables.{args.table}.seed_plan is not set; add one or drop plan-seeds")
    rule = spec["seed_plan"]
    plan = plan_table(pd.read_csv(args.input), args.table, seed_pool(spec), len(spec["seeds"]),
                      int(rule.get("step", 1)), rule.get("force_needed"))
    _, plan = seeds.write_plan(config, args.results, args.table, plan, args.out)
    for pair in plan["pairs"]:
        print(f"{args.table} {pair['arch']}/{pair['strategy']}: {pair['reason']}")


def _verdicts(args: argparse.Namespace) -> int:
    """Rebuild the verdict page from the snapshots under --published-root, or (--check) compare it."""
    from ..report import verdicts
    from ..train.manifest import training_code

    if args.check:
        bad = verdicts.differences(args.published_root, training_code())
        for line in bad:
            print(f"mfcbench report verdicts --check: {line}", file=sys.stderr)
        return 1 if bad else 0
    for path in verdicts.write(args.published_root, training_code()):
        print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command in ("claims", "markdown"):
        check_results_dir(args.results_dir, args.only)
    if args.command == "table":
        from ..report.layout import build_table, read_results, settings_frame
        from ..report.published import published_table

        spec = published_table(args.name)
        if spec.get("blocks"):
            frame, notes = read_results(args.input)
            out = build_table(args.name, frame, notes or (None if args.input else ["no --input given"]))
        else:
            out = settings_frame(args.name, _config(args.config))
        write_csv(args.out, out)
    elif args.command == "figure":
        from ..figures.paper import render

        render(args.name, args.input, args.out)
    elif args.command == "claims":
        _claims(args)
    elif args.command == "plan-seeds":
        _plan_seeds(args)
    elif args.command == "verdicts":
        return _verdicts(args)
    elif args.command == "markdown":
        from ..report.markdown import build_report

        profile = args.profile or Path(args.results_dir).name
        write_text(args.out, build_report(args.results_dir, args.reports_dir, profile, _config(args.config),
                                             args.only))
    return 0
