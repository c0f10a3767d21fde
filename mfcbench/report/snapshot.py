"""The published snapshot `reports/published/<profile>/`: what a reviewer reads without running anything.

Publishing is an explicit act (`snakemake publish --cores all [--configfile P]`, or
`python -m mfcbench publish --profile P`), never part of an ordinary run. `publish` builds the whole new
snapshot in a temporary folder beside it (`.<profile>.publish-<pid>`): the files the last run built in
`reports/`, each read back byte for byte, and `SHA256SUMS` (the `sha256sum` list of what the snapshot
holds, so `sha256sum -c SHA256SUMS` verifies it and `--check` knows a removed file). Then it swaps the
folder in whole: the old snapshot is renamed aside (`.<profile>.old-<pid>`), the new one renamed in, the
old one deleted. Any failure or interrupt before the swap deletes the temporary folder; a failed rename
puts the old snapshot back: a reader sees the old snapshot or the new one, never a mix. A publish killed
between the two renames leaves the old snapshot aside; the next publish puts it back first.

`differences` compares both ways: every file the snapshot should hold (the named files, else its
SHA256SUMS) is there, equal byte for byte to `reports/`, and still what was published; nothing else
(no other file, no subfolder) is in it. `publish --check` prints them.
"""

from __future__ import annotations

import errno
import filecmp
import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterable

from ..core.atomic import no_space

MANIFEST = "SHA256SUMS"


class SnapshotError(ValueError):
    """The snapshot cannot be written as asked (a report it should hold is missing); names the file and the fix."""


class SwapError(SnapshotError):
    """Neither snapshot is in place: the new one could not be renamed in nor the old one back (names where it is)."""


def published_dir(profile: str, root: str | os.PathLike = "reports/published") -> Path:
    return Path(root) / profile


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded(snapshot_dir: str | os.PathLike) -> dict[str, str] | None:
    """name -> sha256 from the snapshot's SHA256SUMS; None when it has none."""
    path = Path(snapshot_dir) / MANIFEST
    if not path.is_file():
        return None
    sums = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name:
            sums[name] = digest
    return sums


def _aside(snapshot_dir: Path, kind: str) -> list[Path]:
    """Folders beside the snapshot left by a publish: its temporary folder ('publish') or the old one ('old')."""
    return sorted(snapshot_dir.parent.glob(f".{snapshot_dir.name}.{kind}-*")) if snapshot_dir.parent.is_dir() else []


