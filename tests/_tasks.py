"""A denoising task shared by the strategy and runner tests: each input is its image plus Gaussian noise
scaled by a per-sample level t, which is also the model's cond. `noise` sets the amplitude."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from mfcbench.tasks.base import Batch, Task


class NoisyDenoise(Task):
    name = "noisy_for_tests"
    headline_metric = "val_mse"
    noise = 0.1

    def model_options(self, data_channels):
        return {"in_channels": data_channels, "out_channels": data_channels, "cond": True, "upscale": 1}

    def make_batch(self, images, generator):
        t = torch.rand(images.shape[0], generator=generator)
        noise = torch.randn(images.shape, generator=generator)
        return Batch(images + self.noise * t.view(-1, 1, 1, 1) * noise, images, t)

    def loss(self, prediction, batch):
        return F.mse_loss(prediction, batch.targets)

    @torch.no_grad()
    def evaluate(self, model, batch, chunk=64):
        mse = float(F.mse_loss(model(batch.inputs, cond=batch.cond), batch.targets))
        return {"val_loss": mse, "val_mse": mse}
