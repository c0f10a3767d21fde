"""`fit`'s inputs, checked where the mistake is made: the data (tensors, pairs or any iterable of batches),
the model's dtype and call signature, and the options that only `fit` sets.

Each refusal is one ValueError line naming the argument and the fix. An iterable of batches (a
`DataLoader`) is read once into one tensor in memory (`MATERIALISE_FRACTION` of this machine's memory at
most), announced in the log.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Sequence

import torch

from .config import memory_bytes

MATERIALISE_FRACTION = 0.5  # an iterable of batches is read into memory up to this share of the machine's


def _check_finite(tensor: torch.Tensor, name: str) -> None:
    """Refuse NaN or inf values (training on them diverges at the first step)."""
    if tensor.is_floating_point() or tensor.is_complex():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise ValueError(f"fit: {name} hold {bad} NaN or inf value(s) of {tensor.numel()}; clean or drop those "
                             f"images before training")


def _as_batch(batch: Any, name: str, index: int) -> tuple[torch.Tensor, ...]:
    """One batch of an iterable: a tensor of clean images, or (inputs, targets) (a 1-element list is images)."""
    if isinstance(batch, torch.Tensor):
        return (batch,)
    if isinstance(batch, (list, tuple)) and len(batch) in (1, 2) and all(isinstance(t, torch.Tensor) for t in batch):
        return tuple(batch)
    raise ValueError(f"fit: batch {index} of {name} is a {type(batch).__name__}; each batch must be a tensor of clean "
                     f"images or an (inputs, targets) pair of tensors")


def materialise(batches: Iterable, name: str, log: Callable[[str], None]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Read an iterable of batches (a DataLoader) into one tensor, or one (inputs, targets) pair of tensors."""
    limit, held, columns = int(memory_bytes() * MATERIALISE_FRACTION), 0, None
    for index, batch in enumerate(batches):
        parts = _as_batch(batch, name, index)
        if columns is None:
            columns = [[] for _ in parts]
        if len(parts) != len(columns):
            raise ValueError(f"fit: batch {index} of {name} has {len(parts)} tensor(s), the first had {len(columns)}")
        for column, part in zip(columns, parts):
            column.append(part.detach().float().cpu())
            held += column[-1].numel() * 4
        if held > limit:
            raise ValueError(f"fit: {name} does not fit in memory: fit reads an iterable of batches into memory once "
                             f"and {held / 1e9:.1f} GB after {index + 1} batches exceed its limit of {limit / 1e9:.1f} GB "
                             f"(half this machine's memory); pass a smaller dataset")
    if columns is None:
        raise ValueError(f"fit: {name} yielded no batches")
    tensors = tuple(torch.cat(column) for column in columns)
    shape = "x".join(str(s) for s in tensors[0].shape[1:])
    log(f"fit: read {len(columns[0])} batches of {name} into memory: {len(tensors[0])} images of {shape} "
        f"({held / 1e6:.1f} MB)")
    return tensors[0] if len(tensors) == 1 else tensors


def stacked(data: Any, name: str, log: Callable[[str], None]) -> tuple[torch.Tensor, int | None]:
    """(tensor the sampler draws from, input channels) for a pair (x, y), clean images, or an iterable of batches
    of either; float32 on the CPU, NaN and inf refused."""
    if not isinstance(data, torch.Tensor) and not _is_pair(data) and isinstance(data, Iterable):
        data = materialise(data, name, log)
    if isinstance(data, torch.Tensor):
        _check_finite(data, f"{name} images")
        return data.float().cpu(), None
    if _is_pair(data):
        x, y = data
        if x.dim() != 4 or y.dim() != 4 or x.shape[0] != y.shape[0] or x.shape[-2:] != y.shape[-2:]:
            raise ValueError(f"fit: {name} must be (inputs, targets), both (N, C, H, W) with the same N, H and W; got "
                             f"{tuple(x.shape)} and {tuple(y.shape)} (for super-resolution pass clean images and "
                             f"task='superres')")
        _check_finite(x, f"{name} inputs")
        _check_finite(y, f"{name} targets")
        return torch.cat((x, y), 1).float().cpu(), x.shape[1]
    raise ValueError(f"fit: {name} must be an (inputs, targets) pair of tensors, a tensor of clean images, or an "
                     f"iterable of batches of either (a DataLoader); got {type(data).__name__}")


def _is_pair(data: Any) -> bool:
    return isinstance(data, Sequence) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)


def check_model(model: torch.nn.Module) -> None:
    """fit trains in float32 (its data are cast to float32): refuse a model with other floating parameters."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes - {torch.float32}:
        shown = ", ".join(sorted(str(d).replace("torch.", "") for d in dtypes))
        raise ValueError(f"fit: the model's parameters are {shown}, but fit trains in float32 (the data are cast to "
                         f"float32): call model.float() first, or write your own loop with mfc.multiscale_loss")


def takes_cond(model: torch.nn.Module) -> bool:
    """Whether model.forward accepts a `cond` keyword (or any keyword)."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "cond" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def check_levels(levels: Any) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"fit: levels must be an int >= 1, got {levels!r}")