def _dead(folder: Path) -> bool:
    """Whether the publish that made `.<profile>.<kind>-<pid>` is gone (its process has ended)."""
    try:
        os.kill(int(folder.name.rpartition("-")[2]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, OSError):
        return False
    return False


def _recover(snapshot_dir: Path) -> None:
    """Put back an old snapshot a killed publish left aside, and delete the temporary folders of dead publishes."""
    for tmp in _aside(snapshot_dir, "publish"):
        if _dead(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    old = [folder for folder in _aside(snapshot_dir, "old") if _dead(folder)]
    if old and not snapshot_dir.exists():
        os.replace(old.pop(), snapshot_dir)
    for stale in old:
        shutil.rmtree(stale, ignore_errors=True)


def _build(reports_dir: Path, tmp: Path, names: list[str]) -> None:
    """Copy every report into `tmp`, write SHA256SUMS, read every copy back byte for byte."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    needed = sum((reports_dir / n).stat().st_size for n in names)
    try:
        for name in names:
            shutil.copyfile(reports_dir / name, tmp / name)
        (tmp / MANIFEST).write_text("".join(f"{_sha256(tmp / n)}  {n}\n" for n in names))
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise no_space(tmp.parent, needed) from error
        raise
    bad = [n for n in names if not filecmp.cmp(tmp / n, reports_dir / n, shallow=False)]
    if bad:
        raise SnapshotError(f"{tmp}: copies differ from {reports_dir} after copying: {', '.join(bad)}; publish again")


def _swap(tmp: Path, snapshot_dir: Path) -> None:
    """Rename the old snapshot aside, the new one in, delete the old; a failed rename puts the old one back."""
    old = snapshot_dir.parent / f".{snapshot_dir.name}.old-{os.getpid()}"
    had_old = moved = False
    try:
        if snapshot_dir.exists():
            had_old = True
            os.replace(snapshot_dir, old)
            moved = True
        os.replace(tmp, snapshot_dir)
    except BaseException as failure:
        if moved:
            try:
                os.replace(old, snapshot_dir)
            except OSError as error:
                raise SwapError(f"{snapshot_dir}: the new snapshot could not be renamed in ({failure}) nor the old one "
                                f"back ({error.strerror or error}); the old one is {old}: rename it back") from error
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def publish(reports_dir: str | os.PathLike, snapshot_dir: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Replace `snapshot_dir` whole by `reports_dir/<name>` for every name, plus SHA256SUMS, each copy verified
    byte for byte; on any failure the old snapshot stays as it was. Returns the snapshot's report files."""
    reports_dir, snapshot_dir, names = Path(reports_dir), Path(snapshot_dir), sorted(set(names) - {MANIFEST})
    odd = [n for n in names if Path(n).name != n or n.startswith(".")]
    if odd:
        raise SnapshotError(f"nothing published: {', '.join(odd)} are not file names of {reports_dir}; name its files")
    missing = [str(reports_dir / n) for n in names if not (reports_dir / n).is_file()]
    if missing:
        raise SnapshotError(f"nothing published: {', '.join(missing)} missing; build them first "
                            f"(snakemake --cores all), then publish")
    snapshot_dir.parent.mkdir(parents=True, exist_ok=True)
    _recover(snapshot_dir)
    tmp = snapshot_dir.parent / f".{snapshot_dir.name}.publish-{os.getpid()}"
    try:
        _build(reports_dir, tmp, names)
        _swap(tmp, snapshot_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after the swap; what an interrupted build left otherwise
    return [snapshot_dir / n for n in names]


def expected_names(snapshot_dir: str | os.PathLike, names: Iterable[str] | None = None) -> list[str] | None:
    """The files the snapshot should hold: `names` when given, else those its SHA256SUMS lists (None: unknown)."""
    if names:
        return sorted(set(names) - {MANIFEST})
    sums = recorded(snapshot_dir)
    return None if sums is None else sorted(sums)


def differences(reports_dir: str | os.PathLike, snapshot_dir: str | os.PathLike,
                names: Iterable[str] | None = None) -> list[str]:
    """Every way the snapshot differs from what publishing `reports_dir` would make it, one line each:
    a file missing on either side, differing byte for byte, edited since its SHA256SUMS, or not published;
    a subfolder; a snapshot that does not say what it holds."""
    reports_dir, snapshot_dir = Path(reports_dir), Path(snapshot_dir)
    if not snapshot_dir.is_dir():
        aside = _aside(snapshot_dir, "old")
        hint = f" (a publish was interrupted: {aside[-1]} holds the previous one; publish again)" if aside else ""
        return [f"{snapshot_dir} (no snapshot{hint})"]
    expected = expected_names(snapshot_dir, names)
    present = sorted(p.name for p in snapshot_dir.iterdir())
    sums = recorded(snapshot_dir) or {}
    bad = []
    if expected is None:
        bad.append(f"{snapshot_dir / MANIFEST} (missing: the snapshot does not say which files it should hold; "
                   f"publish again, or name the files to compare)")
        expected = sorted(set(present) - {MANIFEST})
    for name in expected:
        ours, theirs = snapshot_dir / name, reports_dir / name
        if not ours.is_file():
            bad.append(f"{ours} (missing from the snapshot)")
            continue
        if not theirs.is_file():
            bad.append(f"{ours} ({theirs} is not built)")
        elif not filecmp.cmp(ours, theirs, shallow=False):
            bad.append(f"{ours} (differs from {theirs})")
        if name in sums and sums[name] != _sha256(ours):
            bad.append(f"{ours} (edited since it was published: its sha256 is not the one in {MANIFEST})")
    for name in present:
        if name in expected or name == MANIFEST:
            continue
        path = snapshot_dir / name
        bad.append(f"{path} (a subfolder: a snapshot holds files only)" if path.is_dir() else f"{path} (not published)")
    return bad
