"""Your own images as a dataset: a tensor file (`.pt`) or a folder of image files.

What is accepted:
- a `.pt`/`.pth` file holding a float tensor (N, C, H, W) (or (N, H, W): one channel) with values in
  [0, 1] (a uint8 tensor is read as 0..255), or a dict {"train": tensor, "val": tensor};
- a folder of image files (png, jpg, jpeg, bmp, tif, tiff, webp; sorted by name), or a folder holding
  `train/` and `val/` subfolders of them. When every image (of both subfolders) is grayscale (1-bit,
  8-bit or 16-bit) the dataset has 1 channel, otherwise 3 (RGB; a grayscale image is repeated).

Images are read at their real range: 8-bit modes (1-bit, L, palette, RGB, CMYK, YCbCr, LAB, HSV) are
converted by Pillow to L or RGB and divided by 255; 16-bit grayscale (`I;16`, `I;16B`, ..., and `I`,
Pillow's 32-bit mode that 16-bit files may open as, whose values must lie in 0..65535) is divided by
65535. Alpha (LA, RGBA, a palette's transparency) is dropped: the colour under it is kept, not
composited. A mode without a known range (`F` float images, anything else) is refused naming the file.
Files are opened one at a time. Each image's size is read from its header before it is decoded; an
image over `max_pixels` pixels (default MAX_PIXELS; `prepare -o max_pixels=N` raises it) is refused,
as is one Pillow flags as a decompression bomb. Every image error is one line naming its file.

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
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core import atomic
from .store import prepared_dir, splits_sha256, write_prepared

TENSOR_SUFFIXES = (".pt", ".pth")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VAL_FRACTION = 0.1
# Pixels per image: above most camera photos; a 50 Mpx RGB image takes about 1.5 GB to decode and resize.
MAX_PIXELS = 50_000_000
OPTIONS = ("val_fraction", "max_pixels")
# Pillow modes read as grayscale; any other accepted mode makes the dataset RGB.
GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N")
# Integer modes holding 16-bit values, scaled by 65535 (Pillow opens 16-bit files as I;16* or as I).
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
# 8-bit modes Pillow converts to L or RGB (alpha and palette transparency dropped), scaled by 255.
BYTE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")
WIDE_MAX = 65535.0


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
    if x.layout != torch.strided:
        raise ValueError(f"{where}: a {x.layout} tensor; save it dense, e.g. torch.save(x.to_dense(), path)")
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


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def _unreadable(path: Path, exc: BaseException) -> ValueError:
    why = " ".join(str(exc).split()) or type(exc).__name__
    return ValueError(f"{path}: cannot be read as an image ({why}); the file is damaged, truncated or not an "
                      f"image: replace it or remove it from the folder")


def _bomb(path: Path, exc: BaseException) -> ValueError:
    return ValueError(f"{path}: refused by Pillow as a possible decompression bomb ({' '.join(str(exc).split())}); "
                      f"resize the image or remove it from the folder")


@contextmanager
def _open_image(path: Path, max_pixels: int) -> Iterator[Any]:
    """One image opened lazily (its header only) and closed on exit; refused, with one line naming the
    file, when it is not an image, is over the pixel budget, is a decompression bomb or has a mode
    without a known range."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(path, exc) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _unreadable(path, exc) from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(f"{path}: {width}x{height} is {width * height:,} pixels, over the budget of "
                             f"{max_pixels:,} pixels per image; resize it, or raise the budget with the "
                             f"option max_pixels (prepare -o max_pixels=N)")
        if image.mode not in BYTE_MODES + WIDE_MODES:
            kind = "32-bit float, " if image.mode == "F" else ""
            raise ValueError(f"{path}: image mode {image.mode} ({kind}no known range to scale to [0, 1]) is not "
                             f"read; save it as an 8- or 16-bit image, or as a .pt tensor in [0, 1]")
        yield image


