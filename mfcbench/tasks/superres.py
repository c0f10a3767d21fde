"""x2 super-resolution (paper Section 5, Tables 5 and 8; Table 14): LR = bicubic(HR, 1/2) + noise.

The model maps the LR image (H/2) to the HR image (H), so models are built with upscale=2 and
image sizes must stay even on every level (min_divisor() = 2). Restricting inputs and targets by
the same factor keeps the x2 ratio on every mesh.

Loss 1 - SSIM (Table 14 trains on SSIM); metrics val_ssim, val_psnr, val_loss (images in [0, 1]).

SSIM on coarse meshes: the standard window (Gaussian sigma 1.5, 11 taps; Wang et al. 2004) is
wider than an 8-px image (a 64-px image on level 3), and torchmetrics' reflect padding fails once
the half-width reaches the image size. `ssim_window(height, width)` shrinks it with the image:
half-width r = min(5, (min(H, W) - 1) // 2), sigma = 1.5 * r / 5, so the window fits inside the
image and is the standard one from 11 px up. Images smaller than 3 px raise ValueError.

Options (cell config `task_options`):
- sigma: std of the Gaussian noise added to the LR image, in [0, 1] image units (default 0.01:
  the paper includes noise z in y = D u + z without giving its level).
- antialias: bicubic downsampling with an antialiasing filter (default True, like MATLAB imresize,
  the usual SR degradation).
- clamp_lr: clamp the bicubic LR image to [0, 1] before adding noise (default True, as when the
  LR image is stored as an image file).
- clamp_eval: clamp predictions to [0, 1] for val_ssim / val_psnr (default True; the loss never
  clamps, so gradients are not cut).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from ..core.optional import require
from . import TASKS
from ._common import chunked_predictions, randn_like
from .base import Batch, Task

BASE_SIGMA, BASE_HALF_WIDTH = 1.5, 5


def ssim_window(height: int, width: int) -> float:
    """The Gaussian-window sigma to use on an (height, width) image (see the module docstring)."""
    half = min(BASE_HALF_WIDTH, (min(height, width) - 1) // 2)
    if half < 1:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {height}x{width}")
    # torchmetrics uses 2 * int(3.5 * sigma + 0.5) + 1 taps; with sigma = 1.5 r / 5 that is 2 r + 1.
    return BASE_SIGMA * half / BASE_HALF_WIDTH


def ssim_per_image(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM of each image in the batch, shape (B,), with the size-adapted window."""
    require("torchmetrics.functional.image", "lib")  # a missing package names its extra
    from torchmetrics.functional.image import structural_similarity_index_measure

    sigma = ssim_window(*target.shape[-2:])
    return structural_similarity_index_measure(
        prediction, target, gaussian_kernel=True, sigma=sigma, data_range=data_range, reduction="none"
    )


def psnr_per_image(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    require("torchmetrics.functional.image", "lib")  # a missing package names its extra
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(prediction, target, data_range=data_range, reduction="none", dim=(1, 2, 3))


@TASKS.register("superres")
class SuperResolution(Task):
    name = "superres"
    headline_metric = "val_ssim"
    higher_is_better = True
    factor = 2

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        self.sigma = float(self.options.setdefault("sigma", 0.01))
        if self.sigma < 0:
            raise ValueError(f"superres: sigma must be >= 0, got {self.sigma}")
        self.antialias = bool(self.options.setdefault("antialias", True))
        self.clamp_lr = bool(self.options.setdefault("clamp_lr", True))
        self.clamp_eval = bool(self.options.setdefault("clamp_eval", True))

    def model_options(self, data_channels: int) -> dict[str, Any]:
        return {"in_channels": data_channels, "out_channels": data_channels, "cond": False, "upscale": self.factor}

    def min_divisor(self) -> int:
        return self.factor

    def degrade(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        height, width = images.shape[-2:]
        if height % self.factor or width % self.factor:
            raise ValueError(f"superres: image size {height}x{width} is not divisible by {self.factor}")
        size = (height // self.factor, width // self.factor)
        low = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=self.antialias)
        if self.clamp_lr:
            low = low.clamp(0.0, 1.0)
        if self.sigma > 0:
            low = low + self.sigma * randn_like(low, generator)
        return low

    def make_batch(self, images: torch.Tensor, generator: torch.Generator) -> Batch:
        return Batch(inputs=self.degrade(images, generator), targets=images, cond=None)

    def loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return 1.0 - ssim_per_image(prediction, batch.targets).mean()

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batch: Batch, chunk: int = 64) -> dict[str, float]:
        ssim_sum = psnr_sum = loss_sum = 0.0
        for prediction, part in chunked_predictions(model, batch, chunk):
            ssim_raw = ssim_per_image(prediction, part.targets)
            loss_sum += (1.0 - ssim_raw).sum().item()
            shown = prediction.clamp(0.0, 1.0) if self.clamp_eval else prediction
            ssim_sum += (ssim_per_image(shown, part.targets) if self.clamp_eval else ssim_raw).sum().item()
            psnr_sum += psnr_per_image(shown, part.targets).sum().item()
        count = len(batch)
        return {"val_loss": loss_sum / count, "val_ssim": ssim_sum / count, "val_psnr": psnr_sum / count}
