"""Prepared-data layout `<root>/prepared/<name>/<size>/{train,val}.pt, checksum.txt, meta.json`.

The folder appears in one rename: a failure while building or writing leaves nothing behind, and a
reader never sees a half-written dataset. The checksum is a sha256 over the tensors themselves
(dtype, shape and bytes of train then val), so it does not depend on torch's file format.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..core import atomic
from .base import SPLITS

CHECKSUM_FILE = "checksum.txt"
META_FILE = "meta.json"


class DatasetNotPreparedError(FileNotFoundError):
    """A network dataset was asked for before `python -m mfcbench prepare` ran for it."""


class CorruptPreparedDataError(ValueError):
    """Prepared tensors do not match the checksum recorded when they were written."""


def prepared_dir(root: str | os.PathLike, name: str, image_size: int) -> Path:
    return Path(root) / "prepared" / name / str(int(image_size))


def is_prepared(directory: Path) -> bool:
    return all((directory / f).is_file() for f in (*[f"{s}.pt" for s in SPLITS], CHECKSUM_FILE))


def _update(h: "hashlib._Hash", tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(memoryview(t.numpy()).cast("B"))


def tensor_sha256(tensor: torch.Tensor) -> str:
    h = hashlib.sha256()
    _update(h, tensor)
    return h.hexdigest()


def splits_sha256(splits: dict[str, torch.Tensor]) -> str:
    """The dataset checksum: sha256 over train then val tensors."""
    h = hashlib.sha256()
    for split in SPLITS:
        h.update(split.encode())
        _update(h, splits[split])
    return h.hexdigest()


def write_prepared(directory: Path, splits: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """Write the splits, checksum and metadata into a temporary folder, then rename it into place."""
    checksum = splits_sha256(splits)
    meta = {
        **meta,
        "checksum": checksum,
        "splits": {s: {"shape": list(splits[s].shape), "sha256": tensor_sha256(splits[s])} for s in SPLITS},
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    old = None
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the prepared folder is shared data
        for split in SPLITS:  # clone: a slice would be saved with its whole source storage
            torch.save(splits[split].contiguous().clone(), tmp / f"{split}.pt")
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        (tmp / CHECKSUM_FILE).write_text(checksum + "\n")
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old.{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not directory.exists():
            os.replace(old, directory)  # put the previous version back
        if _disk_full(error):
            raise atomic.no_space(directory.parent, sum(atomic.tensor_bytes(s) for s in splits.values())) from error
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return checksum


def _disk_full(error: BaseException) -> bool:
    """torch.save reports ENOSPC as a RuntimeError ('unexpected pos ...'); open/write as OSError."""
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or (
        isinstance(error, RuntimeError) and ("unexpected pos" in str(error) or "No space left" in str(error)))


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def read_checksum(directory: Path) -> str:
    return (directory / CHECKSUM_FILE).read_text().strip()


def read_split(directory: Path, split: str) -> torch.Tensor:
    """Load one prepared split and check it against the sha256 recorded in meta.json."""
    tensor = atomic.torch_load(directory / f"{split}.pt", "prepared data", f"delete {directory} and prepare it again")
    verify_split(directory, split, tensor)
    return tensor


def verify_split(directory: Path, split: str, tensor: torch.Tensor) -> None:
    """A loaded split against meta.json's sha256 (an edited meta.json or split is refused the same way
    by load_split and by training) and for finite pixels."""
    expected = read_meta(directory).get("splits", {}).get(split, {}).get("sha256")
    if expected is not None and tensor_sha256(tensor) != expected:
        raise CorruptPreparedDataError(
            f"{directory / f'{split}.pt'} does not match the sha256 recorded in {directory / META_FILE}; "
            f"delete {directory} and prepare again"
        )
    check_finite(tensor, directory / f"{split}.pt")


def check_finite(tensor: torch.Tensor, path: Path) -> None:
    """NaN or infinite pixels in prepared data are refused at load, naming the file (not trained on, where
    they would show as a diverged training)."""
    if tensor.is_floating_point():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise CorruptPreparedDataError(f"{path}: {bad} NaN or infinite pixel value(s); fix the raw data, "
                                           f"delete {path.parent} and prepare again")


def verify_checksum(directory: Path) -> str:
    """Recompute the dataset checksum from the prepared tensors and compare with checksum.txt."""
    actual = splits_sha256({s: atomic.torch_load(directory / f"{s}.pt", "prepared data", f"delete {directory} and prepare it again")
                            for s in SPLITS})
    recorded = read_checksum(directory)
    if actual != recorded:
        raise CorruptPreparedDataError(
            f"{directory}: tensors hash to {actual[:12]}..., checksum.txt says {recorded[:12]}...; "
            f"delete {directory} and prepare again"
        )
    return actual
