"""DVC `fetch@<dataset>` stage: make a dataset's raw files available under <root>/raw/<name>/.

Network datasets download (or say which file to place by hand); embedded ones need nothing, and
the stage records where their data comes from, so every dataset has the same two DVC stages.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--root", default="data")
    args = parser.parse_args(argv)

    from mfcbench.data import ArchiveError, ManualDownloadRequired, dataset_names, get_dataset
    from mfcbench.core.atomic import write_text

    if args.dataset not in dataset_names():  # your own images: prepare reads prepare_options.path
        write_text(Path(args.root) / "raw" / args.dataset / "SOURCE.txt",
                   f"{args.dataset}: your own files (the profile's prepare_options.path); nothing to download\n")
        return 0
    try:
        dataset = get_dataset(args.dataset)
        raw = Path(args.root) / "raw" / args.dataset
        if dataset.embedded:
            write_text(raw / "SOURCE.txt", f"{args.dataset}: embedded in an installed package; nothing to download\n")
        else:
            dataset.fetch(Path(args.root), dataset.resolve({}))
            write_text(raw / "SOURCE.txt", f"{args.dataset}: fetched into {raw}\n")
    except (ManualDownloadRequired, ArchiveError, ValueError) as exc:
        print(f"fetch {args.dataset}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
