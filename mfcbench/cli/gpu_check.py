"""`python -m mfcbench gpu-check [--reports DIR]`: the whole GPU check in one command (< 5 minutes).

1. the benchmark on CUDA (`bench --device cuda --quick`) -> <reports>/bench_cuda.csv
2. Table 15 and Figure 7 on CUDA (`measure table15|fig7 --device cuda --quick`) -> <reports>/table15_cuda.csv,
   <reports>/fig7_cuda.csv (timed with CUDA events after warm-up; rows name the device)
3. the GPU tests (`pytest -m gpu`)
Without a CUDA device every row says "not measured: no CUDA device" and the tests skip; the exit
code is that of the tests. Commit what it wrote, with the device named in the closing note.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from ..measure import suites
from ..measure.timing import device_available
from . import bench


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", default="reports", help="folder for bench_cuda.csv, table15_cuda.csv, fig7_cuda.csv")
    parser.add_argument("--no-tests", action="store_true", help="skip `pytest -m gpu`")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.reports)
    started = time.perf_counter()
    have = device_available("cuda")
    print(f"[gpu-check] CUDA device: {'yes' if have else 'none (rows will say not measured)'}", file=sys.stderr)
    bench.main(["--device", "cuda", "--quick", "--out", str(out / "bench_cuda.csv")])
    suites.write_rows(out / "table15_cuda.csv", suites.table15_rows(devices=("cuda",), quick=True))
    suites.write_rows(out / "fig7_cuda.csv", suites.fig7_rows("cuda", quick=True) if have else
                      [{"device": "cuda", "status": "not measured: no CUDA device"}])
    rc = 0
    if not args.no_tests:
        rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"],
                            check=False).returncode
        rc = 0 if rc == 5 else rc  # 5: no test collected
    print(f"[gpu-check] done in {time.perf_counter() - started:.0f} s -> {out}", file=sys.stderr)
    return rc
