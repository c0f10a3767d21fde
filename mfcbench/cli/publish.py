"""`python -m mfcbench publish --profile P [NAME ...]`: copy what the last run built in reports/ into the
committed snapshot reports/published/P/ and verify it byte for byte (`snakemake publish --cores all
[--configfile P]` runs this with every report of the profile). `--check`: write nothing, name every snapshot file that
differs from reports/ (exit 1), e.g. a hand-edited claims.csv."""

from __future__ import annotations

import argparse
import sys

from ..report.snapshot import SnapshotError, differences, publish, published_dir


def snakemake_publish(profile: str) -> str:
    """The command that publishes `profile`'s snapshot: the target comes before `--configfile`, which
    would otherwise swallow it as a second config file."""
    if profile == "default":
        return "snakemake publish --cores all"
    return f"snakemake publish --cores all --configfile workflow/config/{profile}.yaml"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mfcbench publish", description=__doc__)
    p.add_argument("names", nargs="*", help="report file names to publish (default: those already in the snapshot)")
    p.add_argument("--profile", required=True, help="profile name: the snapshot is reports/published/<profile>/")
    p.add_argument("--reports-dir", default="reports", help="where the last run wrote its reports")
    p.add_argument("--published-root", default="reports/published", help="folder holding one snapshot per profile")
    p.add_argument("--check", action="store_true", help="compare only: name differing files, exit 1 if any")
    args = p.parse_args(argv)
    snapshot = published_dir(args.profile, args.published_root)
    if args.check:
        bad = differences(args.reports_dir, snapshot, args.names)
        for line in bad:
            print(f"mfcbench publish --check: {line}", file=sys.stderr)
        if bad:
            print(f"mfcbench publish --check: {len(bad)} file(s) of {snapshot} differ from {args.reports_dir}; "
                  f"publish again ({snakemake_publish(args.profile)}) or restore them with git", file=sys.stderr)
            return 1
        print(f"{snapshot} matches {args.reports_dir}")
        return 0
    names = args.names or ([q.name for q in snapshot.iterdir() if q.is_file()] if snapshot.is_dir() else [])
    if not names:
        print(f"mfcbench publish: nothing to publish: name the files, or run `{snakemake_publish(args.profile)}`",
              file=sys.stderr)
        return 2
    try:
        written = publish(args.reports_dir, snapshot, names)
    except (SnapshotError, OSError) as exc:
        print(f"mfcbench publish: {exc}", file=sys.stderr)
        return 1
    print(f"published {len(written)} files from {args.reports_dir} to {snapshot}, verified byte for byte")
    return 0
