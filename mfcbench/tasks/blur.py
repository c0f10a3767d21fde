"""Blur-kernel estimation (paper Section 5, Table 3, Figure 4): y = G * u + noise, learn G from (u, y).

G is a random positive 7x7 kernel normalised to sum 1, drawn once per cell from `kernel_seed`;
it is applied per channel with periodic boundaries as a cross-correlation (PyTorch's conv2d
convention, so a learned 7x7 Conv2d weight can match G entry by entry). The model sees u and
predicts y; loss 0.5 * MSE (the paper's 1/2 E||y - G * u||^2 per pixel).

The task does not depend on the model (7x7 conv or MFC): `val_kernel_error` compares impulse
responses, ||f(delta) - f(0) - G * delta|| / ||G * delta|| on the validation mesh, which is the
relative error of the learned operator for any affine model.

Options (cell config `task_options`):
- kernel_seed: seed of the kernel draw (default: the cell seed, via `seeded_options`; 0 standalone)
- kernel: "gaussian" (default: an anisotropic Gaussian with stds U(0.7, 2.0) px and a random
  orientation, a typical optical blur) or "uniform" (i.i.d. U(0, 1) entries; rough, not smooth).
- kernel_size: 7 (the paper's size).
- sigma: std of the additive Gaussian noise on y (default 0.01; the paper's epsilon is unsized).
- kernel_error: compute val_kernel_error in evaluate (default True).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from . import TASKS
from ._common import randn_like, validation_mse
from .base import Batch, Task

KERNELS = ("gaussian", "uniform")


def random_blur_kernel(size: int, kind: str, generator: torch.Generator) -> torch.Tensor:
    """A positive (size, size) float64 kernel summing to 1."""
    if kind == "gaussian":
        stds = 0.7 + 1.3 * torch.rand(2, generator=generator, dtype=torch.float64)
        angle = math.pi * torch.rand((), generator=generator, dtype=torch.float64)
        rot = torch.stack((torch.stack((angle.cos(), -angle.sin())), torch.stack((angle.sin(), angle.cos()))))
        precision = rot @ torch.diag(stds.pow(-2)) @ rot.T
        r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        d = torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1)  # (size, size, 2)
        kernel = torch.exp(-0.5 * torch.einsum("...i,ij,...j->...", d, precision, d))
    elif kind == "uniform":
        kernel = torch.rand(size, size, generator=generator, dtype=torch.float64) + 1e-3
    else:
        raise ValueError(f"blur: kernel must be one of {KERNELS}, got {kind!r}")
    return kernel / kernel.sum()


def periodic_blur(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlate each channel with `kernel` (k, k), periodic boundaries."""
    channels, pad = images.shape[1], kernel.shape[-1] // 2
    weight = kernel.to(images).expand(channels, 1, *kernel.shape)
    return F.conv2d(F.pad(images, (pad, pad, pad, pad), mode="circular"), weight, groups=channels)


@TASKS.register("blur")
class BlurEstimation(Task):
    name = "blur"
    seeded_options = ("kernel_seed",)
    headline_metric = "val_loss"
    higher_is_better = False

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        self.kernel_seed = int(self.options.setdefault("kernel_seed", 0))
        kind = self.options.setdefault("kernel", "gaussian")
        size = int(self.options.setdefault("kernel_size", 7))
        if size < 1 or size % 2 == 0:
            raise ValueError(f"blur: kernel_size must be a positive odd integer, got {size}")
        self.sigma = float(self.options.setdefault("sigma", 0.01))
        if self.sigma < 0:
            raise ValueError(f"blur: sigma must be >= 0, got {self.sigma}")
        self.kernel_error = bool(self.options.setdefault("kernel_error", True))
        self.kernel = random_blur_kernel(size, kind, torch.Generator().manual_seed(self.kernel_seed)).float()

    def make_batch(self, images: torch.Tensor, generator: torch.Generator) -> Batch:
        blurred = periodic_blur(images, self.kernel)
        if self.sigma > 0:
            blurred = blurred + self.sigma * randn_like(blurred, generator)
        return Batch(inputs=images, targets=blurred, cond=None)

    def loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return 0.5 * F.mse_loss(prediction, batch.targets)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batch: Batch, chunk: int = 64) -> dict[str, float]:
        mse = validation_mse(model, batch, chunk)
        metrics = {"val_loss": 0.5 * mse, "val_mse": mse}
        if self.kernel_error:
            metrics["val_kernel_error"] = self.operator_error(model, batch.inputs[:1])
        return metrics

    @torch.no_grad()
    def operator_error(self, model: torch.nn.Module, like: torch.Tensor) -> float:
        """Relative L2 error of the model's impulse responses (one per input channel) against the
        true blur's, on the mesh of `like` (1, C, H, W); the delta sits at the centre."""
        _, channels, height, width = like.shape
        deltas = torch.zeros(channels, channels, height, width, dtype=like.dtype, device=like.device)
        deltas[torch.arange(channels), torch.arange(channels), height // 2, width // 2] = 1.0
        was_training = model.training
        model.eval()
        try:
            learned = model(deltas, cond=None) - model(torch.zeros_like(deltas[:1]), cond=None)
        finally:
            model.train(was_training)
        true = periodic_blur(deltas, self.kernel)
        return (torch.linalg.vector_norm(learned - true) / torch.linalg.vector_norm(true)).item()
