"""Gather (`python -m mfcbench gather`): a table's cells -> one tidy CSV (one row per cell), plus
the cells' training curves in one long CSV.

The cell's coordinates come from its directory (`mfcbench.grid.parse_cell_dir`), everything else
from its metrics.json, so the CSV holds only what ran. Reports read these files, never the cells.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from .grid import parse_cell_dir

MANIFEST_KEYS = ("device", "git_commit", "git_dirty", "config_hash", "dataset_checksum", "hostname", "threads",
                 "started_at", "finished_at")
SCALAR_KEYS = ("status", "headline_metric", "wu_closed_form", "wu_executed", "iterations", "seconds", "train_seconds",
               "eval_seconds", "plateau", "plateau_threshold", "converged", "params", "peak_memory_mb")


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
    rows = [cell_record(d, profile) for d in cell_dirs]
    if table is not None:
        wrong = sorted({r["table"] for r in rows} - {table})
        if wrong:
            raise ValueError(f"cells of table(s) {', '.join(wrong)} passed to the gather of {table}")
    cells = pd.DataFrame(rows)
    curves = [c for c in (curve_rows(d, profile) for d in cell_dirs) if c is not None]
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["table", "task", "dataset", "arch", "strategy", "variant", "seed", "iteration"])
    return cells, curves_frame
