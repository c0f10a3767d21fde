"""`python -m mfcbench measure <what> --out F.csv`: FLOP and timing tables as tidy CSV."""

from __future__ import annotations

import argparse

from ..measure import suites
from ..measure.flops import CONVENTION
from ..measure.timing import device_available
from ._args import positive_int

WHATS = {
    "table11": "FLOPs of Conv2d(32,32,k) vs the MFC 32->32 (both mixings), n in 32..256, k in 5..15",
    "flops-models": "FLOPs and parameters of every registered model at its table's resolution",
    "fig7": "forward time of one Conv2d (k in 3..13) vs one MFC, n in 32..512, 3 and 32 channels",
    "table15": "ms per training iteration: SGD (15 images) vs Multiscale-SGD (4 levels) at 256^2",
    "convention": "print the FLOP counting convention",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench measure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(f"  {k:<13} {v}" for k, v in WHATS.items()))
    parser.add_argument("what", choices=sorted(WHATS), help="which table to measure")
    parser.add_argument("--out", help="CSV to write (atomically); required except for 'convention'")
    parser.add_argument("--quick", action="store_true", help="timing: fewer sizes and repeats (smoke test)")
    parser.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"),
                        help="timing: auto (CUDA when present, else CPU), cpu or cuda (fig7 default cpu; table15 "
                             "default both, cuda rows say 'not measured: no CUDA device' without one)")
    parser.add_argument("--threads", type=positive_int, default=2, help="CPU threads for timing (default 2)")
    parser.add_argument("--models", default="resnet,mfc_resnet", help="table15: comma-separated model names")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if device_available("cuda") else "cpu"
    if args.what == "convention":
        print(CONVENTION)
        return 0
    if not args.out:
        raise SystemExit("measure: --out is required")
    if args.what == "table11":
        rows = suites.table11_rows()
    elif args.what == "flops-models":
        rows = suites.flops_models_rows()
    elif args.what == "fig7":
        rows = suites.fig7_rows(args.device or "cpu", args.threads, args.quick)
    else:
        devices = (args.device,) if args.device else ("cpu", "cuda")
        rows = suites.table15_rows(args.models.split(","), devices, threads=args.threads, quick=args.quick)
    suites.write_rows(args.out, rows)
    print(f"measure {args.what}: {len(rows)} rows -> {args.out}")
    return 0
