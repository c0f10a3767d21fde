"""`python -m mfcbench bench [--device cuda] [--quick]`: the performance benchmark -> reports/bench.csv.

Run as a program it gets the tuned glibc allocator settings like every mfcbench command
(mfcbench.cli.MALLOC_ENV); `MFCBENCH_REEXEC=0` with those variables unset measures glibc's defaults.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from ..measure import suites
from ..measure.bench import COMPARISONS
from ..measure.bench_rows import Bench
from ..measure.timing import device_available, not_measured
from ._args import positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="small sizes and short timings (smoke test)")
    parser.add_argument("--out", default="reports/bench.csv")
    parser.add_argument("--threads", type=positive_int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--only", default=",".join(COMPARISONS),
                        help=f"comma-separated comparisons (default all: {', '.join(COMPARISONS)})")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    chosen = [c for c in args.only.split(",") if c]
    unknown = [c for c in chosen if c not in COMPARISONS]
    if unknown:
        raise ValueError(f"unknown comparison(s) {unknown}; valid choices: {', '.join(COMPARISONS)}")
    torch.manual_seed(0)
    bench = Bench(args.device, args.threads, args.quick)
    started = time.perf_counter()
    for name in chosen:
        if device_available(args.device):
            COMPARISONS[name](bench)
        else:  # one honest row per comparison; a CPU number never stands in for the GPU
            bench.add(name, f"all rows on {args.device}", not_measured(args.device))
    suites.write_rows(args.out, bench.rows)
    print(f"[bench] {len(bench.rows)} rows in {time.perf_counter() - started:.0f} s -> {args.out}", file=sys.stderr)
    return 0

