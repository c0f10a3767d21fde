"""Multiscale training on plain tensors: Algorithm 1's loss and Algorithm 2's schedule for any loop.

    for level, iterations, batch_sizes in fmsgd_schedule(levels=3, iterations=400, batch_size=4):
        for _ in range(iterations):
            x, y = next(batches(sum(batch_sizes)))          # any DataLoader, finest-mesh tensors
            with symbol_cache():                            # only helps full-mixing MFCs
                loss, wu = multiscale_loss(model, x, y, F.mse_loss, levels=3, first_level=level,
                                           batch_sizes=batch_sizes)
                loss.backward()
            optimizer.step(); optimizer.zero_grad()

Both are the harness's own definitions, not copies: the draws come from `telescoping_draws`, the
batches from `level_batches` / the `fmsgd` strategy's phases, the model calls from
`mesh_predictions` (one call per mesh), so `multiscale_loss` equals `Strategy.loss` on the same
images (tests/test_library.py checks value and gradient on every registered model).
"""

from __future__ import annotations

import warnings
import weakref
from fractions import Fraction
from typing import Callable, Iterator, Sequence

import torch
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ..core.restrict import RESTRICTIONS, restrict
from ..core.workunits import WorkCounter, level_batches
from ..core.workunits import fmsgd_schedule as _halving
from ..tasks.base import Batch
from .base import Part, mesh_predictions, per_sample_model, telescoping_draws

__all__ = ["fmsgd_schedule", "multiscale_loss", "split_batch"]

_WARNED: weakref.WeakSet = weakref.WeakSet()  # models already warned about (once per model, not per step)
ELEMENTWISE_LOSSES = (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss)  # prediction and target shapes match


def batch_statistics_warning(model: torch.nn.Module, where: str) -> str | None:
    """The one-line warning for a model with training-mode BatchNorm (None without one); `where` names the caller."""
    paths = [name or "<root>" for name, m in model.named_modules() if isinstance(m, _BatchNorm) and m.training]
    if not paths:
        return None
    shown = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    return (f"{where}: the model normalises with batch statistics (training-mode BatchNorm: {shown}), which differ "
            f"between the fine and the coarse term of a multiscale step, so fine - coarse no longer cancels; the step "
            f"therefore runs the model once per term instead of once per mesh (same loss, slower). Use GroupNorm, "
            f"or put the BatchNorm layers in eval mode")


def warn_batch_statistics(model: torch.nn.Module, where: str, stacklevel: int = 3) -> None:
    """Warn (UserWarning, once per model) when `model` has training-mode BatchNorm."""
    if model in _WARNED:
        return
    message = batch_statistics_warning(model, where)
    if message:
        _WARNED.add(model)
        warnings.warn(message, UserWarning, stacklevel=stacklevel)


def check_prediction(prediction: torch.Tensor, target: torch.Tensor, where: str) -> None:
    """Refuse a prediction whose shape is not its target's (an elementwise loss would broadcast them)."""
    if prediction.shape != target.shape:
        raise ValueError(f"{where}: the model's prediction has shape {tuple(prediction.shape)} but the target has shape "
                         f"{tuple(target.shape)}; make the model output the target's channels and mesh")


def split_batch(total: int, terms: int, growth: float = 2) -> list[int]:
    """How `multiscale_loss` splits a batch of `total` images over `terms` telescoping terms by default.

    total: images in the batch; terms: telescoping terms (levels - first_level); growth: batch growth
    per coarser level. The split is App. C's N_j = N0 * growth**j (finest first; `level_batches`)
    with the largest N0 that fits, and the images left over go to the coarsest term (the cheapest).
    E.g. 32 images over 4 terms: [2, 4, 8, 18]. Raises ValueError when total < sum(growth**j).
    """
    if terms < 1:
        raise ValueError(f"terms must be >= 1, got {terms}")
    unit = sum(Fraction(growth) ** j for j in range(terms))
    n0 = int(Fraction(total) / unit)
    if n0 < 1:
        raise ValueError(f"a batch of {total} images cannot feed {terms} telescoping terms with growth {growth}: "
                         f"it needs at least {float(unit):g} images (or pass batch_sizes)")
    sizes = level_batches({"levels": terms, "batch_size": n0, "batch_growth": growth})
    sizes[-1] += total - sum(sizes)
    return sizes


