"""`digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images), upsampled, 1 channel.

The split is by position in sklearn's fixed order: the last `val_fraction` of the images are val.
Values 0..16 map to [0, 1]; upsampling is bilinear (or nearest, via the `mode` option).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .base import DATASETS, Dataset
from ..core.optional import require

MODES = ("bilinear", "nearest", "bicubic")


@DATASETS.register("digits")
class Digits(Dataset):
    name = "digits"
    channels = 1
    defaults = {"val_fraction": 0.2, "mode": "bilinear"}
    test_options = {}

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        require("sklearn.datasets", "harness")  # a missing package names its extra
        from sklearn.datasets import load_digits

        mode = options["mode"]
        if mode not in MODES:
            raise ValueError(f"unknown upsampling mode {mode!r}; valid choices: {', '.join(MODES)}")
        frac = float(options["val_fraction"])
        if not 0.0 < frac < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {frac}")
        images = torch.from_numpy(load_digits().images).float().div_(16.0)[:, None]  # (1797, 1, 8, 8)
        n_val = max(1, round(images.shape[0] * frac))
        part = images[: images.shape[0] - n_val] if split == "train" else images[images.shape[0] - n_val :]
        extra = {"align_corners": False} if mode != "nearest" else {}
        out = F.interpolate(part, size=(image_size, image_size), mode=mode, **extra)
        return out.clamp_(0.0, 1.0).contiguous()
