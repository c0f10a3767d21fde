"""`python -m mfcbench measure <what> --out F.csv`: FLOP and timing tables as tidy CSV.

    measure scaling --config workflow/config/default.yaml --out results/default/scaling.csv [--sizes 32,64] [--quick]
    measure cost-check --results-dir results/converged [--rates results/converged/scaling.csv] [--out F.csv]
    measure predict --config workflow/config/paper.yaml [--rates F.csv ...]
    measure knobs --config workflow/config/converged.yaml --tables table4 --sizes 32 --out F.csv [--knobs n0,threads]

`scaling` times the trained step of SGD, Multiscale-SGD and each Full-Multiscale level of every
network of the chosen tables (default Tables 4 and 5) at each size, with the profile's batch sizes
(mfcbench/measure/scaling.py); its rows are also the rates of the cost model
(mfcbench/measure/costmodel.py): `predict` prices every cell of a profile from them, `cost-check`
compares the prices with a run's recorded train_seconds (median absolute relative error).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..measure import suites
from ..measure.flop_handles import CONVENTION
from ..measure.timing import device_available
from ._args import positive_float, positive_int

WHATS = {
    "table11": "FLOPs of Conv2d(32,32,k) vs the MFC 32->32 (both mixings), n in 32..256, k in 5..15",
    "flops-models": "FLOPs and parameters of every registered model at its table's resolution",
    "fig7": "forward time of one Conv2d (k in 3..13) vs one MFC, n in 32..512, 3 and 32 channels",
    "table15": "ms per training iteration: SGD (15 images) vs Multiscale-SGD (4 levels) at 256^2",
    "scaling": "step time of SGD, Multiscale-SGD and each Full-Multiscale level per network and size (+ #WU ratios)",
    "knobs": "torch.compile, the first batch N0 and threads per job vs jobs, on the trained step (--knobs)",
    "cost-check": "predicted vs recorded train_seconds of a run's cells (--results-dir)",
    "predict": "predicted training time of a profile's cells from measured step times (--rates)",
    "convention": "print the FLOP counting convention",
}
ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_PROFILE = ROOT / "workflow" / "config" / "default.yaml"
DEFAULT_TABLES = ("table4", "table5")  # the resolution-scaling study's networks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench measure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(f"  {k:<13} {v}" for k, v in WHATS.items()))
    parser.add_argument("what", choices=sorted(WHATS), help="which table to measure")
    parser.add_argument("--out", help="CSV to write (atomically); required for the tables")
    parser.add_argument("--quick", action="store_true", help="timing: fewer sizes and repeats (smoke test)")
    parser.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"),
                        help="timing: auto (CUDA when present, else CPU), cpu or cuda (fig7 and scaling default cpu; "
                             "table15 default both, cuda rows say 'not measured: no CUDA device' without one)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for timing (default 2; scaling: the profile's threads_per_cell)")
    parser.add_argument("--models", default="resnet,mfc_resnet", help="table15: comma-separated model names")
    group = parser.add_argument_group("scaling, predict")
    group.add_argument("--config", default=str(DEFAULT_PROFILE), help="the profile whose batch sizes and schedules apply")
    group.add_argument("--tables", default="",
                       help="scaling: comma-separated tables of the profile, or 'all' (each network once: cost-model "
                            "rates); default: Tables 4 and 5, those the profile has")
    group.add_argument("--archs", default="", help="scaling: comma-separated networks (default: every one of the tables)")
    group.add_argument("--sizes", default="", help="scaling: comma-separated finest-mesh sizes (default 32,64,128,256; "
                                                   "--quick 16,32)")
    group.add_argument("--repeats", type=positive_int, default=None, help="scaling: timed steps per row (default 10)")
    group.add_argument("--max-seconds", type=positive_float, default=10.0,
                       help="scaling: stop timing a row after this many seconds (at least 3 steps)")
    parser.add_argument("--knobs", default="compile,n0,threads",
                        help="knobs: which to measure (mfcbench/measure/knobs.py), comma-separated")
    group = parser.add_argument_group("cost-check, predict")
    group.add_argument("--results-dir", help="cost-check: the run's results folder, e.g. results/converged")
    group.add_argument("--rates", action="append", default=None,
                       help="rates CSV (scaling rows); repeatable (default: <results-dir or results/<profile>>/scaling.csv)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if device_available("cuda") else "cpu"
    if args.what == "convention":
        print(CONVENTION)
        return 0
    if args.what in ("cost-check", "predict"):
        return cost_check(args) if args.what == "cost-check" else predict(args)
    if not args.out:
        raise SystemExit(f"measure {args.what}: --out is required")
    threads = args.threads or 2
    if args.what == "table11":
        rows = suites.table11_rows()
    elif args.what == "flops-models":
        rows = suites.flops_models_rows()
    elif args.what == "fig7":
        rows = suites.fig7_rows(args.device or "cpu", threads, args.quick)
    elif args.what == "scaling":
        rows = scaling(args)
    elif args.what == "knobs":
        rows = knobs(args)
    else:
        devices = (args.device,) if args.device else ("cpu", "cuda")
        rows = suites.table15_rows(args.models.split(","), devices, threads=threads, quick=args.quick)
    suites.write_rows(args.out, rows)
    print(f"measure {args.what}: {len(rows)} rows -> {args.out}")
    return 0


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def load_profile(path: str) -> dict:
    from ..pipeline.schema import ConfigError, load_config

    try:
        return load_config(path)
    except (ConfigError, OSError, ValueError) as error:
        raise SystemExit(f"mfcbench measure: {path}: {error}") from None


def scaling_settings(config: dict, tables: list[str] | None = None, archs: list[str] | None = None,
                     strategies: tuple[str, ...] = ("sgd", "msgd", "fmsgd")) -> list:
    """The scaling study's settings: each (table, arch) of the profile with every strategy's
    resolved cell config (the profile's batches, levels, schedule and model options)."""
    from ..measure.scaling import settings_from_configs
    from ..pipeline.cells import cell_config

    configs, tasks, seen = {}, {}, set()
    if not tables:  # Tables 4 and 5 where the profile has them, else every table it trains
        tables = [t for t in DEFAULT_TABLES if t in config.get("tables", {})] or list(config.get("tables", {}))
        if not tables:
            raise SystemExit("mfcbench measure scaling: the profile trains no table; name a profile that does")
    tables = list(config.get("tables", {})) if tables == ["all"] else tables
    for table in tables:
        if table not in config.get("tables", {}):
            raise SystemExit(f"mfcbench measure scaling: table {table!r} is not in the profile; "
                             f"valid choices: {', '.join(config.get('tables', {}))}")
        spec = config["tables"][table]
        tasks[table] = spec["task"]
        for arch in spec["archs"]:
            if (archs and arch not in archs) or arch in seen:
                continue  # a network is measured once, at its first table (the cost model is per network)
            seen.add(arch)
            for strategy in strategies:
                configs[(table, arch, strategy)] = cell_config(config, table, arch, strategy)
    return settings_from_configs(configs, tasks)


def scaling(args) -> list[dict]:
    from ..measure import scaling as study

    config = load_profile(args.config)
    sizes = [int(s) for s in _split(args.sizes)] or list(study.QUICK_SIZES if args.quick else study.SIZES)
    settings = scaling_settings(config, _split(args.tables), _split(args.archs) or None)
    threads = args.threads or int(config.get("threads_per_cell") or 2)
    repeats = args.repeats or (3 if args.quick else 10)
    return study.scaling_rows(settings, sizes, device=args.device or "cpu", threads=threads, repeats=repeats,
                              max_seconds=min(args.max_seconds, 1.0) if args.quick else args.max_seconds)


def knobs(args) -> list[dict]:
    from ..measure import knobs as study

    chosen = _split(args.knobs)
    unknown = sorted(set(chosen) - set(study.KNOBS))
    if unknown:
        raise SystemExit(f"mfcbench measure knobs: unknown knob(s) {', '.join(unknown)}; "
                         f"valid choices: {', '.join(study.KNOBS)}")
    config = load_profile(args.config)
    settings = scaling_settings(config, _split(args.tables), _split(args.archs) or None, strategies=("sgd", "msgd"))
    size = int((_split(args.sizes) or [config.get("image_size", 32)])[0])
    return study.knob_rows(settings, size, chosen, threads=args.threads or 1,
                           repeats=args.repeats or (3 if args.quick else 10),
                           max_seconds=min(args.max_seconds, 1.0) if args.quick else args.max_seconds,
                           threads_seconds=2.0 if args.quick else 20.0, n0_values=(2, 4) if args.quick else None)


GPU_RATES = ROOT / "reports" / "gpu" / "scaling_cuda.csv"  # what `gpu-check --device cuda` writes


def default_rate_files(config: dict) -> list[Path]:
    """The rates a profile's prediction reads by default: its own results/<profile>/scaling.csv and,
    when one was committed, the GPU rates of `gpu-check` (reports/gpu/scaling_cuda.csv)."""
    own = ROOT / str(config.get("results_dir", "results")) / str(config.get("profile", "default")) / "scaling.csv"
    return [own] + ([GPU_RATES] if GPU_RATES.is_file() else [])


def rate_files(args, config: dict | None = None) -> list[Path]:
    """--rates, else the scaling.csv of the results folder (cost-check) or the profile's defaults (predict)."""
    if args.rates:
        return [Path(p) for p in args.rates]
    if args.results_dir:
        return [Path(args.results_dir) / "scaling.csv"]
    return default_rate_files(config or {})


def cost_check(args) -> int:
    from ..measure.costmodel import cost_check as check
    from ..measure.costmodel import load_rates, summary

    if not args.results_dir:
        raise SystemExit("measure cost-check: --results-dir is required (e.g. results/converged)")
    try:
        rows = check(args.results_dir, load_rates(rate_files(args)))
    except FileNotFoundError as error:
        print(f"mfcbench measure cost-check: {error}", file=sys.stderr)
        return 2
    if args.out:
        suites.write_rows(args.out, rows)
    result = summary(rows)
    error = result["median_abs_relative_error"]
    print(f"cost-check {args.results_dir}: {result['predicted']} of {result['cells']} cells predicted; "
          f"median |relative error| {'n/a' if error is None else f'{error:.1%}'}; predicted "
          f"{result['predicted_seconds']:.0f} s vs recorded {result['train_seconds']:.0f} s of training"
          + (f"; validation and checkpoints took {result['outside_training_share']:.0%} of the cells' loops"
             if result["outside_training_share"] is not None else ""))
    return 0


def prediction_text(config: dict, paths: list[Path]) -> str:
    """Predicted training time of every cell of a profile, per table, on each device of the rates
    files (`python -m mfcbench grid --predict` prints this too)."""
    from ..measure.costmodel import format_prediction, load_rates, predict_profile
    from ..pipeline.cells import iter_cells

    rates = load_rates(paths)
    threads = int(config.get("threads_per_cell") or 1)
    blocks = []
    for device in rates.devices():
        prediction = predict_profile(iter_cells(config), rates, device)
        jobs = max(1, (os.cpu_count() or 1) // threads) if device == "cpu" else 1
        blocks.append(format_prediction(prediction, jobs=jobs, label=f"{device} (rates {', '.join(map(str, paths))})"))
    return "\n".join(blocks) or f"no usable step rows in {', '.join(map(str, paths))}"


def predict(args) -> int:
    config = load_profile(args.config)
    try:
        print(prediction_text(config, rate_files(args, config)))
    except FileNotFoundError as error:
        print(f"mfcbench measure predict: {error}", file=sys.stderr)
        return 2
    return 0
