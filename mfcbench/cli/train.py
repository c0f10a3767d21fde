"""`python -m mfcbench train --task T --dataset D --arch A --strategy S --seed K --config cfg.yaml --out DIR`.

Trains one cell (or resumes it); see mfcbench/runner.py and docs/architecture.md "Cell outputs".
"""

from __future__ import annotations

import argparse
import os
import sys

from ..runner import run_cell


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mfcbench train", description="Train one cell.")
    p.add_argument("--task", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--strategy", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help="YAML of training options (see mfcbench/config.py)")
    p.add_argument("--out", required=True, help="cell folder")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--force", action="store_true", help="rerun a finished cell from scratch")
    p.add_argument("--on-stale", choices=("error", "restart"), default="error",
                   help="a checkpoint from another config: stop (default) or start the cell afresh")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env_stop = os.environ.get("MFCBENCH_STOP_AFTER")
    try:
        run_cell(args.config, task=args.task, dataset=args.dataset, arch=args.arch, strategy=args.strategy,
                 seed=args.seed, out_dir=args.out, device=args.device, overrides=args.overrides,
                 force=args.force, on_stale=args.on_stale, stop_after=int(env_stop) if env_stop else None)
    except KeyboardInterrupt:
        print("mfcbench train: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for batch logs; MFCBENCH_DEBUG=1 for the trace
        if os.environ.get("MFCBENCH_DEBUG") == "1":
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"mfcbench train: error: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    return 0

