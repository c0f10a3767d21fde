"""Atomic file writes and safe loads: a crash never leaves a half-written result, table or
checkpoint, a full disk says where and how much, and a damaged file names itself."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


class NoSpaceError(OSError):
    """The disk holding a write is full; the message names the folder and the size needed."""


class DamagedFileError(ValueError):
    """A file exists but cannot be read back (truncated, garbage); the message names it and the fix."""


def no_space(directory: Path, needed_bytes: int | None) -> NoSpaceError:
    need = f"; about {needed_bytes / 2**20:.1f} MiB needed" if needed_bytes else ""
    return NoSpaceError(errno.ENOSPC, f"no space left in {directory}{need}: free some space there and rerun")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, needed_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; the file it becomes follows the umask
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as error:
        if error.errno == errno.ENOSPC and not isinstance(error, NoSpaceError):
            raise no_space(path.parent, needed_bytes) from error
        raise
    except RuntimeError as error:  # torch.save reports a full disk as a RuntimeError from its writer
        if "unexpected pos" in str(error) or "No space left" in str(error):
            raise no_space(path.parent, needed_bytes) from error
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path, len(text.encode())) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically (no index column)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors inside a nested container (what torch.save will write, roughly)."""
    import torch

    if torch.is_tensor(obj):
        return obj.element_size() * obj.numel()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save, atomically. The temporary file is written through a handle of ours, closed before
    `atomic_path` deletes the file on an error: torch's own writer stays open while the exception's
    traceback lives, and an open handle keeps a deleted file's space (a full disk would then refuse
    the failure record written next)."""
    import torch

    with atomic_path(path, tensor_bytes(obj)) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def torch_load(path: str | os.PathLike, what: str = "file", fix: str = "delete it and rerun") -> Any:
    """Load a checkpoint or tensor file safely (tensors and plain containers only, weights_only=True).
    A truncated or garbage file raises DamagedFileError naming the path and the fix (never torch's
    own advice to load untrusted pickles)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (RuntimeError, OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError, IndexError):
        import zipfile

        why = "truncated or not a torch file" if not zipfile.is_zipfile(path) else "its contents cannot be read safely"
        raise DamagedFileError(f"{path}: damaged {what} ({why}); {fix}") from None
