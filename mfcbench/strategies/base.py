"""The strategy interface: a strategy is a schedule of phases, each a list of independent draws.

Every strategy in the paper fits one shape. A `Phase` runs `iterations` optimizer steps; each step
draws one independent batch per `Draw` and evaluates it on one or two meshes:

- `Draw(n, (j,))`      adds  + l(batch at level j)                       (SGD, coarsest msgd term)
- `Draw(n, (j, j+1))`  adds  + l(batch at level j) - l(batch at level j+1)  (a telescoping term)

so Algorithm 1 is the draws [(N_0,(0,1)), (N_1,(1,2)), ..., (N_{L-1},(L-1,))] and one backward.
A step evaluates each mesh once: the parts of all draws on one mesh (the coarse half of draw j and
the fine half of draw j+1) are concatenated, run as one batch and split, and each part's loss is
the task's loss of that part alone (4 model calls for 4 levels, not 7). This is exact for per-sample
models; a model with batch statistics (training-mode BatchNorm) is run draw by draw.
The same phases price the schedule in closed form (`mfcbench.core.workunits.schedule_wu`), while the
`WorkCounter` counts what the forwards really processed: two routes that must agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..core.options import Option
from ..core.restrict import restrict
from ..core.workunits import WorkCounter, level_cost
from ..tasks.base import Batch, Task
from ._augment import build_augmentation
from .sampling import Sampler


@dataclass(frozen=True)
class Draw:
    batch: int
    levels: tuple[int, ...]  # (j,) -> +l_j ; (j, k) -> +l_j - l_k, same images
    fraction: Fraction = Fraction(1)  # input pixels before restriction / finest-mesh pixels (crops)


@dataclass(frozen=True)
class Phase:
    level: int  # finest mesh this phase touches (0 = finest)
    iterations: int
    draws: tuple[Draw, ...]

    @property
    def wu_per_iteration(self) -> Fraction:
        return sum((Fraction(d.batch) * d.fraction * sum(level_cost(j) for j in d.levels) for d in self.draws),
                   Fraction(0))

    @property
    def images_per_iteration(self) -> int:
        return sum(d.batch for d in self.draws)


@dataclass(frozen=True)
class Part:
    """One term of a step's loss: a draw's batch restricted to one of its meshes, with its sign."""

    sign: float
    level: int
    batch: Batch


def telescoping_draws(batches: list[int], first_level: int) -> tuple[Draw, ...]:
    """Algorithm 1 over meshes first_level .. first_level+len(batches)-1."""
    last = first_level + len(batches) - 1
    return tuple(Draw(n, (j,) if j == last else (j, j + 1)) for j, n in enumerate(batches, start=first_level))


class Strategy:
    """Base class: subclasses build `phases()`; the loss of a step is shared."""

    name = "strategy"
    phased = False  # True: iterations[i] runs at phase i (coarsest first); False: sum(iterations) steps
    options: dict[str, Option] = {}  # training options only this strategy reads (mfcbench.core.options)

    def __init__(self, config: dict[str, Any]):
        self.config = dict(config)
        self.levels = int(config["levels"])
        self.restriction = config.get("restriction", "pool")
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")
        if len(config["iterations"]) != self.levels:
            raise ValueError(f"iterations lists {len(config['iterations'])} values for {self.levels} levels")
        self.augmentation = build_augmentation(self.config)

    # --- schedule ------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        raise NotImplementedError

    @property
    def reset_optimizer(self) -> bool:
        """Reset optimizer state at each phase start (phased strategies, optimizer_state=reset)."""
        return self.phased and self.config.get("optimizer_state", "carry") == "reset"

    def phase_iterations(self) -> list[tuple[int, Any]]:
        """(level, iterations) per phase, coarsest first, zero-iteration phases dropped; every
        phase's iterations are multiplied by `budget_scale` (the budget-doubling variant: 2)."""
        scale = self.config.get("budget_scale", 1)
        its = [n if scale == 1 else round(n * scale) for n in self.config["iterations"]]
        if not self.phased:
            return [(0, sum(its))]
        return [(self.levels - 1 - i, n) for i, n in enumerate(its) if n]

    # --- one step ------------------------------------------------------------------------
    def prepare_images(self, images: torch.Tensor, sampler: Sampler) -> torch.Tensor:
        """Clean images before the task's corruption: the configured augmentation, if any."""
        if self.augmentation is None:
            return images
        return self.augmentation(images, sampler.generator("crops"))

    def step_parts(self, phase: Phase, sampler: Sampler) -> list[Part]:
        """The terms of one step, in the order the draws are taken: each draw's images are drawn
        (data, crops, then the task's corruption) and restricted to each of its meshes."""
        parts = []
        for draw in phase.draws:
            batch = sampler.batch(self.prepare_images(sampler.images(draw.batch), sampler))
            for sign, level in zip((1.0, -1.0), draw.levels):
                parts.append(Part(sign, level, restrict_batch(batch, level, self.restriction)))
        return parts

    def loss(self, model: torch.nn.Module, task: Task, phase: Phase, sampler: Sampler,
             counter: WorkCounter) -> torch.Tensor:
        """sum_parts sign * task.loss(part): one model call per mesh (`mesh_predictions`) when the
        model is per-sample (`per_sample_model`), else one call per part (draw by draw)."""
        parts = self.step_parts(phase, sampler)
        for part in parts:
            counter.add(part.batch.inputs)
        if per_sample_model(model):
            predictions = mesh_predictions(model, parts)
        else:
            predictions = [model(part.batch.inputs, cond=part.batch.cond) for part in parts]
        total: torch.Tensor | float = 0.0
        for part, prediction in zip(parts, predictions):
            total = total + part.sign * task.loss(prediction, part.batch)
        return total  # type: ignore[return-value]


