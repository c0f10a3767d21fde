"""Datasets by name: `open_dataset` (what a cell trains on), `load_split`, `dataset_checksum`, `prepare`.

Embedded datasets (`fields`, `skimage`, `digits`, `lfw`) work offline and may be built in memory when not
prepared; network datasets (`stl10`, `celeba`, `mnist`, `urban100`) must be prepared first.
Each dataset lives in its own module and registers itself with `@DATASETS.register("name")`.
Your own images need no module: a tensor file or image folder is a dataset by its path, or, prepared
with `prepare(name, ..., path=...)`, by the name it was prepared under (mfcbench/data/tensors.py).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .base import DATASETS, SPLITS, Dataset, check_image_size, check_split
from .fetch import ArchiveError, ManualDownloadRequired
from .store import CorruptPreparedDataError, DatasetNotPreparedError, prepared_dir, verify_split

__all__ = [
    "DATASETS", "SPLITS", "Dataset", "OpenedDataset", "open_dataset", "load_split", "dataset_checksum", "prepare",
    "get_dataset", "build_splits", "check_dataset",
    "dataset_names", "prepared_dir", "DatasetNotPreparedError", "CorruptPreparedDataError",
    "ManualDownloadRequired", "ArchiveError",
]

def get_dataset(name: str) -> Dataset:
    return DATASETS.get(name)()


def dataset_names() -> list[str]:
    return DATASETS.names()


def _limit(tensor: torch.Tensor, limit: int | None) -> torch.Tensor:
    if limit is None:
        return tensor
    if int(limit) < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return tensor[: int(limit)].contiguous()


def _check_options_match(directory: Path, ds: Dataset, options: dict[str, Any]) -> None:
    """Options given to load_split must agree with the ones the prepared data was made with."""
    if not options:
        return
    from .store import read_meta

    recorded = read_meta(directory).get("options", {})
    wanted = json.loads(json.dumps(ds.resolve(options), default=str))  # tuples -> lists, as recorded
    diff = {k: (recorded.get(k), v) for k, v in wanted.items() if k in options and recorded.get(k) != v}
    if diff:
        raise ValueError(
            f"{directory} was prepared with different options {diff} (recorded, requested); "
            f"prepare again with the options you want, or drop them"
        )


def _not_prepared(ds: Dataset, image_size: int, root: Path) -> DatasetNotPreparedError:
    return DatasetNotPreparedError(
        f"dataset {ds.name!r} at size {image_size} is not prepared under {root}/prepared/; run: "
        f"python -m mfcbench prepare --dataset {ds.name} --image-size {image_size} --root {root}"
    )


def build_splits(name: str, image_size: int, root: str | os.PathLike = "data", *, splits=SPLITS,
                 fetch: bool = True, **options: Any) -> dict[str, torch.Tensor]:
    """Build splits from scratch (fetching raw files for network datasets); writes nothing prepared."""
    ds = get_dataset(name)
    image_size, root = check_image_size(image_size), Path(root)
    resolved = ds.resolve(options)
    if fetch:
        ds.fetch(root, resolved)
    out = {}
    for split in splits:
        x = ds.build_split(check_split(split), image_size, root, resolved)
        _check_tensor(x, ds.name, ds.channels, split)
        out[split] = x
    return out


def _check_tensor(x: torch.Tensor, name: str, channels: int, split: str) -> None:
    if x.dtype != torch.float32 or x.ndim != 4 or x.shape[1] != channels or x.shape[0] == 0:
        raise ValueError(f"dataset {name!r} built a bad {split} split: {x.dtype} {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"dataset {name!r} built a {split} split with NaN or infinite pixels; check its raw files")


def load_split(name: str, split: str, image_size: int, root: str | os.PathLike = "data", *,
               limit: int | None = None, **options: Any) -> torch.Tensor:
    """float32 (N, C, H, W) in [0, 1], deterministic. Prepared files are used when present;
    embedded datasets are otherwise built in memory, network datasets raise with the command to run."""
    check_split(split)
    ds = get_dataset(name)
    image_size, root = check_image_size(image_size), Path(root)
    directory = prepared_dir(root, name, image_size)
    from .store import is_prepared, read_split

    if is_prepared(directory):
        _check_options_match(directory, ds, options)
        return _limit(read_split(directory, split), limit)
    if not ds.embedded:
        raise _not_prepared(ds, image_size, root)
    return _limit(build_splits(name, image_size, root, splits=(split,), fetch=False, **options)[split], limit)


class OpenedDataset(NamedTuple):
    train: torch.Tensor
    val: torch.Tensor
    checksum: str  # sha256 over train then val (store.splits_sha256), verified against checksum.txt


def open_dataset(name: str, image_size: int, root: str | os.PathLike = "data", **options: Any) -> OpenedDataset:
    """Both splits and their checksum, each built or read and hashed once (what a cell trains on).

    Prepared files are read and verified against checksum.txt in one hashing pass; an embedded
    dataset that is not prepared is built in memory once; a network one raises with the command to run.
    A name that is no registered dataset is a dataset prepared from your own files (`prepare(..., path=)`)
    or a path to a tensor file or image folder, read for this run (mfcbench/data/tensors.py)."""
    from .store import is_prepared, splits_sha256

    image_size, root = check_image_size(image_size), Path(root)
    directory = prepared_dir(root, name, image_size)
    if name not in dataset_names():
        return _open_unregistered(name, image_size, root, directory, options)
    ds = get_dataset(name)
    if is_prepared(directory):
        _check_options_match(directory, ds, options)
        return _open_prepared(directory, name, ds.channels)
    if not ds.embedded:
        raise _not_prepared(ds, image_size, root)
    splits = build_splits(name, image_size, root, fetch=False, **options)
    return OpenedDataset(splits["train"], splits["val"], splits_sha256(splits))


def _open_unregistered(name: str, image_size: int, root: Path, directory: Path, options) -> OpenedDataset:
    from . import tensors
    from .store import is_prepared, read_meta

    if is_prepared(directory) and read_meta(directory).get("source") == "path":
        return _open_prepared(directory, name, int(read_meta(directory)["channels"]))
    if tensors.is_path_name(name):
        return OpenedDataset(*tensors.open_path(name, image_size, **options))
    raise _unknown(name, image_size, root)


def _unknown(name: str, image_size: int, root: Path) -> ValueError:
    return ValueError(f"unknown dataset {name!r}; valid choices: {', '.join(dataset_names())}, a .pt tensor file or "
                      f"an image folder, or a name prepared from one (python -m mfcbench prepare --dataset {name} "
                      f"--path FILE --image-size {image_size} --root {root})")


def check_dataset(name: str, image_size: int, root: str | os.PathLike = "data") -> None:
    """Raise (one line) unless `name` can be opened: a registered dataset, a name prepared from your own
    files, or an existing tensor file or image folder. Reads no images (the command line's check before
    it creates a cell folder)."""
    from . import tensors
    from .store import is_prepared

    image_size, root = check_image_size(image_size), Path(root)
    if name in dataset_names() or is_prepared(prepared_dir(root, name, image_size)):
        return
    if tensors.is_path_name(name):
        if not Path(name).exists():
            raise FileNotFoundError(f"dataset {name!r}: no such file or folder (a .pt tensor file or a folder of images)")
        return
    raise _unknown(name, image_size, root)


def _open_prepared(directory: Path, name: str, channels: int) -> OpenedDataset:
    """A prepared folder's splits, verified against checksum.txt and meta.json in one hashing pass."""
    from ..core import atomic
    from .store import read_checksum, splits_sha256

    fix = f"delete {directory} and run `python -m mfcbench prepare --dataset {name} --image-size {directory.name}` again"
    splits = {s: atomic.torch_load(directory / f"{s}.pt", "prepared data", fix) for s in SPLITS}
    checksum, recorded = splits_sha256(splits), read_checksum(directory)
    if checksum != recorded:
        raise CorruptPreparedDataError(f"{directory}: tensors hash to {checksum[:12]}..., checksum.txt says "
                                       f"{recorded[:12]}...; delete {directory} and prepare again")
    for split, x in splits.items():
        verify_split(directory, split, x)  # first: its errors name the file
        _check_tensor(x, name, channels, split)
    return OpenedDataset(splits["train"], splits["val"], checksum)


