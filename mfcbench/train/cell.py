"""Build one cell: the one builder of what a `mfcbench.core.cell.Cell` trains.

The runner (`mfcbench.train.runner`), the figures that redraw trained cells
(`mfcbench.figures.visualise`) and the library's `fit` all build a cell here, so the seeding and
the validation batch cannot drift apart. Each takes the `Cell`, whose `config` is the resolved
training config:

- `task_and_strategy(cell)`: built and size-checked before any data is read;
- `cell_images(cell, train, val)`: the train images and the cell's validation subset
  (`validation_subset`), opened once, with the dataset checksum;
- `seeded_model(...)`: the model, initialised from `seed_for(seed, "init")`;
- `validation_batch(task, images, seed)`: the fixed validation batch (`seed_for(seed, "val")`);
- `build_cell(cell, val_images, device, parts)`: all of it, as a `BuiltCell`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..core.cell import Cell
from ..strategies.sampling import seed_for, to_device
from ..tasks.base import Batch, Task


@dataclass
class BuiltCell:
    """A cell's pieces before training: what the runner wraps with an optimizer and a sampler."""

    task: Task
    strategy: Any  # mfcbench.strategies.base.Strategy (None when the cell names no strategy)
    model: torch.nn.Module
    val_batch: Batch


def tensor_checksum(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def size_divisor(model: torch.nn.Module | None) -> int:
    """The mesh sizes a model accepts are multiples of this (1 for every registered model)."""
    return int(getattr(model, "size_divisor", 1)) if model is not None else 1


def check_sizes(cfg: Mapping[str, Any], task: Task, model: torch.nn.Module | None = None, strategy=None) -> None:
    """Every mesh the schedule can touch must be an integer size the model accepts. A cell checks it
    once, before any data is read (`task_and_strategy`: no model yet, divisor 1); `build_cell` checks
    again only a model whose `size_divisor` is above 1, which only the built model tells."""
    divisor = size_divisor(model)
    multiple = task.min_divisor() * 2 ** (cfg["levels"] - 1) * divisor
    if cfg["image_size"] % multiple:
        why = f"task min_divisor {task.min_divisor()} x 2**(levels-1)" + (f" x model size_divisor {divisor}" if model is not None else "")
        raise ValueError(f"image_size {cfg['image_size']} does not fit {cfg['levels']} levels: "
                         f"it must be a multiple of {multiple} ({why})")
    crop = cfg.get("crop_size")
    if strategy is not None and strategy.name == "crops" and crop and crop % (task.min_divisor() * divisor):
        raise ValueError(f"crop_size {crop} must be a multiple of {task.min_divisor() * divisor}")


def task_and_strategy(cell: Cell) -> tuple[Task, Any]:
    """Built and size-checked before any data is read, so a bad schedule fails in a second.
    A cell without a `strategy` (a figure of an untrained network) gets None."""
    from ..strategies import build_strategy
    from ..tasks import build_task

    cfg = cell.config
    task = build_task(cell.task, cfg["task_options"], seed=cell.seed)
    strategy = build_strategy(cell.strategy, cfg) if cell.strategy else None
    check_sizes(cfg, task, None, strategy)
    return task, strategy


def validation_subset(val_images: torch.Tensor, cfg: Mapping[str, Any]) -> torch.Tensor:
    """The cell's validation images: `val_size` of them, evenly spaced over the split ("spread": every
    val image contributes, whatever order the dataset tiles it in) or the first ones ("first")."""
    n = min(cfg["val_size"], len(val_images))
    if cfg.get("val_selection", "spread") == "first" or n == len(val_images):
        return val_images[:n]
    return val_images[torch.linspace(0, len(val_images) - 1, n).round().long()]


def cell_images(cell: Cell, train_images=None, val_images=None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The cell's train images and validation subset (its dataset opened once, unless both are given)
    and the dataset checksum."""
    cfg = cell.config
    if train_images is None or val_images is None:
        from ..data import open_dataset

        train_images, val_images, checksum = open_dataset(cell.dataset, cfg["image_size"], cfg["data_root"])
    else:
        checksum = tensor_checksum(train_images, val_images)
    train_images = train_images.float().cpu()
    val_images = validation_subset(val_images, cfg).float().cpu()
    if len(train_images) == 0 or len(val_images) == 0:
        raise ValueError("the train and val splits must each hold at least one image")
    if tuple(train_images.shape[-2:]) != (cfg["image_size"],) * 2:
        raise ValueError(f"training images are {tuple(train_images.shape[-2:])}, config image_size is {cfg['image_size']}")
    return train_images, val_images, checksum


def validation_batch(task: Task, images: torch.Tensor, seed: int, device: torch.device | str = "cpu") -> Batch:
    """The cell's fixed validation batch: the task's corruption of `images` drawn from the cell's
    "val" stream, on `device`."""
    return to_device(task.make_batch(images, torch.Generator().manual_seed(seed_for(seed, "val"))), torch.device(device))


def seeded_model(arch: str, task: Task, cfg: Mapping[str, Any], channels: int, seed: int,
                 device: torch.device | str = "cpu") -> torch.nn.Module:
    """The cell's model, initialised from its "init" stream (which dropout then continues)."""
    from ..models import build_model

    device = torch.device(device)
    torch.manual_seed(seed_for(seed, "init"))
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed_for(seed, "init"))
    return build_model(arch, **{**task.model_options(channels), **cfg["model"]}).to(device).float()


def build_cell(cell: Cell, val_images: torch.Tensor, device: torch.device | str = "cpu",
               parts: tuple[Task, Any] | None = None) -> BuiltCell:
    """Task, strategy, seeded model and validation batch of `cell` under its resolved config;
    `val_images` is the cell's validation subset (`cell_images` / `validation_subset`). `parts` passes
    a `task_and_strategy` already built (the runner checks it before reading data)."""
    task, strategy = parts if parts is not None else task_and_strategy(cell)
    model = seeded_model(cell.arch, task, cell.config, val_images.shape[1], cell.seed, device)
    if size_divisor(model) != 1:  # task_and_strategy checked every mesh for divisor 1
        check_sizes(cell.config, task, model, strategy)
    return BuiltCell(task, strategy, model, validation_batch(task, val_images, cell.seed, device))
