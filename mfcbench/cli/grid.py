"""`python -m mfcbench grid --config workflow/config/paper.yaml [--cells] [--schema]`: a profile's cells and #WU."""

from __future__ import annotations

import argparse
import sys

import yaml

from ..pipeline.grid import ROOT, ConfigError, format_summary, iter_cells, load_config, load_schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfcbench grid", description=__doc__)
    parser.add_argument("--config", default=str(ROOT / "workflow" / "config" / "default.yaml"))
    parser.add_argument("--cells", action="store_true", help="also list every cell directory")
    parser.add_argument("--schema", action="store_true",
                        help="print the whole profile schema (with the generated training options) and exit")
    args = parser.parse_args(argv)
    if args.schema:
        print(yaml.safe_dump(load_schema(), sort_keys=False, width=110))
        return 0
    try:
        config = load_config(args.config)
        summary = format_summary(config)
    except (ConfigError, OSError, yaml.YAMLError) as exc:
        print(f"mfcbench grid: {args.config}: {exc}", file=sys.stderr)
        return 2
    print(summary)
    if args.cells:
        for cell in iter_cells(config):
            print(cell.relpath())
    return 0
