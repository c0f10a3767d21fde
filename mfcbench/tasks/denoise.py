"""Denoising (paper Section 5, Tables 4, 6, 7, 10, 12): u = t*y + (1 - t)*z, the model sees (u, t).

Options (cell config `task_options`):
- image_range: "symmetric" (default) maps the dataset's [0, 1] images to [-1, 1]; "unit" keeps
  [0, 1]. Default [-1, 1] because the noise z ~ N(0, I) is zero-mean, so a zero-centred signal
  makes t interpolate between two zero-mean fields (the guided-diffusion convention the paper's
  UNet comes from, and the authors' public code normalises CelebA to [-1, 1]). val_mse is measured
  in the range the model sees, so it is 4x the [0, 1] value for the same per-pixel error.
- t_min, t_max: the noise-level interval t ~ U(t_min, t_max); default [0, 1] as in the paper.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from . import TASKS
from ._common import rand, randn_like, validation_mse
from .base import Batch, Task

IMAGE_RANGES = ("symmetric", "unit")


@TASKS.register("denoise")
class Denoise(Task):
    name = "denoise"
    headline_metric = "val_mse"
    higher_is_better = False

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        self.image_range = self.options.setdefault("image_range", "symmetric")
        if self.image_range not in IMAGE_RANGES:
            raise ValueError(f"denoise: image_range must be one of {IMAGE_RANGES}, got {self.image_range!r}")
        self.t_min = float(self.options.setdefault("t_min", 0.0))
        self.t_max = float(self.options.setdefault("t_max", 1.0))
        if not 0.0 <= self.t_min <= self.t_max <= 1.0:
            raise ValueError(f"denoise: need 0 <= t_min <= t_max <= 1, got {self.t_min}, {self.t_max}")

    def model_options(self, data_channels: int) -> dict[str, Any]:
        return {"in_channels": data_channels, "out_channels": data_channels, "cond": True, "upscale": 1}

    def to_model_range(self, images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1 if self.image_range == "symmetric" else images

    def make_batch(self, images: torch.Tensor, generator: torch.Generator) -> Batch:
        clean = self.to_model_range(images)
        t = self.t_min + (self.t_max - self.t_min) * rand((clean.shape[0],), generator, clean)
        z = randn_like(clean, generator)
        tb = t[:, None, None, None]
        return Batch(inputs=tb * clean + (1 - tb) * z, targets=clean, cond=t)

    def loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.mse_loss(prediction, batch.targets)

    def metric_notes(self) -> dict[str, Any]:
        """The range val_mse is measured in; recorded in every denoise cell's metrics.json."""
        if self.image_range == "unit":
            return {"value_range": [0, 1], "val_mse": "measured on images in [0, 1] (image_range: unit)"}
        return {"value_range": [-1, 1],
                "val_mse": "measured on images mapped to [-1, 1] (image_range: symmetric): 4x the MSE of the same "
                           "per-pixel error on [0, 1] images; divide by 4 to compare with [0, 1] values"}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batch: Batch, chunk: int = 64) -> dict[str, float]:
        """val_mse (= val_loss) of the model's prediction of the clean image over the fixed batch.

        Measured in the range the model sees: with the default image_range "symmetric" the images are
        in [-1, 1], so val_mse is 4x the [0, 1] value for the same per-pixel error (`metric_notes`,
        recorded in metrics.json). model: called as model(inputs, cond=t); batch: the validation batch;
        chunk: images per forward pass."""
        mse = validation_mse(model, batch, chunk)
        return {"val_loss": mse, "val_mse": mse}
