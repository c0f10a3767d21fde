"""`python -m mfcbench gather`: a table's cells -> one tidy CSV (one row per cell, or per row a
non-trainable cell returned), plus the cells' training curves in one long CSV.

The cell's coordinates come from its directory (`mfcbench.grid.parse_cell_dir`), everything else
from its metrics.json, so the CSV holds only what ran. Reports read these files, never the cells.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from .grid import parse_cell_dir
from .io import write_csv

MANIFEST_KEYS = ("device", "git_commit", "git_dirty", "config_hash", "dataset_checksum", "hostname", "threads",
                 "started_at", "finished_at")
SCALAR_KEYS = ("status", "headline_metric", "wu_closed_form", "wu_executed", "iterations", "seconds", "params",
               "peak_memory_mb")


def cell_record(cell_dir: str | Path, profile: str | None = None) -> dict[str, Any]:
    """Coordinates + status + every metric + cost + provenance of one finished cell."""
    cell_dir = Path(cell_dir)
    metrics_path = cell_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} is missing: the cell has not finished")
    result = json.loads(metrics_path.read_text())
    record: dict[str, Any] = parse_cell_dir(cell_dir)
    if profile is not None:
        record["profile"] = profile
    for key in SCALAR_KEYS:
        record[key] = result.get(key)
    for key, value in (result.get("metrics") or {}).items():
        record[key] = value
    manifest = result.get("manifest") or {}
    for key in MANIFEST_KEYS:
        record[key] = manifest.get(key)
    versions = manifest.get("versions") or {}
    record["torch_version"] = versions.get("torch")
    return record


def cell_rows(cell_dir: str | Path, profile: str | None = None) -> list[dict[str, Any]]:
    """One row per cell, or one per entry of the cell's `rows` (non-trainable tasks such as the
    gradient discrepancy return a table); such rows keep only those matching the cell's arch
    when they carry a `conv` column (Table 1 = standard, Table 2 = mfc)."""
    record = cell_record(cell_dir, profile)
    rows = json.loads((Path(cell_dir) / "metrics.json").read_text()).get("rows")
    if not rows:
        return [record]
    if all("conv" in r for r in rows) and any(r["conv"] == record["arch"] for r in rows):
        rows = [r for r in rows if r["conv"] == record["arch"]]
    return [{**record, **row} for row in rows]


def curve_rows(cell_dir: str | Path, profile: str | None = None):
    """The cell's curve.csv with its coordinates prepended (None when the cell wrote no curve)."""
    import pandas as pd

    path = Path(cell_dir) / "curve.csv"
    if not path.is_file() or path.stat().st_size == 0:
        return None
    curve = pd.read_csv(path)
    coords = parse_cell_dir(cell_dir)
    if profile is not None:
        coords = {"profile": profile, **coords}
    for i, (key, value) in enumerate(coords.items()):
        curve.insert(i, key, value)
    return curve


def gather(cell_dirs: Iterable[str | Path], profile: str | None = None, table: str | None = None):
    """(cells DataFrame, curves DataFrame) for the given cell directories."""
    import pandas as pd

    cell_dirs = list(cell_dirs)
    rows = [row for d in cell_dirs for row in cell_rows(d, profile)]
    if table is not None:
        wrong = sorted({r["table"] for r in rows} - {table})
        if wrong:
            raise ValueError(f"cells of table(s) {', '.join(wrong)} passed to the gather of {table}")
    cells = pd.DataFrame(rows)
    curves = [c for c in (curve_rows(d, profile) for d in cell_dirs) if c is not None]
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["table", "task", "dataset", "arch", "strategy", "variant", "seed", "iteration"])
    return cells, curves_frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfcbench gather", description=__doc__.split("\n\n")[0])
    parser.add_argument("cells", nargs="+", help="cell directories (…/<table>/<task>/<dataset>/<arch>/<strategy>/seed<k>)")
    parser.add_argument("--out", required=True, help="tidy CSV, one row per cell")
    parser.add_argument("--curves-out", help="long CSV of every cell's curve.csv (optional)")
    parser.add_argument("--profile", help="profile name recorded in a `profile` column")
    parser.add_argument("--table", help="check that every cell belongs to this table")
    args = parser.parse_args(argv)
    try:
        cells, curves = gather(args.cells, args.profile, args.table)
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as exc:
        print(f"mfcbench gather: {exc}", file=sys.stderr)
        return 1
    write_csv(args.out, cells)
    if args.curves_out:
        write_csv(args.curves_out, curves)
    print(f"gathered {len(args.cells)} cells ({len(cells)} rows) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
