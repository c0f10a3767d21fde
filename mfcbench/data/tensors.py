"""Your own images as a dataset: a tensor file (`.pt`) or a folder of image files.

What is accepted:
- a `.pt`/`.pth` file holding a float tensor (N, C, H, W) (or (N, H, W): one channel) with values in
  [0, 1] (a uint8 tensor is read as 0..255), or a dict {"train": tensor, "val": tensor};
- a folder of image files (png, jpg, jpeg, bmp, tif, tiff, webp; sorted by name), or a folder holding
  `train/` and `val/` subfolders of them. All-grayscale images give 1 channel, otherwise RGB.

A single tensor or folder is split deterministically: `val_fraction` (default 0.1, at least one image)
of the images, evenly spaced over their order, are the val split, the rest train. Images that are not
`image_size` squares are centre-cropped to a square and resized (bilinear, antialiased). The checksum is
the one every dataset has (`store.splits_sha256`: sha256 over the train then val tensors), recorded in
each cell's manifest.

Where it is used:
- `python -m mfcbench train --dataset path/to/mine.pt ...` reads the file for that run (`open_path`);
- a profile names it with its path as a prepare option, `datasets: {mine: {image_size: 32,
  prepare_options: {path: data/mine.pt}}}`, so the pipeline (and DVC) runs `python -m mfcbench prepare
  --dataset mine --path data/mine.pt --image-size 32`, which writes data/prepared/mine/32/ like any
  dataset (`prepare_path`); the cells then train on `--dataset mine`.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core import atomic
from .store import prepared_dir, splits_sha256, write_prepared

TENSOR_SUFFIXES = (".pt", ".pth")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VAL_FRACTION = 0.1
OPTIONS = ("val_fraction",)


def is_path_name(name: str) -> bool:
    """A dataset name that is a path: it holds a slash, ends in .pt/.pth, or names an existing file or folder
    (asked only for names that are not registered datasets)."""
    text = str(name)
    return "/" in text or os.sep in text or text.endswith(TENSOR_SUFFIXES) or Path(text).exists()


def _as_images(x: Any, where: str) -> torch.Tensor:
    """float32 (N, C, H, W) in [0, 1] from what a file held; one line naming the file and the fix otherwise."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{where}: expected a tensor (N, C, H, W) or a dict {{'train': ..., 'val': ...}}, "
                         f"got {type(x).__name__}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    if not x.is_floating_point():
        raise ValueError(f"{where}: expected a float tensor in [0, 1] (or uint8), got {x.dtype}")
    x = x.float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[0] == 0 or min(x.shape[1:]) == 0:
        raise ValueError(f"{where}: expected a non-empty (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{where}: NaN or infinite pixel values; fix the data")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{where}: values span [{low:g}, {high:g}], expected [0, 1]; scale them (e.g. x / 255)")
    return x


def fit_size(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """Centre-crop (N, C, H, W) to a square and resize it to image_size (bilinear, antialiased)."""
    h, w = x.shape[-2:]
    if (h, w) == (image_size, image_size):
        return x.contiguous()
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top:top + side, left:left + side]
    out = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                        antialias=side > image_size)
    return out.clamp_(0.0, 1.0).contiguous()


def split(x: torch.Tensor, val_fraction: float = VAL_FRACTION, where: str = "dataset") -> dict[str, torch.Tensor]:
    """Deterministic split: round(N * val_fraction) images (at least one), evenly spaced, are val."""
    val_fraction = float(val_fraction)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"{where}: a single tensor must hold at least 2 images to split into train and val, got {n}")
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[torch.linspace(0, n - 1, n_val).round().long()] = True
    return {"train": x[~is_val].contiguous(), "val": x[is_val].contiguous()}


def _read_image_folder(folder: Path, image_size: int) -> torch.Tensor:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    images = [Image.open(p) for p in files]
    mode = "L" if all(im.mode in ("1", "L", "I", "I;16", "F") for im in images) else "RGB"
    out = []
    for path, image in zip(files, images):
        array = torch.frombuffer(bytearray(image.convert(mode).tobytes()), dtype=torch.uint8)
        w, h = image.size
        pixels = array.view(h, w, -1).permute(2, 0, 1)[None].float() / 255.0
        out.append(fit_size(pixels, image_size))
    return torch.cat(out)


def read_path(path: str | os.PathLike, image_size: int, val_fraction: float = VAL_FRACTION) -> dict[str, torch.Tensor]:
    """The train and val splits of a tensor file or image folder, at image_size (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset {str(path)!r}: no such file or folder (a .pt tensor file or a folder of images)")
    if path.is_dir():
        if (path / "train").is_dir() and (path / "val").is_dir():
            return {s: _read_image_folder(path / s, image_size) for s in ("train", "val")}
        return split(_read_image_folder(path, image_size), val_fraction, str(path))
    held = atomic.torch_load(path, "dataset tensor file", "save a tensor (N, C, H, W) in [0, 1] with torch.save")
    if isinstance(held, dict):
        if set(held) != {"train", "val"}:
            raise ValueError(f"{path}: a dict must hold exactly the keys 'train' and 'val', got {sorted(map(str, held))}")
        splits = {s: fit_size(_as_images(held[s], f"{path}[{s!r}]"), image_size) for s in ("train", "val")}
    else:
        splits = split(fit_size(_as_images(held, str(path)), image_size), val_fraction, str(path))
    if splits["train"].shape[1] != splits["val"].shape[1]:
        raise ValueError(f"{path}: train has {splits['train'].shape[1]} channels, val {splits['val'].shape[1]}")
    return splits


def _options(options: dict[str, Any], where: str) -> float:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; valid options: {', '.join(OPTIONS)}")
    return float(options.get("val_fraction", VAL_FRACTION))


def open_path(path: str | os.PathLike, image_size: int, **options: Any) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train, val, checksum) of a tensor file or image folder, read for one run (nothing written)."""
    splits = read_path(path, image_size, _options(options, f"dataset {str(path)!r}"))
    return splits["train"], splits["val"], splits_sha256(splits)


def prepare_path(name: str, path: str | os.PathLike, image_size: int, root: str | os.PathLike = "data", *,
                 limit_train: int | None = None, limit_val: int | None = None, **options: Any) -> Path:
    """Write `<root>/prepared/<name>/<image_size>/` from a tensor file or image folder (the profile's way in)."""
    val_fraction = _options(options, f"dataset {name!r}")
    splits = read_path(path, image_size, val_fraction)
    for split_name, limit in (("train", limit_train), ("val", limit_val)):
        if limit is not None:
            splits[split_name] = splits[split_name][: int(limit)].contiguous()
    meta = {
        "dataset": name, "image_size": int(image_size), "channels": int(splits["train"].shape[1]),
        "source": "path", "options": {"path": str(path), "val_fraction": val_fraction},
        "limit_train": limit_train, "limit_val": limit_val,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    directory = prepared_dir(root, name, image_size)
    write_prepared(directory, splits, meta)
    return directory
