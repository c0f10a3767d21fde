"""`python -m mfcbench publish --profile P [NAME ...]`: replace the committed snapshot reports/published/P/ whole
by what the last run built in reports/, verified byte for byte, with its SHA256SUMS (`snakemake publish --cores
all [--configfile P]` runs this with every report of the profile); a failure or Ctrl-C leaves the old snapshot
as it was. After the swap it rebuilds the verdict page (reports/published/VERDICTS.md and verdicts.csv, from
every snapshot, where the root holds a readable one: `python -m mfcbench report verdicts` does it alone).
`--check`: write nothing, name every difference (exit 1): a file missing from the snapshot or from reports/,
differing, edited since it was published, or not published; a subfolder; a verdict page that disagrees with the
snapshots."""

from __future__ import annotations

import argparse
import sys

from ..report import verdicts
from ..report.snapshot import SnapshotError, SwapError, differences, expected_names, publish, published_dir
from ..train.manifest import training_code


def snakemake_publish(profile: str) -> str:
    """The command that publishes `profile`'s snapshot: the target comes before `--configfile`, which
    would otherwise swallow it as a second config file."""
    if profile == "default":
        return "snakemake publish --cores all"
    return f"snakemake publish --cores all --configfile workflow/config/{profile}.yaml"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mfcbench publish", description=__doc__)
    p.add_argument("names", nargs="*",
                   help="report file names to publish (default: those the snapshot's SHA256SUMS lists)")
    p.add_argument("--profile", required=True, help="profile name: the snapshot is reports/published/<profile>/")
    p.add_argument("--reports-dir", default="reports", help="where the last run wrote its reports")
    p.add_argument("--published-root", default="reports/published", help="folder holding one snapshot per profile")
    p.add_argument("--check", action="store_true", help="compare only, both ways: name every difference, exit 1 if any")
    args = p.parse_args(argv)
    snapshot = published_dir(args.profile, args.published_root)
    if args.check:
        bad = differences(args.reports_dir, snapshot, args.names)
        if verdicts.has_snapshots(args.published_root):
            bad += verdicts.differences(args.published_root, training_code())
        for line in bad:
            print(f"mfcbench publish --check: {line}", file=sys.stderr)
        if bad:
            print(f"mfcbench publish --check: {len(bad)} difference(s) between {snapshot} and {args.reports_dir}; "
                  f"publish again ({snakemake_publish(args.profile)}) or restore them with git", file=sys.stderr)
            return 1
        print(f"{snapshot} matches {args.reports_dir}")
        return 0
    names = expected_names(snapshot, args.names) or (  # a snapshot published before SHA256SUMS: the files it holds
        sorted(q.name for q in snapshot.iterdir() if q.is_file()) if snapshot.is_dir() else [])
    if not names:
        print(f"mfcbench publish: nothing to publish: name the files, or run `{snakemake_publish(args.profile)}`",
              file=sys.stderr)
        return 2
    try:
        written = publish(args.reports_dir, snapshot, names)
    except SwapError as exc:
        print(f"mfcbench publish: {exc}", file=sys.stderr)
        return 1
    except (SnapshotError, OSError) as exc:
        print(f"mfcbench publish: {exc}; {snapshot} is unchanged", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mfcbench publish: interrupted; {snapshot} is unchanged", file=sys.stderr)
        return 130
    print(f"published {len(written)} files from {args.reports_dir} to {snapshot}, verified byte for byte")
    return _rebuild_verdicts(args.published_root)


def _rebuild_verdicts(root: str) -> int:
    """The verdict page after a snapshot was swapped in, where the root holds one or a readable snapshot; a
    failure leaves the snapshot published and says so."""
    if not verdicts.has_snapshots(root):
        return 0
    try:
        for path in verdicts.write(root, training_code()):
            print(f"rebuilt {path}")
    except (OSError, ValueError, KeyError) as exc:
        print(f"mfcbench publish: the snapshot is published, but the verdict page could not be rebuilt ({exc}); "
              f"run `{verdicts.REBUILD}`", file=sys.stderr)
        return 1
    return 0
