"""Work units (#WU, paper Section 5 and App. C): one model application to one finest-mesh image.

A level-j image costs 4**-j. Two independent routes, so each checks the other:
- closed forms (exact `Fraction`s): App. C's formulas, general in levels L, N0 and batch growth,
  and `schedule_wu`, the sum of per-iteration costs of any strategy's phase schedule;
- `WorkCounter`: what the strategy's forwards actually processed, counted from tensor shapes.

`python -m mfcbench wu --strategy msgd --levels 4 --batch 4 --iterations 8000` prints 74000
(`mfcbench.strategies.closed_form` prices any registered strategy's schedule).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

Number = int | Fraction


def level_cost(level: int) -> Fraction:
    """Cost of one image at level j relative to the finest mesh: 4**-j."""
    return Fraction(1, 4**level)


def _batches(n0: Number, levels: int, growth: Number) -> list[Fraction]:
    return [Fraction(n0) * Fraction(growth) ** j for j in range(levels)]


def level_batches(config: Mapping[str, Any]) -> list[int]:
    """N_j, finest first: the explicit `level_batches` list or N0 * batch_growth**j (rounded)."""
    if config.get("level_batches"):
        return [int(b) for b in config["level_batches"]]
    n0, growth = config["batch_size"], config["batch_growth"]
    out = [round(Fraction(n0) * Fraction(growth) ** j) for j in range(config["levels"])]
    if min(out) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {out}")
    return out


def phase_batches(config: Mapping[str, Any], level: int) -> list[int]:
    """Batches of the Full-Multiscale phase whose finest mesh is `level`: N_k * phase_batch_growth**level
    for k = 0..L-1-level (App. C eq. 48)."""
    growth = Fraction(config.get("phase_batch_growth", 2)) ** level
    return [max(1, round(n * growth)) for n in level_batches(config)[: config["levels"] - level]]


def single_scale_batch(config: Mapping[str, Any]) -> int:
    """SGD's batch: `sgd_batch`, or "matched" (the default) = the sum of the level batches (App. C)."""
    value = config.get("sgd_batch", "matched")
    return sum(level_batches(config)) if value == "matched" else int(value)


def msgd_step_wu(batches: Sequence[Number], first_level: int = 0) -> Fraction:
    """One Algorithm-1 step over meshes first_level.. with batches N_j (eq. 39): each batch but the
    coarsest is evaluated on its own mesh and the next coarser one; the coarsest only on its own."""
    total = Fraction(0)
    last = len(batches) - 1
    for k, n in enumerate(batches):
        j = first_level + k
        total += Fraction(n) * (level_cost(j) + (level_cost(j + 1) if k < last else 0))
    return total


def wu_sgd(n0: Number, iterations: Number, levels: int = 4, growth: Number = 2) -> Fraction:
    """App. C eq. 41: SGD on the finest mesh with the matched batch sum_j N_j (15 N0 I for L=4).

    n0: the finest-level batch N0; iterations: optimizer steps I; levels: L (the matched batch sums
    L level batches); growth: batch growth per coarser level (N_j = N0 * growth**j)."""
    return sum(_batches(n0, levels, growth), Fraction(0)) * Fraction(iterations)


def wu_msgd(n0: Number, iterations: Number, levels: int = 4, growth: Number = 2) -> Fraction:
    """App. C eq. 40: Multiscale-SGD ((37/16) N0 I for L=4, growth 2).

    n0: the finest-level batch N0; iterations: optimizer steps I; levels: meshes L; growth: batch
    growth per coarser level (N_j = N0 * growth**j)."""
    return msgd_step_wu(_batches(n0, levels, growth)) * Fraction(iterations)


def fmsgd_schedule(iterations: Number, levels: int = 4, ratio: Number = 2) -> list[Fraction]:
    """App. C's schedule, coarse -> fine: I, I/2, I/4, ... (I = iterations on the coarsest mesh)."""
    return [Fraction(iterations) / Fraction(ratio) ** p for p in range(levels)]


def wu_fmsgd(n0: Number, iterations: Number, levels: int = 4, growth: Number = 2,
             phase_growth: Number = 2) -> Fraction:
    """App. C eqs. 42-48: Full-Multiscale-SGD ((115/128) N0 I for L=4, growths 2).

    n0: the finest-level batch N0 of the finest phase; iterations: steps I of the coarsest phase
    (halved per finer phase); levels: meshes L; growth: batch growth per coarser level inside a step;
    phase_growth: phase r's batches are scaled by phase_growth**r (eq. 48)."""
    total = Fraction(0)
    for p, its in zip(range(levels - 1, -1, -1), fmsgd_schedule(iterations, levels)):
        phase_n0 = Fraction(n0) * Fraction(phase_growth) ** p
        total += its * msgd_step_wu(_batches(phase_n0, levels - p, growth), first_level=p)
    return total


def schedule_wu(phases: Iterable) -> Fraction:
    """Closed form of any schedule: sum over phases of iterations * per-iteration cost.
    `phases` are `mfcbench.strategies.base.Phase`s (anything with iterations and wu_per_iteration)."""
    return sum((Fraction(p.iterations) * p.wu_per_iteration for p in phases), Fraction(0))


class WorkCounter:
    """The executed #WU: each forward adds batch * (input pixels / finest-mesh input pixels).

    `reference_pixels` is H*W of the model input on the finest mesh (for x2 SR the low-res input).
    `total` is a starting value (a resumed count). Validation forwards are not counted: strategies
    call `add` only for training forwards. `value` is the count as a float, `total` as a Fraction.
    """

    def __init__(self, reference_pixels: int, total: float = 0.0):
        if reference_pixels < 1:
            raise ValueError(f"reference_pixels must be positive, got {reference_pixels}")
        self.reference_pixels = int(reference_pixels)
        self.total = Fraction(total).limit_denominator(1 << 40) if total else Fraction(0)

    def add(self, inputs) -> None:
        batch, height, width = inputs.shape[0], inputs.shape[-2], inputs.shape[-1]
        self.total += Fraction(batch * height * width, self.reference_pixels)

    @property
    def value(self) -> float:
        return float(self.total)

    def state_dict(self) -> dict:
        return {"numerator": int(self.total.numerator), "denominator": int(self.total.denominator),
                "reference_pixels": self.reference_pixels}

    def load_state_dict(self, state: dict) -> None:
        self.reference_pixels = int(state["reference_pixels"])
        self.total = Fraction(int(state["numerator"]), int(state["denominator"]))
