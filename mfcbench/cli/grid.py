"""`python -m mfcbench grid --config workflow/config/paper.yaml`: a profile's cells and closed-form #WU.

Prints every table's cells and #WU (what `snakemake -n` prints); the options below check the profile,
write its schema or manifest, list cells trained by other code, or predict the training time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ..core.atomic import write_json, write_text
from ..core.cell import CellFiles
from ..pipeline import cells, checks, profile_checks, runlock, schema, summary
from ..pipeline.gather import stale_code_cells
from ..train.manifest import training_code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(schema.ROOT / "workflow" / "config" / "default.yaml"),
                        help="the profile (default: workflow/config/default.yaml)")
    parser.add_argument("--cells", action="store_true", help="also list every cell directory")
    parser.add_argument("--check", action="store_true",
                        help="run every cell's start-up checks (model options, mesh sizes, registries); exit 1 on a problem")
    parser.add_argument("--schema", action="store_true", help="print the whole generated profile schema and exit")
    parser.add_argument("--write-schema", action="store_true",
                        help=f"regenerate mfcbench/pipeline/{schema.SCHEMA_PATH.name} (after changing an option, a "
                             "strategy, a task or the output catalogue) and exit")
    parser.add_argument("--check-schema", action="store_true", help=f"exit 1 when {schema.SCHEMA_PATH.name} is stale")
    parser.add_argument("--manifest", metavar="OUT",
                        help="write the profile's run manifest (commit, versions, scale, the training-code digest) "
                             "as the workflow does, and exit")
    parser.add_argument("--stale-code", action="store_true",
                        help="list the metrics.json of every finished cell trained by other training code than this checkout's "
                             "(manifest.training_code) and exit; retrain them with `snakemake --cores all "
                             "--forcerun $(python -m mfcbench grid --config P --stale-code)`")
    parser.add_argument("--refuse-if-running", action="store_true",
                        help="exit 1 naming the lock when a Snakemake run holds this checkout (.snakemake/mfcbench.lock): "
                             "dvc.yaml's prepare stages run it first, so `dvc repro` never rebuilds data under a run")
    parser.add_argument("--predict", action="store_true",
                        help="also print the predicted training time of every table on this machine (and on a GPU), from "
                             "measured step times (the cost model)")
    parser.add_argument("--rates", action="append", metavar="CSV",
                        help="with --predict: rates files (rows of `measure scaling` or gpu-check's scaling_<device>.csv; "
                             "default results/<profile>/scaling.csv and reports/gpu/scaling_cuda.csv)")
    return parser


def _schema(args: argparse.Namespace) -> int:
    text = schema.schema_text()
    if args.schema:
        print(text, end="")
    elif args.write_schema:
        write_text(schema.SCHEMA_PATH, text)
        print(f"wrote {schema.SCHEMA_PATH}")
    elif schema.SCHEMA_PATH.read_text() != text:
        print(f"mfcbench grid: {schema.SCHEMA_PATH} is out of date with the options, registries or catalogue; "
              "run `python -m mfcbench grid --write-schema`", file=sys.stderr)
        return 1
    return 0


def _predict(config: dict, rates: list[str] | None) -> int:
    """Print the prediction; 1 (the fix printed) when a rates file is missing."""
    from .measure import default_rate_files, prediction_text

    try:
        print(prediction_text(config, [Path(p) for p in rates] if rates else default_rate_files(config)))
    except FileNotFoundError as exc:
        print(f"mfcbench grid --predict: {exc}", file=sys.stderr)
        return 1
    return 0


def stale_code_metrics(config: dict) -> list[str]:
    """metrics.json of the profile's finished cells whose training code differs from this checkout's."""
    results = Path(config["results_dir"]) / config["profile"]
    dirs = [results / cell.relpath() for cell in cells.iter_cells(config)]
    return [str(CellFiles(d).metrics) for d, _, _ in stale_code_cells(dirs, training_code())]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.refuse_if_running:
        refused = runlock.refusal(schema.ROOT)
        if refused:
            print(f"mfcbench: {refused}", file=sys.stderr)
        return 1 if refused else 0
    if args.schema or args.write_schema or args.check_schema:
        return _schema(args)
    try:
        profile_checks.load_profile(args.config)  # a YAML syntax error or duplicated key: file:line:column, one line
        config = schema.load_config(args.config)
        if args.manifest:
            write_json(args.manifest, {**summary.run_manifest(config), "training_code": training_code()})
            return 0
        if args.stale_code:
            for path in stale_code_metrics(config):
                print(path)
            return 0
        # the profile's text first, as the Snakefile does (paths, numbers, batches), then every cell's start-up checks
        problems = (profile_checks.check_profile(config) or checks.check_cells(config)) if args.check else []
        text = summary.format_summary(config)
    except profile_checks.ProfileError as exc:  # already names the file
        print(f"mfcbench grid: {exc}", file=sys.stderr)
        return 2
    except (schema.ConfigError, OSError, yaml.YAMLError) as exc:
        print(f"mfcbench grid: {args.config}: {exc}", file=sys.stderr)
        return 2
    print(text)
    failed = _predict(config, args.rates) if args.predict else 0
    for problem in problems:
        print(f"mfcbench grid: {Path(args.config).name}: {problem}", file=sys.stderr)
    for warning in checks.unjudgeable_cells(config) if args.check and not problems else []:  # runs, but cannot be called converged
        print(f"mfcbench grid: {Path(args.config).name}: warning: {warning}", file=sys.stderr)
    if args.cells:
        for cell in cells.iter_cells(config):
            print(cell.relpath())
    return 1 if problems or failed else 0
