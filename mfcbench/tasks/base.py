"""The Task interface shared by every task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Batch:
    """One batch on the finest mesh. Strategies restrict `inputs` and `targets` alike;
    `cond` (a (B,) tensor, e.g. the noise level t) is mesh-independent and passes through."""

    inputs: torch.Tensor
    targets: torch.Tensor
    cond: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]


class Task:
    """Base class. Subclasses set `name`, `headline_metric` and `higher_is_better`;
    make_batch / loss / evaluate are what the cell runner and the strategies call.
    (Experiments that train nothing, like Tables 1-2's gradient discrepancy, live in mfcbench/experiments.)
    """

    name: str = "task"
    headline_metric: str = "val_loss"
    higher_is_better: bool = False
    seeded_options: tuple[str, ...] = ()  # options that default to the cell seed (e.g. a kernel draw)

    def __init__(self, options: dict[str, Any]):
        self.options = dict(options)

    def metric_notes(self) -> dict[str, Any]:
        """What a reader must know to compare this task's metrics with other work (metrics.json
        `metric_notes`), e.g. the value range the metric is measured in; empty by default."""
        return {}

    # --- shapes -------------------------------------------------------------------------
    def model_options(self, data_channels: int) -> dict[str, Any]:
        """Keyword arguments for `build_model`: in/out channels, cond (bool), upscale (1 or 2)."""
        return {"in_channels": data_channels, "out_channels": data_channels, "cond": False, "upscale": 1}

    def min_divisor(self) -> int:
        """Image sizes must be divisible by min_divisor() * 2**(levels-1) (e.g. 2 for x2 SR)."""
        return 1

    # --- training -----------------------------------------------------------------------
    def make_batch(self, images: torch.Tensor, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batch: Batch, chunk: int = 64) -> dict[str, float]:
        raise NotImplementedError
