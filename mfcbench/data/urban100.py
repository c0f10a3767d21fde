"""`urban100`: the 100 high-resolution Urban100 images (Huang et al. 2015), cut into HR patches.

The super-resolution task makes the low-resolution inputs itself, so this dataset holds HR patches
only. The archive (default: the HR-only tarball mirrored on Hugging Face, md5-checked) is fetched
into `<root>/raw/urban100/` and safely extracted; images are the archive's PNGs sorted by file
name. Split BY IMAGE: the first `n_train_images` (img_001..img_080 by default) are train, the rest
val. Patches: an `image_size` grid of step `stride` (default non-overlapping), at most
`max_patches_per_image` evenly spaced ones per image. `url`/`md5`/`sha256` point at another copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from .base import DATASETS, NetworkDataset
from .fetch import ensure_archive, safe_extract
from .transforms import hwc_to_chw, tile

URL = "https://huggingface.co/datasets/eugenesiow/Urban100/resolve/main/data/Urban100_HR.tar.gz"
MD5 = "65d9d84a34b72c6f7ca1e26a12df1e4c"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@DATASETS.register("urban100")
class Urban100(NetworkDataset):
    name = "urban100"
    channels = 3
    defaults = {"url": URL, "md5": MD5, "sha256": None, "n_train_images": 80, "stride": None,
                "max_patches_per_image": 32}

    def archive_path(self, root: Path, options: dict[str, Any]) -> Path:
        return self.raw_dir(root) / Path(urlparse(options["url"]).path).name

    def image_dir(self, root: Path, options: dict[str, Any]) -> Path:
        archive = self.archive_path(root, options)
        stem = archive.name
        for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
        return self.raw_dir(root) / "extracted" / stem

    def images(self, root: Path, options: dict[str, Any]) -> list[Path]:
        folder = self.image_dir(root, options)
        return sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)

    def fetch(self, root: Path, options: dict[str, Any]) -> None:
        if not (options["md5"] or options["sha256"]):
            raise ValueError("urban100: give md5 or sha256 for the archive; an unchecked download is refused")
        if self.image_dir(root, options).is_dir() and self.images(root, options):
            return
        archive = ensure_archive(options["url"], self.archive_path(root, options),
                                 md5=options["md5"], sha256=options["sha256"])
        safe_extract(archive, self.image_dir(root, options))

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        from PIL import Image

        paths = self.images(root, options)
        n_train = int(options["n_train_images"])
        if not 0 < n_train < len(paths):
            raise ValueError(f"urban100: n_train_images={n_train} must be in (0, {len(paths)}) for the "
                             f"{len(paths)} images in {self.image_dir(root, options)}")
        chosen = paths[:n_train] if split == "train" else paths[n_train:]
        patches = []
        for path in chosen:
            with Image.open(path) as img:
                image = hwc_to_chw(np.asarray(img.convert("RGB")), 3)
            patches.append(tile(image, image_size, options["stride"], options["max_patches_per_image"]))
        out = torch.cat(patches)
        if out.shape[0] == 0:
            raise ValueError(f"urban100: no {image_size}x{image_size} patch fits in the {split} images")
        return out.contiguous()