def dataset_checksum(name: str, image_size: int, root: str | os.PathLike = "data", **options: Any) -> str:
    """sha256 of the dataset's tensors: verified from the prepared files when present, else (embedded
    datasets only) computed from the in-memory build that load_split would return."""
    from .store import is_prepared, splits_sha256, verify_checksum

    ds = get_dataset(name)
    image_size, root = check_image_size(image_size), Path(root)
    directory = prepared_dir(root, name, image_size)
    if is_prepared(directory):
        _check_options_match(directory, ds, options)
        return verify_checksum(directory)
    if not ds.embedded:
        raise _not_prepared(ds, image_size, root)
    return splits_sha256(build_splits(name, image_size, root, fetch=False, **options))


def prepare(name: str, image_size: int, root: str | os.PathLike = "data", *, limit_train: int | None = None,
            limit_val: int | None = None, path: str | os.PathLike | None = None, **options: Any) -> Path:
    """Fetch (if needed), build and write `<root>/prepared/<name>/<size>/` atomically; returns the folder.
    With `path` (a tensor file or image folder, mfcbench/data/tensors.py) `name` is any new name."""
    from .store import write_prepared

    if path is not None:
        from .tensors import prepare_path

        if name in dataset_names():
            raise ValueError(f"--path: {name!r} is a registered dataset; prepare your files under another name")
        return prepare_path(name, path, image_size, root, limit_train=limit_train, limit_val=limit_val, **options)

    ds = get_dataset(name)
    image_size, root = check_image_size(image_size), Path(root)
    resolved = ds.resolve(options)
    splits = build_splits(name, image_size, root, **options)
    splits = {"train": _limit(splits["train"], limit_train), "val": _limit(splits["val"], limit_val)}
    meta = {
        "dataset": name,
        "image_size": image_size,
        "channels": ds.channels,
        "options": resolved,
        "limit_train": limit_train,
        "limit_val": limit_val,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    directory = prepared_dir(root, name, image_size)
    write_prepared(directory, splits, meta)
    return directory
