"""The published snapshot `reports/published/<profile>/`: what a reviewer reads without running anything.

Publishing is an explicit act (`snakemake publish --cores all [--configfile P]`, or `python -m mfcbench publish --profile P`),
never part of an ordinary run: `publish` copies the files the last run built in `reports/` into the
snapshot and reads every copy back byte for byte; `differences` names the snapshot files that no longer
match `reports/` (a hand-edited snapshot, or reports rebuilt since), which `publish --check` reports.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path
from typing import Iterable

from ..core.atomic import atomic_path


class SnapshotError(ValueError):
    """The snapshot cannot be written as asked (a report it should hold is missing); names the file and the fix."""


def published_dir(profile: str, root: str | os.PathLike = "reports/published") -> Path:
    return Path(root) / profile


def publish(reports_dir: str | os.PathLike, snapshot_dir: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Copy `reports_dir/<name>` to `snapshot_dir/<name>` for every name (each atomically), remove snapshot
    files not among them, then verify the copies byte for byte; returns the snapshot files written."""
    reports_dir, snapshot_dir, names = Path(reports_dir), Path(snapshot_dir), sorted(set(names))
    missing = [str(reports_dir / n) for n in names if not (reports_dir / n).is_file()]
    if missing:
        raise SnapshotError(f"nothing published: {', '.join(missing)} missing; build them first "
                            f"(snakemake --cores all), then publish")
    for stale in sorted(p for p in snapshot_dir.glob("*") if p.is_file() and p.name not in names):
        stale.unlink()  # a report this run no longer builds: the snapshot holds exactly what the run built
    written = []
    for name in names:
        with atomic_path(snapshot_dir / name, (reports_dir / name).stat().st_size) as tmp:
            shutil.copyfile(reports_dir / name, tmp)
        written.append(snapshot_dir / name)
    bad = differences(reports_dir, snapshot_dir, names)
    if bad:
        raise SnapshotError(f"{snapshot_dir}: copies differ from {reports_dir} after publishing: {', '.join(bad)}")
    return written


def differences(reports_dir: str | os.PathLike, snapshot_dir: str | os.PathLike,
                names: Iterable[str] | None = None) -> list[str]:
    """Snapshot files (and `names`, when given) that are missing on either side or differ byte for byte."""
    reports_dir, snapshot_dir = Path(reports_dir), Path(snapshot_dir)
    present = {p.name for p in snapshot_dir.iterdir() if p.is_file()} if snapshot_dir.is_dir() else set()
    bad = []
    for name in sorted(present | set(names or ())):
        ours, theirs = snapshot_dir / name, reports_dir / name
        if not ours.is_file():
            bad.append(f"{ours} (not published)")
        elif not theirs.is_file():
            bad.append(f"{ours} ({theirs} is not built)")
        elif not filecmp.cmp(ours, theirs, shallow=False):
            bad.append(f"{ours} (differs from {theirs})")
    return bad
