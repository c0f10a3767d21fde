"""`python -m mfcbench prepare --dataset NAME --image-size N --root data [--limit-train K --limit-val K]
[--option KEY=VALUE ...]`: fetch raw files if needed and write the prepared tensors atomically."""

from __future__ import annotations

import argparse
import sys
import time

import yaml

from ..data import ArchiveError, DatasetNotPreparedError, ManualDownloadRequired, dataset_names, prepare
from ..data.store import read_checksum, read_meta
from ._args import positive_int


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)  # "64" -> 64, "false" -> False, "[a, b]" -> list


def build_parser() -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(prog="python -m mfcbench prepare", description=__doc__)
    p.add_argument("--dataset", required=True,
                   help=f"one of: {', '.join(dataset_names())}; or, with --path, a new name for your own images")
    p.add_argument("--path", default=None,
                   help="your own images: a .pt tensor file (N, C, H, W) in [0, 1] or {'train', 'val'}, or an image "
                        "folder (docs/library.md; -o val_fraction=0.1 sets the split of a single tensor)")
    p.add_argument("--image-size", type=positive_int, required=True, help="side of the square images/patches")
    p.add_argument("--root", default="data", help="data root (raw/ and prepared/ live under it)")
    p.add_argument("--limit-train", type=positive_int, default=None, help="keep the first K train images")
    p.add_argument("--limit-val", type=positive_int, default=None, help="keep the first K val images")
    p.add_argument("--option", "-o", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option (YAML value), repeatable; e.g. -o n_train=64")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        directory = prepare(args.dataset, args.image_size, args.root, limit_train=args.limit_train,
                            limit_val=args.limit_val, path=args.path, **dict(args.option))
    except (ManualDownloadRequired, ArchiveError, DatasetNotPreparedError, ValueError, FileNotFoundError) as exc:
        print(f"mfcbench prepare: {exc}", file=sys.stderr)
        return 1
    shapes = {s: tuple(v["shape"]) for s, v in read_meta(directory)["splits"].items()}
    print(f"prepared {args.dataset} at {args.image_size}: {directory} train {shapes['train']} val {shapes['val']} "
          f"sha256 {read_checksum(directory)} ({time.perf_counter() - started:.1f} s)")
    return 0

