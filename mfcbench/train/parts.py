"""The runner's parts that hold no state (`mfcbench.train.runner` and `fit` use them): the device
(`resolve_device`), the optimizer and its lr schedule (`make_optimizer`, `learning_rate`), one
validation (`evaluate`), finite metrics for metrics.json (`finite_or_none`) and the peak memory.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from ..tasks.base import Batch, Task


def resolve_device(name: str) -> torch.device:
    """"auto", "cpu" or "cuda", refused in the library's words (`train` checks --device in its own)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; valid choices: 'auto', 'cpu', 'cuda'")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' asked for, but torch.cuda.is_available() is False; "
                         "use device='cpu' or 'auto'")
    return torch.device(name)


def make_optimizer(params, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    kind, lr, wd = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], weight_decay=wd)


def learning_rate(cfg: Mapping[str, Any], step: int, total: int) -> float:
    """Constant (paper) or cosine annealing to 0 over `total` steps (authors' code). The loop passes
    the phase's own step and iterations (`cosine`: each Full-Multiscale level restarts at the
    configured lr) or, for `cosine_run`, the step within the whole run and the run's iterations."""
    if cfg["lr_schedule"] in ("cosine", "cosine_run"):
        return 0.5 * cfg["lr"] * (1.0 + math.cos(math.pi * step / max(total, 1)))
    return cfg["lr"]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def finite_or_none(metrics: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in metrics.items():
        v = float(v) if isinstance(v, (int, float)) or torch.is_tensor(v) else v
        out[k] = v if not isinstance(v, float) or math.isfinite(v) else None
    return out


def evaluate(task: Task, model: torch.nn.Module, batch: Batch) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in task.evaluate(model, batch).items()}
    finally:
        model.train(was_training)
