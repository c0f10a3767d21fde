"""`python -m mfcbench visualise FIG --results-dir results/<p> --config PROFILE.yaml --out reports/FIG.png`

Figures drawn from the code's own schedules and the trained cells (the CSV of what is plotted is
written beside the PNG, e.g. reports/fig9.csv):
- fig1, fig2: Multiscale-SGD (Algorithm 1) and Full-Multiscale-SGD (Algorithm 2), the phases and
  draws `build_strategy(...).phases()` gives for the profile's Table 4 config (else its first
  denoising table, else its first table).
- fig9-fig14: input | target | SGD | Multiscale-SGD | Full-Multiscale-SGD predictions on the same
  validation images from the cells' checkpoints (9-10: Table 4, 11-12: Table 6, 13-14: Table 5).
- fig15: first-layer feature maps of MFC-ResNet-18 and ResNet-18 (Table 7's checkpoints, else
  freshly initialised models, which the title and CSV say).
--config takes a profile YAML (e.g. workflow/config/tiny.yaml) or results/<p>/config.yaml.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..core.atomic import write_csv
from ._args import positive_int


def build_parser() -> argparse.ArgumentParser:
    from ..figures.visualise import FIGURES

    parser = argparse.ArgumentParser(prog="python -m mfcbench visualise", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", choices=FIGURES)
    parser.add_argument("--results-dir", required=True, help="results/<profile>: the cells' folders")
    parser.add_argument("--config", required=True, help="the profile YAML, or results/<profile>/config.yaml")
    parser.add_argument("--out", required=True, help="the PNG to write; the CSV goes beside it (.csv)")
    parser.add_argument("--images", type=positive_int, default=None,
                        help="validation images per network (default 2 for fig9-14, 4 for fig15)")
    return parser


def schedule_table(config: dict) -> str:
    """Table 4 when the profile has it, else its first denoising table, else its first table."""
    tables = config.get("tables") or {}
    if not tables:
        raise ValueError("the profile has no tables: nothing to take a schedule from")
    if "table4" in tables:
        return "table4"
    return next((name for name, spec in tables.items() if spec.get("task") == "denoise"), next(iter(tables)))


def schedule(fig: str, config: dict, out: Path):
    from ..figures.visualise import ALGORITHM_FIGURES, schedule_figure
    from ..pipeline.cells import cell_config
    from ..train.config import resolve

    table, strategy = schedule_table(config), ALGORITHM_FIGURES[fig]
    spec = config["tables"][table]
    cfg = resolve(cell_config(config, table, spec["archs"][0], strategy))
    context = {"profile": config["profile"], "table": table, "in_table": strategy in spec["strategies"]}
    return schedule_figure(fig, cfg, out, context)


def feature_sources(config: dict, results_dir: Path) -> list:
    """MFC-ResNet-18 and ResNet-18: Table 7's cells (SGD first), else configs from the first denoising table."""
    from dataclasses import replace

    from ..core.cell import BASE_VARIANT, Cell
    from ..figures.visualise import FEATURE_ARCHS, FEATURE_TABLE, STRATEGIES, FeatureSource
    from ..pipeline.cells import cell_config, iter_cells
    from ..train.config import resolve

    tables = config.get("tables") or {}
    sources = []
    for arch in FEATURE_ARCHS:
        cells = [c for c in iter_cells(config, [FEATURE_TABLE]) if c.arch == arch and c.variant == BASE_VARIANT
                 and c.strategy in STRATEGIES] if FEATURE_TABLE in tables else []
        cells.sort(key=lambda c: (STRATEGIES.index(c.strategy), c.seed))
        if cells:
            c = cells[0]
            sources.append(FeatureSource(replace(c, config=resolve(dict(c.config))), results_dir / c.relpath()))
            continue
        table = next((n for n, s in tables.items() if s.get("task") == "denoise"), None)
        if table is None:
            raise ValueError("Figure 15 needs a denoising table in the profile (for its dataset and config)")
        spec = tables[table]
        cfg = resolve(cell_config(config, table, arch, spec["strategies"][0]))
        cell = Cell(task="denoise", dataset=spec["dataset"], arch=arch, strategy=None, seed=int(spec["seeds"][0]),
                    table=table, config=cfg)
        sources.append(FeatureSource(cell))
    return sources


def draw(args, config: dict):
    from ..figures import visualise as vis
    from ..pipeline.cells import expand

    out, results_dir, profile = Path(args.out), Path(args.results_dir), config["profile"]
    if args.figure in vis.ALGORITHM_FIGURES:
        return schedule(args.figure, config, out)
    if args.figure in vis.PREDICTION_FIGURES:
        table = vis.PREDICTION_FIGURES[args.figure].table
        cells = expand(config, [table]) if table in (config.get("tables") or {}) else []
        return vis.prediction_figure(args.figure, cells, results_dir, out, profile, images=args.images or 2)
    return vis.feature_figure(out, feature_sources(config, results_dir), profile, images=args.images or 4)


def main(argv: list[str] | None = None) -> int:
    from ..pipeline.schema import load_config

    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        config = load_config(args.config)
        frame = draw(args, config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"mfcbench visualise {args.figure}: error: {exc}", file=sys.stderr)
        return 2
    data = Path(args.out).with_suffix(".csv")
    write_csv(data, frame)
    print(f"wrote {args.out} and {data} ({len(frame)} rows) in {time.perf_counter() - started:.1f} s")
    return 0
