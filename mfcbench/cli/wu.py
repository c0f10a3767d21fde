"""`python -m mfcbench wu --strategy msgd --levels 4 --batch 4 --iterations 8000`: closed-form #WU (App. C).

Prints 74000 for that line (sgd 480000, fmsgd 28750); `--out` also writes the rows as CSV.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction

from ..strategies import closed_form, strategy_names
from ._args import positive_float, positive_int


def _format_number(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):.4f}".rstrip("0").rstrip(".")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfcbench wu", description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="all", help=f"one of {', '.join(strategy_names())}, or all")
    parser.add_argument("--levels", type=positive_int, default=4)
    parser.add_argument("--batch", type=positive_int, default=4, help="N0, the finest-level batch")
    parser.add_argument("--iterations", default="8000",
                        help="I (App. C), or a comma list of per-level iterations coarse -> fine")
    parser.add_argument("--growth", type=positive_float, default=2, help="batch growth per coarser level")
    parser.add_argument("--phase-growth", type=positive_float, default=2, help="fmsgd phase batch growth")
    parser.add_argument("--out", help="also write the rows as CSV (strategy, wu_closed_form, coefficient, ...)")
    args = parser.parse_args(argv)
    try:
        its: int | list[int] = [int(v) for v in args.iterations.split(",")] if "," in args.iterations else int(args.iterations)
        if min([its] if isinstance(its, int) else its) < 0 or (its if isinstance(its, int) else sum(its)) < 1:
            raise ValueError(f"--iterations must be non-negative and not all zero, got {args.iterations}")
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

    from ..core.atomic import write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())

