"""What the verdict page reads from one committed snapshot `reports/published/<profile>/`: its claims.csv,
pairs.csv and cells.csv, and from its REPORT.md the scale line (levels, N0, validation size, the iterations
per level of each trained table, the data and its size) and the provenance lines (the commit and training-code
digest of the run's manifest; the profile's settings rendered beside Tables 13/14: the networks' widths and a
table's own batch). A snapshot without a readable claims.csv (columns `id` and `verdict`) is not one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

SCALE_LINE = re.compile(r"^\*\*Scale of these results:\*\* (?P<scale>.*?); data: (?P<data>.*?); report commit `")
MANIFEST_LINE = re.compile(r"^- manifest (?P<key>\w+): `(?P<value>.*)`$")
CONFIG_ROW = re.compile(r"^\| config: (?P<key>[\w.]+) \|[^|]*\| (?P<value>[^|]*?) \|$")
TABLE_PART = re.compile(r"^(?P<table>\w+): (?P<schedule>.*)$")


@dataclass
class Snapshot:
    """One committed snapshot, as the verdict page reads it."""

    profile: str
    claims: pd.DataFrame
    pairs: pd.DataFrame
    cells: pd.DataFrame
    commit: str = ""  # the run manifest's git commit (REPORT.md's provenance)
    dirty: bool = False
    digest: str = ""  # the training-code digest of the run manifest
    common: str = ""  # the scale line before its tables: "4 levels, N0 2, val_size 64"
    schedules: dict[str, str] = field(default_factory=dict)  # trained table -> "sgd/msgd [..], fmsgd [..]"
    sizes: dict[str, str] = field(default_factory=dict)  # dataset -> "32px"
    settings: dict[str, str] = field(default_factory=dict)  # profile key (dotted) -> value as rendered

    def code_status(self, current: str | None) -> tuple[int, int]:
        """(cells trained by the `current` training-code digest, cells with a digest recorded)."""
        if "training_code" not in self.cells.columns:
            return 0, 0
        codes = self.cells["training_code"].dropna().astype(str)
        codes = codes[codes != ""]
        return int((codes == str(current)).sum()), len(codes)


def _csv(path: Path, **options) -> pd.DataFrame:
    return pd.read_csv(path, **options) if path.is_file() and path.stat().st_size else pd.DataFrame()


def parse_report(snapshot: Snapshot, text: str) -> None:
    """Fill the snapshot's scale, commit, digest and settings from its REPORT.md."""
    for line in text.splitlines():
        scale = SCALE_LINE.match(line)
        if scale:
            common, _, tables = scale["scale"].partition("; iterations per level ")
            snapshot.common = common
            for part in tables.split("; "):
                match = TABLE_PART.match(part)
                if match:
                    snapshot.schedules[match["table"]] = match["schedule"]
            for entry in scale["data"].split(", "):
                name, _, size = entry.partition(" at ")
                if size:
                    snapshot.sizes[name] = size
            continue
        manifest = MANIFEST_LINE.match(line)
        if manifest and manifest["key"] == "git_commit":
            snapshot.commit = manifest["value"]
        elif manifest and manifest["key"] == "git_dirty":
            snapshot.dirty = manifest["value"] == "True"
        elif manifest and manifest["key"] == "training_code":
            snapshot.digest = manifest["value"]
        row = CONFIG_ROW.match(line)
        if row:
            snapshot.settings.setdefault(row["key"], row["value"].strip())


def read_snapshot(folder: str | Path) -> Snapshot | None:
    """The snapshot in `folder`, or None when it holds no readable claims.csv."""
    folder = Path(folder)
    try:
        claims = _csv(folder / "claims.csv", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError):
        return None
    if not {"id", "verdict"} <= set(claims.columns):
        return None
    snapshot = Snapshot(folder.name, claims, _csv(folder / "pairs.csv"), _csv(folder / "cells.csv"))
    report = folder / "REPORT.md"
    if report.is_file():
        parse_report(snapshot, report.read_text())
    return snapshot


def read_snapshots(root: str | Path) -> list[Snapshot]:
    """Every snapshot under the published root, by profile name."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    return [s for s in (read_snapshot(f) for f in folders) if s is not None]


def widths(snapshot: Snapshot, table: str, archs: list[str]) -> str:
    """The networks' widths a table ran at, from the profile's settings ('width 0.25'); archs with none
    set run at their model's default width."""
    found, default = set(), False
    for arch in archs or [""]:
        keys = [f"tables.{table}.arch_overrides.{arch}.model.width", f"tables.{table}.overrides.model.width",
                f"arch_overrides.{arch}.model.width", "defaults.model.width"]
        value = next((snapshot.settings[k] for k in keys if k in snapshot.settings), None)
        if value is None:
            default = True
        else:
            found.add(value)
    text = ("width " if len(found) == 1 else "widths ") + ", ".join(sorted(found)) if found else ""
    return ", ".join(t for t in (text, "model default width" if default else "") if t)


def table_scale(snapshot: Snapshot, table: str, archs: list[str], datasets: str) -> str:
    """'table4 at 32 px (skimage), width 0.25, N0 2, 4 levels, val_size 64; sgd/msgd [...], fmsgd [...]'."""
    batch = snapshot.settings.get(f"tables.{table}.overrides.batch_size")
    common = re.sub(r"N0 \d+", f"N0 {batch}", snapshot.common) if batch else snapshot.common
    data = ", ".join(f"{d} at {snapshot.sizes[d]}" if d in snapshot.sizes else d
                     for d in datasets.split("+") if d) or "data not recorded"
    parts = [f"{table}: {data}", widths(snapshot, table, archs), common]
    return ", ".join(p for p in parts if p) + f"; iterations per level {snapshot.schedules[table]}"
