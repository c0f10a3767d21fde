"""Helpers shared by the trainable tasks: seeded draws that do not depend on the images' device,
and chunked evaluation."""

from __future__ import annotations

import torch

from .base import Batch


def randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1) noise shaped like x, drawn on the generator's device so a seed gives the same draw
    whatever device the images live on."""
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def rand(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """U(0, 1) draws, generator-device first (see randn_like)."""
    return torch.rand(shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)


@torch.no_grad()
def chunked_predictions(model: torch.nn.Module, batch: Batch, chunk: int):
    """Yield (prediction, sub-batch) in chunks with the model in eval mode (restored afterwards)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(batch), chunk):
            stop = start + chunk
            cond = None if batch.cond is None else batch.cond[start:stop]
            part = Batch(batch.inputs[start:stop], batch.targets[start:stop], cond)
            yield model(part.inputs, cond=part.cond), part
    finally:
        model.train(was_training)


@torch.no_grad()
def validation_mse(model: torch.nn.Module, batch: Batch, chunk: int) -> float:
    """Mean squared error over the whole validation batch, evaluated in chunks."""
    total = 0.0
    for prediction, part in chunked_predictions(model, batch, chunk):
        total += torch.nn.functional.mse_loss(prediction, part.targets, reduction="sum").item()
    return total / batch.targets.numel()