def _check_sizes(inputs: torch.Tensor, targets: torch.Tensor, levels: int, first_level: int,
                 restriction: str) -> None:
    if inputs.dim() != 4:
        raise ValueError(f"multiscale_loss: inputs must be (B, C, H, W), got shape {tuple(inputs.shape)}")
    if targets.shape[0] != inputs.shape[0]:
        raise ValueError(f"multiscale_loss: {inputs.shape[0]} inputs but {targets.shape[0]} targets")
    if levels < 1:
        raise ValueError(f"multiscale_loss: levels must be >= 1, got {levels}")
    if not 0 <= first_level < levels:
        raise ValueError(f"multiscale_loss: first_level must be in 0..{levels - 1}, got {first_level}")
    factor = 2 ** (levels - 1)
    for name, tensor in (("inputs", inputs), ("targets", targets)):
        if tensor.dim() >= 3 and (tensor.shape[-2] % factor or tensor.shape[-1] % factor):
            raise ValueError(f"multiscale_loss: {name} are {tensor.shape[-2]}x{tensor.shape[-1]}, which {levels} "
                             f"levels cannot halve {levels - 1} times: use sizes divisible by {factor} or fewer levels")
    RESTRICTIONS.get(restriction)  # an unknown name lists the valid ones


def _plan(inputs, levels, first_level, batch_sizes, counter):
    """(batch sizes, counter) checked against the inputs."""
    terms = levels - first_level
    sizes = split_batch(len(inputs), terms) if batch_sizes is None else [int(n) for n in batch_sizes]
    if len(sizes) != terms or min(sizes) < 1 or sum(sizes) != len(inputs):
        raise ValueError(f"multiscale_loss: batch_sizes {sizes} must be {terms} positive sizes (levels {first_level}.."
                         f"{levels - 1}, finest first) summing to the batch of {len(inputs)}")
    pixels = inputs.shape[-2] * inputs.shape[-1]
    if counter is None:
        counter = WorkCounter(pixels)
    elif counter.reference_pixels != pixels:
        raise ValueError(f"multiscale_loss: the WorkCounter's reference_pixels {counter.reference_pixels} is not the "
                         f"finest-mesh input's {inputs.shape[-2]}x{inputs.shape[-1]} = {pixels}: build it as "
                         f"WorkCounter({pixels})")
    return sizes, counter


def multiscale_parts(inputs, targets, sizes: Sequence[int], first_level: int, restriction: str,
                     cond=None) -> list[Part]:
    """The telescoping terms of Algorithm 1 as `Part`s: consecutive slices of the batch, finest term first,
    each restricted to its meshes (the same images on the fine and the coarse mesh of a term)."""
    parts, start = [], 0
    for draw in telescoping_draws(list(sizes), first_level):
        rows = slice(start, start + draw.batch)
        start += draw.batch
        c = None if cond is None else cond[rows]
        for sign, level in zip((1.0, -1.0), draw.levels):
            parts.append(Part(sign, level, Batch(restrict(inputs[rows], level, restriction),
                                                 restrict(targets[rows], level, restriction), c)))
    return parts


