"""`python -m mfcbench experiment {discrepancy,kernels,lemma4} --out FILE.csv`: a standalone experiment.

- discrepancy: Tables 1-2, the gradient discrepancy of Example 1 (`--conv standard` is Table 1,
  `--conv mfc` Table 2); options as a JSON/YAML mapping (`--options '{"norm": "plain"}'`).
- kernels: Figure 3's MFC impulse responses.  - lemma4: Lemma 4's least-squares fits.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from ..atomic import write_csv
from ..experiments.discrepancy import LOSSES, run_discrepancy
from ..experiments.kernels import figure3_kernels
from ..experiments.lemma4 import lemma4_residuals
from ..manifest import git_state, versions
from ._args import non_negative_int, positive_float, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", required=True)
    disc = sub.add_parser("discrepancy", help="Tables 1-2: gradient discrepancy across meshes (Example 1)")
    disc.add_argument("--conv", choices=(*LOSSES, "all"), default="all", help="standard (Table 1), mfc (Table 2)")
    disc.add_argument("--seed", type=non_negative_int, default=0, help="seeds the noisy draws")
    disc.add_argument("--options", default="{}", help="mapping of options (YAML/JSON), see experiments/discrepancy.py")
    kernels = sub.add_parser("kernels", help="Figure 3: MFC impulse responses for the caption's sweeps")
    kernels.add_argument("--size", type=positive_int, default=64)
    kernels.add_argument("--panels", type=positive_int, default=5)
    kernels.add_argument("--tau-scale", type=positive_float, default=1 / 256)
    lemma = sub.add_parser("lemma4", help="Lemma 4: least-squares fit of random 3x3 convolutions by MFCs")
    lemma.add_argument("--size", type=positive_int, default=16)
    lemma.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    for p in (disc, kernels, lemma):
        p.add_argument("--out", required=True, help="CSV file to write (atomically)")
    return parser


def discrepancy_frame(conv: str, seed: int, options: dict):
    """The tidy rows of Table 1 (conv standard) or 2 (mfc), with the provenance a report shows."""
    import pandas as pd

    result = run_discrepancy(options, seed)
    rows = [r for r in result["rows"] if conv in ("all", r["conv"])]
    commit, dirty = git_state()
    extra = {"experiment": "discrepancy", "seed": seed, "status": "ok", "dataset": "synthetic",
             "git_commit": commit, "git_dirty": dirty, "torch_version": versions().get("torch"),
             "options": yaml.safe_dump(result["options"], default_flow_style=True, width=10**6).strip()}
    return pd.DataFrame([{**row, **extra} for row in rows])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.name == "discrepancy":
            options = yaml.safe_load(args.options) or {}
            if not isinstance(options, dict):
                raise ValueError(f"--options must be a mapping, got {args.options!r}")
            frame = discrepancy_frame(args.conv, args.seed, options)
        elif args.name == "kernels":
            frame = figure3_kernels(size=args.size, panels=args.panels, tau_scale=args.tau_scale)
        else:
            frame = lemma4_residuals(seeds=args.seeds, size=args.size)
            print(frame.groupby(["family", "m"])["residual"].agg(["min", "max"]).to_string())
    except (ValueError, yaml.YAMLError) as exc:
        print(f"mfcbench experiment {args.name}: error: {exc}", file=sys.stderr)
        return 2
    write_csv(args.out, frame)
    print(f"wrote {len(frame)} rows to {args.out}")
    return 0
