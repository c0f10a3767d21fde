"""`lfw`: the faces of scikit-image's `lfw_subset()`, the embedded stand-in for CelebA (Table 6).

`skimage.data.lfw_subset()` ships inside the scikit-image wheel (no network): 200 grayscale
25x25 crops from Labeled Faces in the Wild, of which the first 100 are faces and the last 100
are background patches ("non-faces", skimage's docstring). Only the 100 faces are used by
default (`include_non_faces: true` adds the backgrounds). The split is by position in skimage's
fixed order: the last `val_count` faces (default 20) are val, the rest (80) train; with
`include_non_faces` the backgrounds split the same way, so no image is in both.

Resizing: 25 px does not halve, so every crop is resized to the profile's `image_size` (32 px by
default: an antialiased bilinear UPSAMPLING from 25 px, which adds no detail: the finest mesh
holds at most 25 px worth of content). 1 channel by default; `channels: 3` replicates it (the
CelebA networks of the paper take RGB). No flips or other augmentation (no embedded dataset
augments; strategy `crops` is the repo's augmentation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .base import DATASETS, Dataset
from .transforms import resize, to_unit_float
from ..core.optional import require

FACES = 100  # skimage: "100 first images are faces and subsequent 100 are non-faces"


def lfw_images(include_non_faces: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(faces (100, 1, 25, 25), non-faces (100, 1, 25, 25) or None) as float32 in [0, 1]."""
    require("skimage.data", "harness")  # a missing package names its extra
    import skimage.data

    images = to_unit_float(skimage.data.lfw_subset())[:, None]  # float64 in [0, 1] -> float32
    if images.shape[0] != 2 * FACES:
        raise ValueError(f"lfw: skimage.data.lfw_subset() gave {images.shape[0]} images, expected {2 * FACES}")
    return images[:FACES], (images[FACES:] if include_non_faces else None)


@DATASETS.register("lfw")
class LFWFaces(Dataset):
    name = "lfw"
    channels = 1
    defaults = {"val_count": 20, "include_non_faces": False, "channels": 1}
    test_options = {}

    def resolve(self, options):
        resolved = super().resolve(options)
        if resolved["channels"] not in (1, 3):
            raise ValueError(f"lfw: channels must be 1 or 3, got {resolved['channels']!r}")
        count = resolved["val_count"]
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count < FACES:
            raise ValueError(f"lfw: val_count must be an integer in [1, {FACES - 1}], got {count!r}")
        self.channels = int(resolved["channels"])
        return resolved

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        faces, others = lfw_images(bool(options["include_non_faces"]))
        parts = [faces] if others is None else [faces, others]
        cut = FACES - int(options["val_count"])
        chosen = torch.cat([p[:cut] if split == "train" else p[cut:] for p in parts])
        out = resize(chosen, image_size)
        if options["channels"] == 3:
            out = out.expand(-1, 3, -1, -1)
        return out.contiguous()