def multiscale_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, levels: int = 4,
                    batch_sizes: Sequence[int] | None = None, restriction: str = "pool",
                    cond: torch.Tensor | None = None, counter: WorkCounter | None = None,
                    first_level: int = 0) -> tuple[torch.Tensor, float]:
    """Algorithm 1's multiscale estimate of the loss on one batch of finest-mesh tensors; returns
    (loss, executed #WU). Call `loss.backward()` once, as for any loss.

    model: any module mapping (B, C, H, W) -> predictions on the same mesh (or upscaled: targets are
        restricted alike); called as model(x), or model(x, cond=c) when `cond` is given.
    inputs, targets: (B, C, H, W) on the finest mesh; H and W divisible by 2**(levels-1).
    loss_fn: loss_fn(prediction, target) -> scalar, e.g. torch.nn.functional.mse_loss.
    levels: meshes 0 (the given one) .. levels-1 (2**(levels-1) times coarser).
    batch_sizes: how the batch is split: term j (finest first) uses the next batch_sizes[j] images,
        in order: sum_j [l(R_j x_j) - l(R_{j+1} x_j)] with x_j its own slice and the last term
        l(R_{L-1} x_{L-1}) alone. None = `split_batch(B, levels - first_level)`: N_j ~ 2**j (App. C).
    restriction: how a mesh is coarsened (`mfcbench.core.restrict`): "pool" (average pooling,
        default), "bilinear" or "nearest"; inputs and targets alike.
    cond: an optional per-image (B,) tensor passed through unrestricted (sliced with the batch).
    counter: a `WorkCounter(H*W)` to accumulate the executed #WU into (its reference must be the
        finest input mesh); None = a fresh one. Either way the step's #WU is returned.
    first_level: the finest mesh of this step (Full-Multiscale phases start coarse: see fmsgd_schedule).

    Every mesh is evaluated in one model call (the parts of all terms on a mesh are concatenated),
    unless the model has training-mode BatchNorm, whose batch statistics would mix them: such a model
    is run once per term and warned about (UserWarning, once per model). With an elementwise torch
    loss (mse, l1, smooth_l1, huber) a prediction whose shape is not the target's is refused. For
    full-mixing MFCs wrap forward and backward in `mfcbench.symbol_cache()`.
    """
    _check_sizes(inputs, targets, levels, first_level, restriction)
    sizes, counter = _plan(inputs, levels, first_level, batch_sizes, counter)
    if cond is not None and cond.shape[0] != inputs.shape[0]:
        raise ValueError(f"multiscale_loss: cond has {cond.shape[0]} entries for {inputs.shape[0]} images")
    parts = multiscale_parts(inputs, targets, sizes, first_level, restriction, cond)
    warn_batch_statistics(model, "multiscale_loss")
    before = counter.total
    for part in parts:
        counter.add(part.batch.inputs)

    def call(x, cond=None):
        return model(x) if cond is None else model(x, cond=cond)

    if per_sample_model(model):
        predictions = mesh_predictions(call, parts)
    else:
        predictions = [call(p.batch.inputs, cond=p.batch.cond) for p in parts]
    if loss_fn in ELEMENTWISE_LOSSES:
        check_prediction(predictions[0], parts[0].batch.targets, "multiscale_loss")
    total = sum((p.sign * loss_fn(pred, p.batch.targets) for p, pred in zip(parts, predictions)),
                torch.zeros((), device=inputs.device))
    return total, float(counter.total - before)


def fmsgd_schedule(levels: int = 4, iterations: int | Sequence[int] = 1000, batch_size: int = 4,
                   growth: float = 2, phase_growth: float = 2) -> Iterator[tuple[int, int, list[int]]]:
    """Full-Multiscale-SGD (Algorithm 2) for any loop: yields (level, iterations, batch_sizes) per phase,
    coarsest first, each phase running `multiscale_loss(..., first_level=level, batch_sizes=batch_sizes)`.

    levels: number of meshes; phase r trains on meshes r..levels-1, warm-started from phase r+1.
    iterations: an int I = App. C's steps on the coarsest mesh, halved per finer phase (I, I/2, ...,
        rounded, at least 1), or a list of per-phase steps, coarse -> fine (zeros skip a phase).
    batch_size: N0, the finest term's batch in the finest phase.
    growth: batch growth per coarser level inside a step (N_j = N0 * growth**j).
    phase_growth: the batch of phase r is scaled by phase_growth**r (App. C eq. 48).

    The phases are the `fmsgd` strategy's own (`FMSGD.phases()`); `wu_fmsgd` prices the int form.
    """
    from .fmsgd import FMSGD

    if levels < 1:
        raise ValueError(f"fmsgd_schedule: levels must be >= 1, got {levels}")
    if isinstance(iterations, int):
        its = [max(1, round(i)) for i in _halving(iterations, levels)]
    else:
        its = [int(i) for i in iterations]
    strategy = FMSGD({"levels": levels, "iterations": its, "batch_size": batch_size, "batch_growth": growth,
                      "phase_batch_growth": phase_growth})
    for phase in strategy.phases():
        yield phase.level, phase.iterations, [d.batch for d in phase.draws]
