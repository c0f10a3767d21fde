"""`python -m mfcbench train --task T --dataset D --arch A --strategy S --seed K --config cfg.yaml --out DIR`.

Trains one cell (or resumes it); see mfcbench/train/runner.py and docs/architecture.md "Cell outputs".
`--arch` also takes `package.module:function` (a builder of your own, mfcbench/models/__init__.py) and
`--dataset` a .pt tensor file or an image folder (mfcbench/data/tensors.py). Every name, the config and
the schedule are checked before the cell folder is created, so a refused start leaves nothing behind
(a model builder that fails, called once the data is open, takes back the folder and .lock it made).
`--list-options` prints every training option with its default and help.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time

from ..core.cell import Cell, CellFiles
from ..train.checkpoint import CellLockedError
from ..train.request import RunOptions, StaleCellError, resolve_cell
from ..train.runner import train_cell
from ._args import ChoicesHelpFormatter, non_negative_int, positive_int, with_choices

PR_SET_PDEATHSIG = 1


def die_with(watch_pid: int | None) -> None:
    """A training job must not outlive what started it: SIGTERM on the parent's death (Linux prctl),
    and, with --watch-pid (the pipeline passes Snakemake's PID), a watcher that ends this process
    when that PID is gone (a killed Snakemake leaves its job shells alive, so the parent alone is not enough)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if not watch_pid:
        return

    def watch() -> None:
        while True:
            try:
                os.kill(watch_pid, 0)
            except ProcessLookupError:
                print(f"mfcbench train: process {watch_pid} that started this job is gone; stopping",
                      file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except PermissionError:
                pass  # alive, another user's
            time.sleep(1.0)

    threading.Thread(target=watch, name="watch-pid", daemon=True).start()


def stop_on_sigterm() -> None:
    """SIGTERM (Snakemake cancelling its jobs, a batch system, the --watch-pid watcher) stops training
    as Ctrl-C does: at once, keeping the last checkpoint, exit 130 (a resume continues from it)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def require_prepared(cell: Cell) -> None:
    """--require-prepared (the pipeline): refuse to build an unprepared dataset in memory (it would
    ignore the profile's prepare_options, e.g. its limits); name the command that prepares it."""
    from ..data import prepared_dir
    from ..data.store import is_prepared
    from ..data.tensors import is_path_name

    cfg = cell.config
    directory = prepared_dir(cfg["data_root"], cell.dataset, cfg["image_size"])
    if is_path_name(cell.dataset) and not directory.exists():
        return  # your own file, read as it is (nothing to prepare)
    if not is_prepared(directory):
        raise FileNotFoundError(
            f"{directory} is missing or incomplete: the dataset is not prepared (train would build the whole "
            f"split in memory, ignoring the profile's prepare_options); run snakemake (it prepares it first) or "
            f"python -m mfcbench prepare --dataset {cell.dataset} --image-size {cfg['image_size']} --root {cfg['data_root']}")


def _names(module: str, function: str):
    """A registry's names, imported only when --help is printed (building the parser builds nothing)."""
    def names() -> list[str]:
        import importlib

        return getattr(importlib.import_module(f"mfcbench.{module}"), function)()

    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mfcbench train", description="Train one cell.",
                                formatter_class=ChoicesHelpFormatter)
    with_choices(p.add_argument("--task", help="registered task"), _names("tasks", "task_names"))
    with_choices(p.add_argument("--dataset", help="registered dataset, a name prepared with `prepare --path`, or a "
                                                  ".pt tensor file / image folder of your own"),
                 _names("data", "dataset_names"))
    with_choices(p.add_argument("--arch", help="registered model (`mfc.register_model`, entry points "
                                               "`mfcbench.models`) or package.module:function of your own"),
                 _names("models", "model_names"))
    with_choices(p.add_argument("--strategy", help="training strategy"), _names("strategies", "strategy_names"))
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--config", help="YAML of training options: `--list-options` prints them with defaults and help; "
                                    "docs/library.md; the profile schema mfcbench/pipeline/config.schema.yaml, $defs/training")
    p.add_argument("--out", help="cell folder")
    p.add_argument("--list-options", action="store_true", help="print every training option, its default and help, and exit")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--force", action="store_true", help="rerun a finished cell from scratch")
    p.add_argument("--on-stale", choices=("error", "restart"), default="error",
                   help="a checkpoint from another config: stop (default) or start the cell afresh")
    p.add_argument("--watch-pid", type=positive_int, default=None,
                   help="stop when this process is gone (the pipeline passes Snakemake's PID)")
    p.add_argument("--require-prepared", action="store_true",
                   help="refuse a dataset that is not prepared under data_root (never build it in memory)")
    p.add_argument("--record-failure", action="store_true",
                   help="on an error, write metrics.json with status 'failed' and the error, and exit 0 "
                        "(the pipeline: the report then names the failed cell)")
    return p


def options_text() -> str:
    """Every training option (the runner's and each strategy's), its default and its help."""
    import json

    from ..train.config import all_options

    lines = []
    for name, option in all_options().items():
        lines.append(f"{name} = {json.dumps(option.default)}")
        lines.append(f"    {option.help}" if option.help else "    (no help)")
    lines.append("Set them in --config's YAML or with --set KEY=VALUE (values are YAML).")
    return "\n".join(lines)


def preflight(cell: Cell) -> tuple:
    """Everything a start can be refused for, checked before the cell folder (and its .lock) exists:
    the task, strategy and schedule (returned: the run uses them), the model name and the dataset.
    The config was checked when it was resolved."""
    from ..data import check_dataset
    from ..models import MODELS
    from ..train.cell import task_and_strategy

    parts = task_and_strategy(cell)
    MODELS.get(cell.arch)
    check_dataset(cell.dataset, cell.config["image_size"], cell.config["data_root"])
    return parts


def record_failure(cell: Cell, out: str, exc: BaseException) -> None:
    """metrics.json of a cell that could not train: its identity, status 'failed' and the error."""
    from ..core.cell import failure_record, write_metrics
    from ..train.manifest import now

    write_metrics(out, failure_record(cell, exc, now()))


def check_device(device: str) -> None:
    """--device cuda on a machine where torch sees no CUDA: refused in the command line's words."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available; valid choices here: auto, cpu")


def train(cell: Cell, args: argparse.Namespace) -> None:
    """Resolve the cell's config once, check what a start can be refused for, then train it."""
    env_stop = os.environ.get("MFCBENCH_STOP_AFTER")
    check_device(args.device)
    cell, source = resolve_cell(cell, args.config, args.overrides)
    parts = preflight(cell)
    if args.require_prepared:
        require_prepared(cell)
    options = RunOptions(device=args.device, force=args.force, on_stale=args.on_stale,
                         stop_after=int(env_stop) if env_stop else None)
    train_cell(cell, args.out, options, source=source, parts=parts)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.list_options:
        missing = [f"--{k}" for k in ("task", "dataset", "arch", "strategy", "out") if getattr(args, k) is None]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list_options:
        print(options_text())
        return 0
    stop_on_sigterm()
    die_with(args.watch_pid)
    cell = Cell(task=args.task, dataset=args.dataset, arch=args.arch, strategy=args.strategy, seed=args.seed)
    try:
        train(cell, args)
    except KeyboardInterrupt:
        print("mfcbench train: interrupted", file=sys.stderr)
        return 130
    except (CellLockedError, StaleCellError) as exc:  # another runner's cell, or a result no config owns
        print(f"mfcbench train: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for batch logs; MFCBENCH_DEBUG=1 for the trace
        if os.environ.get("MFCBENCH_DEBUG") == "1":
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"mfcbench train: error: {type(exc).__name__}: {reason}", file=sys.stderr)
        if args.record_failure:
            try:
                record_failure(cell, args.out, exc)
            except OSError as error:  # read-only or full folder: one line, not a chained traceback
                print(f"mfcbench train: could not record the failure in {CellFiles(args.out).metrics} "
                      f"({error.strerror or error}); make {args.out} writable or free space there, and rerun",
                      file=sys.stderr)
                return 1
            print(f"mfcbench train: recorded the failure in {CellFiles(args.out).metrics}", file=sys.stderr)
            return 0
        return 2 if isinstance(exc, ValueError) else 1
    return 0