def restrict_batch(batch: Batch, level: int, method: str = "pool") -> Batch:
    """A finest-mesh batch on mesh `level`: inputs and targets restricted alike, cond unchanged."""
    return Batch(restrict(batch.inputs, level, method), restrict(batch.targets, level, method), batch.cond)


def per_sample_model(model: torch.nn.Module) -> bool:
    """Whether a model's output for one image is independent of the rest of its batch, so that the
    parts of a step can share one call. False for a training-mode BatchNorm (its batch statistics
    would mix the parts: batched and draw-by-draw steps would differ) and for a model that sets
    `per_sample = False`; GroupNorm, LayerNorm and InstanceNorm are per-sample. Dropout is
    per-sample too, but its masks come from torch's global stream in another order, so a batched
    and a draw-by-draw step draw different masks."""
    explicit = getattr(model, "per_sample", None)
    if explicit is not None:
        return bool(explicit)
    return not any(isinstance(m, _BatchNorm) and m.training for m in model.modules())


def mesh_predictions(model: torch.nn.Module, parts: list[Part]) -> list[torch.Tensor]:
    """The model's prediction for every part, with one call per mesh: the parts on one mesh
    (same input shape) are concatenated in part order, run together and split back. Exact for
    a per-sample model: each part's loss is still taken on its own prediction alone."""
    groups: dict[tuple, list[int]] = {}
    for i, part in enumerate(parts):
        groups.setdefault((tuple(part.batch.inputs.shape[1:]), part.batch.cond is None), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(parts)
    for members in groups.values():
        batches = [parts[i].batch for i in members]
        if len(members) == 1:
            out[members[0]] = model(batches[0].inputs, cond=batches[0].cond)
            continue
        cond = None if batches[0].cond is None else torch.cat([b.cond for b in batches])
        joint = model(torch.cat([b.inputs for b in batches]), cond=cond)
        for i, prediction in zip(members, joint.split([len(b) for b in batches])):
            out[i] = prediction
    return out  # type: ignore[return-value]
