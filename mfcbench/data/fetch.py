"""Downloading and unpacking raw files: short timeouts, checksums, and a safe extractor.

With no network a fetch fails within seconds (`TIMEOUT_S`) with a message naming the file to place
by hand and where. `MFCBENCH_OFFLINE=1` skips the download attempt entirely. Archives are checked
before anything is written: members that are absolute, escape the target folder ("../evil"),
or are links/devices are refused, and a truncated or corrupt archive raises `ArchiveError`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

OFFLINE_ENV = "MFCBENCH_OFFLINE"
TIMEOUT_S = 10.0


class ManualDownloadRequired(FileNotFoundError):
    """The raw files are missing and could not be downloaded; the message says what to place where."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message

    def __str__(self) -> str:
        return str(self.args[0])


class ArchiveError(ValueError):
    """A downloaded or placed file is corrupt, truncated, fails its checksum, or is unsafe to extract."""


def is_offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def manual_hint(filename: str, directory: Path, url: str | None) -> str:
    source = f" (from {url})" if url else ""
    return f"place {filename} in {directory}/{source}"


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, *, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise ArchiveError unless `path` matches every checksum given."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.lower():
                raise ArchiveError(
                    f"checksum mismatch for {path}: {algorithm} is {actual}, expected {expected} "
                    f"(a truncated or different file; delete it and fetch again)"
                )


def download(url: str, dest: Path, *, md5: str | None = None, sha256: str | None = None,
             timeout: float = TIMEOUT_S) -> Path:
    """Fetch `url` to `dest` (via a temporary file) and verify it; no partial file is left behind."""
    hint = manual_hint(dest.name, dest.parent, url)
    if is_offline():
        raise ManualDownloadRequired(f"{dest} is missing and {OFFLINE_ENV} is set: {hint}",
                                     reason=f"{OFFLINE_ENV} is set")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "mfcbench"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                shutil.copyfileobj(response, out, 1 << 20)
        verify_file(tmp, md5=md5, sha256=sha256)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ManualDownloadRequired(f"could not download {url} ({exc}); {hint}", reason=f"{url}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _check_member_name(name: str, archive: Path) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ArchiveError(f"refusing to extract {archive}: member {name!r} escapes the target folder")


def _safe_members_zip(zf: zipfile.ZipFile, archive: Path) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for info in members:
        _check_member_name(info.filename, archive)
        mode = (info.external_attr >> 16) & 0o170000
        if mode not in (0, 0o100000, 0o040000):  # links and devices are refused
            raise ArchiveError(f"refusing to extract {archive}: member {info.filename!r} is not a file or folder")
    return members


def _safe_members_tar(tf: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = tf.getmembers()
    for info in members:
        _check_member_name(info.name, archive)
        if not (info.isfile() or info.isdir()):
            raise ArchiveError(f"refusing to extract {archive}: member {info.name!r} is not a file or folder")
    return members


MAX_EXTRACT_ENV = "MFCBENCH_MAX_EXTRACT_GB"
MAX_EXTRACT_GB = 20.0  # the largest raw dataset here (STL-10's binaries) expands to 2.6 GB


def max_extract_bytes() -> int:
    return int(float(os.environ.get(MAX_EXTRACT_ENV) or MAX_EXTRACT_GB) * 2**30)


def _check_expanded_size(archive: Path, target: Path, expanded: int, limit: int | None) -> None:
    """Refuse an archive whose members expand past `limit` bytes (a zip bomb fills the disk) or past
    the free space beside `target`, before anything is written."""
    limit = max_extract_bytes() if limit is None else limit
    if expanded > limit:
        raise ArchiveError(f"refusing to extract {archive}: it expands to {expanded / 2**20:.1f} MiB, over the "
                           f"{limit / 2**20:.1f} MiB limit (a damaged or hostile archive?); raise {MAX_EXTRACT_ENV} "
                           f"if it is genuine")
    free = shutil.disk_usage(target.parent).free
    if expanded > free:
        raise ArchiveError(f"refusing to extract {archive}: it expands to {expanded / 2**20:.1f} MiB and "
                           f"{target.parent} has {free / 2**20:.1f} MiB free; free some space there and rerun")


def safe_extract(archive: Path, target: Path, max_bytes: int | None = None) -> list[Path]:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into `target`, all or nothing.

    Every member is checked before extraction (names, types, and the expanded size against `max_bytes`,
    default MFCBENCH_MAX_EXTRACT_GB or 20 GiB, and the free space); extraction goes to a temporary folder
    that is moved into `target` only when the whole archive has been read without error. Returns the
    top-level paths created.
    """
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract.", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = _safe_members_zip(zf, archive)
                _check_expanded_size(archive, target, sum(m.file_size for m in members), max_bytes)
                bad = zf.testzip()
                if bad is not None:
                    raise ArchiveError(f"bad archive {archive}: CRC error in member {bad!r}")
                zf.extractall(tmp, members=members)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                members = _safe_members_tar(tf, archive)
                _check_expanded_size(archive, target, sum(m.size for m in members), max_bytes)
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(tmp, members=members, **extra)
        else:
            raise ArchiveError(f"bad archive {archive}: neither a zip nor a tar file (truncated or corrupt?)")
        created = []
        target.mkdir(exist_ok=True)
        for entry in sorted(tmp.iterdir()):
            dest = target / entry.name
            if dest.exists():
                shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
            os.replace(entry, dest)
            created.append(dest)
        return created
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"bad archive {archive}: {exc} (truncated or corrupt; delete it and fetch again)") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_archive(url: str, dest: Path, *, md5: str | None = None, sha256: str | None = None) -> Path:
    """Use `dest` if present (verifying it), otherwise download it."""
    if dest.is_file():
        verify_file(dest, md5=md5, sha256=sha256)
        return dest
    return download(url, dest, md5=md5, sha256=sha256)
