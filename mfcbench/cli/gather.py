"""`python -m mfcbench gather CELL_DIR... --out results/<profile>/tableN.csv [--curves-out ...]`."""

from __future__ import annotations

import argparse
import json
import sys

from ..core.atomic import write_csv
from ..pipeline.gather import gather


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfcbench gather", description=__doc__)
    parser.add_argument("cells", nargs="+", help="cell directories (…/<table>/<task>/<dataset>/<arch>/<strategy>/seed<k>)")
    parser.add_argument("--out", required=True, help="tidy CSV, one row per cell")
    parser.add_argument("--curves-out", help="long CSV of every cell's curve.csv (optional)")
    parser.add_argument("--profile", help="profile name recorded in a `profile` column")
    parser.add_argument("--table", help="check that every cell belongs to this table")
    parser.add_argument("--data-checksum", metavar="CHECKSUM_TXT",
                        help="the prepared data's checksum.txt: refuse cells trained on other data")
    args = parser.parse_args(argv)
    try:
        cells, curves = gather(args.cells, args.profile, args.table, args.data_checksum)
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as exc:
        print(f"mfcbench gather: {exc}", file=sys.stderr)
        return 1
    write_csv(args.out, cells)
    if args.curves_out:
        write_csv(args.curves_out, curves)
    print(f"gathered {len(args.cells)} cells ({len(cells)} rows) -> {args.out}")
    return 0

