"""`skimage`: the photographs that ship inside scikit-image, tiled into patches.

The split is BY IMAGE (no patch of a val image is ever seen in training), from the fixed lists
below; only images that load offline from the scikit-image wheel are used. Each image is shrunk
so its longer side is at most `max_side`, then cut into `image_size` patches on a grid of step
`stride` (default: `image_size`, i.e. non-overlapping), keeping at most `max_patches_per_image`
evenly spaced patches. RGB by default (grayscale images replicated); `channels=1` gives luminance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .base import DATASETS, Dataset
from .transforms import hwc_to_chw, limit_side, tile
from ..core.optional import require

TRAIN_IMAGES = [
    "astronaut", "brick", "chelsea", "clock", "colorwheel", "gravel", "hubble_deep_field",
    "immunohistochemistry", "moon", "page", "retina", "rocket", "text", "cell", "stereo_motorcycle",
]
VAL_IMAGES = ["camera", "coffee", "grass", "coins"]


def load_image(name: str):
    """One skimage.data image as an array; tuples (stereo pairs) give their first image."""
    require("skimage.data", "harness")  # a missing package names its extra
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"skimage.data has no image {name!r}")
    image = loader()
    return image[0] if isinstance(image, tuple) else image


@DATASETS.register("skimage")
class SkimageImages(Dataset):
    name = "skimage"
    channels = 3
    defaults = {
        "channels": 3,
        "max_side": 512,
        "stride": None,
        "max_patches_per_image": None,
        "train_images": TRAIN_IMAGES,
        "val_images": VAL_IMAGES,
    }
    test_options = {"max_side": 128, "max_patches_per_image": 2,
                    "train_images": ["astronaut", "camera"], "val_images": ["coins"]}

    def resolve(self, options):
        resolved = super().resolve(options)
        if resolved["channels"] not in (1, 3):
            raise ValueError(f"skimage: channels must be 1 or 3, got {resolved['channels']!r}")
        self.channels = int(resolved["channels"])
        overlap = set(resolved["train_images"]) & set(resolved["val_images"])
        if overlap:
            raise ValueError(f"skimage: images {sorted(overlap)} are in both train and val")
        return resolved

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        names = options["train_images"] if split == "train" else options["val_images"]
        patches = []
        for name in names:
            image = limit_side(hwc_to_chw(load_image(name), int(options["channels"])), options["max_side"])
            patches.append(tile(image, image_size, options["stride"], options["max_patches_per_image"]))
        out = torch.cat(patches) if patches else torch.zeros(0, int(options["channels"]), image_size, image_size)
        if out.shape[0] == 0:
            raise ValueError(
                f"skimage: no {image_size}x{image_size} patch fits in the {split} images {names} "
                f"(max_side={options['max_side']}); use a smaller image_size or a larger max_side"
            )
        return out.contiguous()