def _wide_pixels(path: Path, image: Any) -> torch.Tensor:
    """(H, W) float32 in [0, 1] from a 16-bit (or I-mode) image: its values divided by 65535."""
    import numpy as np

    values = np.asarray(image).astype(np.int32)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 or high > WIDE_MAX:
        raise ValueError(f"{path}: {image.mode} pixel values span [{low}, {high}], outside the 16-bit range "
                         f"0..65535 that is scaled to [0, 1]; save it as an 8- or 16-bit image, or as a .pt "
                         f"tensor in [0, 1]")
    return torch.from_numpy(values.astype(np.float32)) / WIDE_MAX


def _read_image(path: Path, mode: str, image_size: int, max_pixels: int) -> torch.Tensor:
    """One image file as (1, C, image_size, image_size) float32 in [0, 1], C = 1 for mode "L", 3 for "RGB"."""
    from PIL import Image

    with _open_image(path, max_pixels) as image:
        w, h = image.size
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                if image.mode in WIDE_MODES:
                    image.load()
                else:
                    data = bytearray(image.convert(mode).tobytes())
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb(path, exc) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _unreadable(path, exc) from None
        if image.mode in WIDE_MODES:
            pixels = _wide_pixels(path, image)[None, None].expand(1, 1 if mode == "L" else 3, h, w).contiguous()
        else:
            array = torch.frombuffer(data, dtype=torch.uint8)
            pixels = array.view(h, w, -1).permute(2, 0, 1)[None].float() / 255.0
    return fit_size(pixels, image_size)


def _read_image_folders(folders: list[Path], image_size: int, max_pixels: int = MAX_PIXELS) -> list[torch.Tensor]:
    """Each folder's images as one (N, C, image_size, image_size) tensor; one channel count for all of them.
    Every header is checked (pixel budget, mode) before any image is decoded; one file is open at a time."""
    max_pixels = _check_max_pixels(max_pixels)
    groups = [_image_files(folder) for folder in folders]
    modes = []
    for path in (p for files in groups for p in files):
        with _open_image(path, max_pixels) as image:
            modes.append(image.mode)
    mode = "L" if all(m in GRAY_MODES for m in modes) else "RGB"
    return [torch.cat([_read_image(p, mode, image_size, max_pixels) for p in files]) for files in groups]


def _check_max_pixels(max_pixels: Any) -> int:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer (pixels per image), got {max_pixels!r}")
    return max_pixels


def read_path(path: str | os.PathLike, image_size: int, val_fraction: float = VAL_FRACTION,
              max_pixels: int = MAX_PIXELS) -> dict[str, torch.Tensor]:
    """The train and val splits of a tensor file or image folder, at image_size (see the module docstring);
    max_pixels bounds each image file's width * height."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset {str(path)!r}: no such file or folder (a .pt tensor file or a folder of images)")
    if path.is_dir():
        if (path / "train").is_dir() and (path / "val").is_dir():
            train, val = _read_image_folders([path / "train", path / "val"], image_size, max_pixels)
            return {"train": train, "val": val}
        return split(_read_image_folders([path], image_size, max_pixels)[0], val_fraction, str(path))
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


def _options(options: dict[str, Any], where: str) -> tuple[float, int]:
    """(val_fraction, max_pixels) from a path dataset's options."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; valid options: {', '.join(OPTIONS)}")
    try:
        max_pixels = _check_max_pixels(options.get("max_pixels", MAX_PIXELS))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return float(options.get("val_fraction", VAL_FRACTION)), max_pixels


def open_path(path: str | os.PathLike, image_size: int, **options: Any) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train, val, checksum) of a tensor file or image folder, read for one run (nothing written)."""
    splits = read_path(path, image_size, *_options(options, f"dataset {str(path)!r}"))
    return splits["train"], splits["val"], splits_sha256(splits)


def prepare_path(name: str, path: str | os.PathLike, image_size: int, root: str | os.PathLike = "data", *,
                 limit_train: int | None = None, limit_val: int | None = None, **options: Any) -> Path:
    """Write `<root>/prepared/<name>/<image_size>/` from a tensor file or image folder (the profile's way in)."""
    val_fraction, max_pixels = _options(options, f"dataset {name!r}")
    splits = read_path(path, image_size, val_fraction, max_pixels)
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
