"""`python -m mfcbench experiment {kernels,lemma4} --out FILE.csv`: run a small experiment, write a tidy CSV."""

from __future__ import annotations

import argparse

from ..io import write_csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mfcbench experiment", description=__doc__)
    sub = parser.add_subparsers(dest="name", required=True)
    kernels = sub.add_parser("kernels", help="Figure 3: MFC impulse responses for the caption's sweeps")
    kernels.add_argument("--size", type=int, default=64)
    kernels.add_argument("--panels", type=int, default=5)
    kernels.add_argument("--tau-scale", type=float, default=1 / 256)
    lemma = sub.add_parser("lemma4", help="Lemma 4: least-squares fit of random 3x3 convolutions by MFCs")
    lemma.add_argument("--size", type=int, default=16)
    lemma.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    for p in (kernels, lemma):
        p.add_argument("--out", required=True, help="CSV file to write (atomically)")
    args = parser.parse_args(argv)
    if args.name == "kernels":
        from .kernels import figure3_kernels

        frame = figure3_kernels(size=args.size, panels=args.panels, tau_scale=args.tau_scale)
    else:
        from .lemma4 import lemma4_residuals

        frame = lemma4_residuals(seeds=args.seeds, size=args.size)
        print(frame.groupby(["family", "m"])["residual"].agg(["min", "max"]).to_string())
    write_csv(args.out, frame)
    print(f"wrote {len(frame)} rows to {args.out}")
    return 0
