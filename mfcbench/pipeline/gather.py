"""Gather (`python -m mfcbench gather`): a table's cells -> one tidy CSV (one row per cell), plus
the cells' training curves in one long CSV.

The cell's coordinates come from its directory (`mfcbench.core.cell.Cell.from_dir`), everything else
from its metrics.json, so the CSV holds only what ran. Reports read these files, never the cells.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..core.cell import CONFIG_FILE, COORDINATES, FAILED, METRICS_FILE, Cell, CellFiles
from ..core.cell import read_metrics as load_metrics

MANIFEST_KEYS = ("device", "git_commit", "git_dirty", "training_code", "config_hash", "dataset_checksum", "hostname", "threads",
                 "started_at", "finished_at")
SCALAR_KEYS = ("status", "headline_metric", "wu_closed_form", "wu_executed", "iterations", "seconds", "train_seconds",
               "eval_seconds", "plateau", "plateau_threshold", "converged", "params", "peak_memory_mb")

CURVE_NEEDED = ("iteration", "wu_executed", "val_metric")  # of curve.csv: the time-to-target and evidence reports read them


class GatherError(ValueError):
    """A cell's files cannot be gathered as they are; the message names the cell and the fix."""


def read_metrics(cell_dir: Path) -> dict[str, Any]:
    """metrics.json, checked: readable, written under the config in the cell's cell.yaml, carrying
    its headline metric when it says ok, and (finished ok cells) beside its curve.csv."""
    path = CellFiles(cell_dir).metrics
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the cell has not finished")
    try:
        result = load_metrics(cell_dir)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GatherError(f"{path} is damaged ({error.__class__.__name__}: {error}); delete it and rerun the cell") from None
    if not isinstance(result, dict) or "status" not in result:
        raise GatherError(f"{path} is not a cell result (no status); delete it and rerun the cell")
    _check_config(cell_dir, result)
    if result["status"] == "ok":
        headline = result.get("headline_metric")
        if headline not in (result.get("metrics") or {}):
            raise GatherError(f"{path} says ok but lacks its headline metric {headline!r}; delete it and rerun the cell")
        if not CellFiles(cell_dir).curve.is_file():
            raise GatherError(f"{CellFiles(cell_dir).curve} of a finished cell is missing; delete {path} and rerun the cell")
    return result


def _check_config(cell_dir: Path, result: dict) -> None:
    """A metrics.json whose config hash differs from the cell's cell.yaml is a stale or edited result."""
    cell_yaml = CellFiles(cell_dir).config
    recorded = (result.get("manifest") or {}).get("config_hash")
    if not cell_yaml.is_file() or recorded is None:
        return
    from ..train.config import config_hash, resolve

    try:
        expected = config_hash(resolve(cell_yaml))
    except ValueError as error:
        raise GatherError(f"{cell_yaml} is invalid ({error})") from None
    if recorded != expected:
        raise GatherError(f"{cell_dir}: {METRICS_FILE} was written under another config than {CONFIG_FILE} "
                          f"(config hash {recorded[:12]} vs {expected[:12]}); delete {METRICS_FILE} and rerun the cell")


def cell_record(cell_dir: str | Path, profile: str | None = None) -> dict[str, Any]:
    """Coordinates + status + every metric + cost + provenance of one finished (or failed) cell."""
    cell_dir = Path(cell_dir)
    result = read_metrics(cell_dir)
    record: dict[str, Any] = Cell.from_dir(cell_dir).coordinates()
    if profile is not None:
        record["profile"] = profile
    for key in SCALAR_KEYS:
        record[key] = result.get(key)
    if result.get("error"):
        record["error"] = result["error"]
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

    path = CellFiles(cell_dir).curve
    if not path.is_file() or path.stat().st_size == 0:
        return None
    curve = pd.read_csv(path)
    missing = [column for column in CURVE_NEEDED if column not in curve.columns]
    if missing:
        raise GatherError(f"{path} lacks column(s) {', '.join(missing)} (it has {', '.join(map(str, curve.columns))}); "
                          f"the reports read them: delete {CellFiles(cell_dir).metrics} and rerun the cell")
    coords = Cell.from_dir(cell_dir).coordinates()
    if profile is not None:
        coords = {"profile": profile, **coords}
    for i, (key, value) in enumerate(coords.items()):
        curve.insert(i, key, value)
    return curve


def trained_checksum(cell_dir: str | Path) -> str | None:
    """The dataset checksum a finished cell recorded (None: no result, a failure, or unreadable)."""
    try:
        result = load_metrics(cell_dir)
        return (result.get("manifest") or {}).get("dataset_checksum") if result.get("status") != FAILED else None
    except (OSError, ValueError, AttributeError):
        return None


def current_checksum(checksum_file: str | Path) -> str | None:
    """The prepared data's checksum.txt content, None when it is not there."""
    try:
        return Path(checksum_file).read_text().strip() or None
    except OSError:
        return None


def trained_on_other_data(cell_dir: str | Path, checksum_file: str | Path) -> bool:
    """True when the cell's result was trained on data other than what checksum.txt now describes."""
    recorded, current = trained_checksum(cell_dir), current_checksum(checksum_file)
    return recorded is not None and current is not None and recorded != current


def check_data(cell_dirs: list, checksum_file: str | Path) -> None:
    """Refuse cells trained on other data than the prepared data now holds (naming them and the fix)."""
    stale = [str(d) for d in cell_dirs if trained_on_other_data(d, checksum_file)]
    if stale:
        current = current_checksum(checksum_file)
        raise GatherError(f"{len(stale)} cell(s) were trained on other data than {checksum_file} ({current[:12]}) "
                          f"holds: {', '.join(stale)}; rerun snakemake (it retrains them) or delete their {METRICS_FILE}")


def trained_code(cell_dir: str | Path) -> tuple[str | None, str | None] | None:
    """(training_code digest, git_commit) a finished cell recorded; None without a finished result."""
    try:
        result = load_metrics(cell_dir)
        manifest = result.get("manifest") or {}
        return None if result.get("status") == FAILED else (manifest.get("training_code"), manifest.get("git_commit"))
    except (OSError, ValueError, AttributeError):
        return None


def stale_code_cells(cell_dirs: Iterable[str | Path], current: str) -> list[tuple[Path, str | None, str | None]]:
    """(cell_dir, digest, commit) of every finished cell trained by other training code than `current`
    (a cell that recorded no digest, trained before digests were recorded, counts as other code)."""
    out = []
    for cell_dir in cell_dirs:
        recorded = trained_code(cell_dir)
        if recorded is not None and recorded[0] != current:
            out.append((Path(cell_dir), *recorded))
    return out


def gather(cell_dirs: Iterable[str | Path], profile: str | None = None, table: str | None = None,
           data_checksum: str | Path | None = None):
    """(cells DataFrame, curves DataFrame) for the given cell directories; with `data_checksum` (the
    prepared data's checksum.txt), cells trained on other data are refused."""
    import pandas as pd

    cell_dirs = list(cell_dirs)
    if data_checksum is not None:
        check_data(cell_dirs, data_checksum)
    rows = [cell_record(d, profile) for d in cell_dirs]
    if table is not None:
        wrong = sorted({r["table"] for r in rows} - {table})
        if wrong:
            raise ValueError(f"cells of table(s) {', '.join(wrong)} passed to the gather of {table}")
    cells = pd.DataFrame(rows)
    curves = [c for c in (curve_rows(d, profile) for d in cell_dirs) if c is not None]
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=[*COORDINATES, "iteration"])
    return cells, curves_frame
