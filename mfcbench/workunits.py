"""Work units (#WU, paper Section 5 and App. C): one model application to one finest-mesh image.

A level-j image costs 4**-j. Two independent routes, so each checks the other:
- closed forms (exact `Fraction`s): App. C's formulas, general in levels L, N0 and batch growth,
  and `schedule_wu`, the sum of per-iteration costs of any strategy's phase schedule;
- `WorkCounter`: what the strategy's forwards actually processed, counted from tensor shapes.

`python -m mfcbench wu --strategy msgd --levels 4 --batch 4 --iterations 8000` prints 74000.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from typing import Iterable, Sequence

Number = int | Fraction


def level_cost(level: int) -> Fraction:
    """Cost of one image at level j relative to the finest mesh: 4**-j."""
    return Fraction(1, 4**level)


def _batches(n0: Number, levels: int, growth: Number) -> list[Fraction]:
    return [Fraction(n0) * Fraction(growth) ** j for j in range(levels)]


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
    """App. C eq. 41: SGD on the finest mesh with the matched batch sum_j N_j (15 N0 I for L=4)."""
    return sum(_batches(n0, levels, growth), Fraction(0)) * Fraction(iterations)


def wu_msgd(n0: Number, iterations: Number, levels: int = 4, growth: Number = 2) -> Fraction:
    """App. C eq. 40: Multiscale-SGD ((37/16) N0 I for L=4, growth 2)."""
    return msgd_step_wu(_batches(n0, levels, growth)) * Fraction(iterations)


def fmsgd_schedule(iterations: Number, levels: int = 4, ratio: Number = 2) -> list[Fraction]:
    """App. C's schedule, coarse -> fine: I, I/2, I/4, ... (I = iterations on the coarsest mesh)."""
    return [Fraction(iterations) / Fraction(ratio) ** p for p in range(levels)]


def wu_fmsgd(n0: Number, iterations: Number, levels: int = 4, growth: Number = 2,
             phase_growth: Number = 2) -> Fraction:
    """App. C eqs. 42-48: Full-Multiscale-SGD ((115/128) N0 I for L=4, growths 2)."""
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
    Validation forwards are not counted: strategies call `add` only for training forwards.
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


# --- CLI ---------------------------------------------------------------------------------------
PAPER_FORMS = {"sgd": wu_sgd, "msgd": wu_msgd}


def closed_form(strategy: str, n0: int, iterations: int | Sequence[int], levels: int,
                growth: Number = 2, phase_growth: Number = 2, **extra) -> Fraction:
    """Closed-form #WU of a strategy. An int `iterations` is App. C's I (total steps for sgd/msgd/
    crops; coarsest-phase steps for fmsgd/progressive, halved per finer phase); a list is the exact
    per-level schedule, coarse -> fine, priced through the strategy's own phases."""
    from .strategies import build_strategy, strategy_names

    if strategy not in strategy_names():
        raise ValueError(f"unknown strategy {strategy!r}; valid choices: {', '.join(strategy_names())}")
    if isinstance(iterations, int):
        if strategy == "fmsgd" and not extra:
            return wu_fmsgd(n0, iterations, levels, growth, phase_growth)
        if strategy in PAPER_FORMS and not extra:
            return PAPER_FORMS[strategy](n0, iterations, levels, growth)
        from .strategies import STRATEGIES

        phased = STRATEGIES.get(strategy).phased
        schedule = fmsgd_schedule(iterations, levels) if phased else [Fraction(iterations)] + [0] * (levels - 1)
    else:
        schedule = [Fraction(i) for i in iterations]
    config = {"levels": levels, "batch_size": n0, "batch_growth": growth, "phase_batch_growth": phase_growth,
              "iterations": schedule, "level_batches": None, "sgd_batch": "matched", "restriction": "pool",
              "optimizer_state": "carry", **extra}
    return schedule_wu(build_strategy(strategy, config).phases())


def _format_number(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):.4f}".rstrip("0").rstrip(".")


def main(argv: list[str] | None = None) -> int:
    from .strategies import strategy_names

    parser = argparse.ArgumentParser(prog="python -m mfcbench wu", description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="all", help=f"one of {', '.join(strategy_names())}, or all")
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4, help="N0, the finest-level batch")
    parser.add_argument("--iterations", default="8000",
                        help="I (App. C), or a comma list of per-level iterations coarse -> fine")
    parser.add_argument("--growth", type=float, default=2, help="batch growth per coarser level")
    parser.add_argument("--phase-growth", type=float, default=2, help="fmsgd phase batch growth")
    parser.add_argument("--out", help="also write the rows as CSV (strategy, wu_closed_form, coefficient, ...)")
    args = parser.parse_args(argv)
    try:
        its: int | list[int] = [int(v) for v in args.iterations.split(",")] if "," in args.iterations else int(args.iterations)
        if args.levels < 1 or args.batch < 1:
            raise ValueError("--levels and --batch must be >= 1")
        if isinstance(its, list) and len(its) != args.levels:
            raise ValueError(f"--iterations lists {len(its)} values for {args.levels} levels")
        growth = Fraction(args.growth).limit_denominator(1000)
        phase_growth = Fraction(args.phase_growth).limit_denominator(1000)
        names = strategy_names() if args.strategy == "all" else [args.strategy]
        rows = [(name, closed_form(name, args.batch, its, args.levels, growth, phase_growth)) for name in names]
    except ValueError as exc:
        print(f"mfcbench wu: error: {exc}", file=sys.stderr)
        return 2
    scale = args.batch * (its if isinstance(its, int) else sum(its))
    header = ("strategy", "levels", "N0", "iterations", "#WU", "#WU / (N0*I)")
    table = [header] + [
        (name, str(args.levels), str(args.batch), args.iterations, _format_number(wu),
         str(wu / scale) if (wu / scale).denominator < 10**4 else f"{float(wu / scale):.4f}")
        for name, wu in rows
    ]
    if args.out:
        _write_csv(args.out, [{"strategy": name, "levels": args.levels, "n0": args.batch, "iterations": args.iterations,
                               "wu_closed_form": float(wu), "coefficient": float(wu / scale), "exact": str(wu / scale)}
                              for name, wu in rows])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return 0


def _write_csv(path: str, rows: list[dict]) -> None:
    import csv
    import io

    from .io import write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


if __name__ == "__main__":
    sys.exit(main())
